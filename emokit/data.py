"""Corpus loaders: turn an emotional-speech corpus on disk into a manifest.

A *manifest* is a :class:`pandas.DataFrame` with one row per utterance and at
least the columns in :data:`MANIFEST_COLUMNS`:

``path``
    absolute path of the wav file (str).
``corpus``
    registry name of the corpus (``"emodb"``, ``"iemocap"`` ...).
``speaker``
    speaker id as the corpus names it (``"03"`` for EmoDB, ``"f1"`` for
    EMOVO, ``"Actor_01"`` for RAVDESS, ``"Ses01F"`` for IEMOCAP, ``"F01"`` for
    MSP-IMPROV, ``SpkrID`` for MSP-Podcast). Ids are unique *within* a corpus;
    across corpora use the pair (corpus, speaker) -- see
    :func:`emokit.splits.speaker_keys`.
``gender``
    ``"male"``, ``"female"`` or ``"unknown"``.
``session``
    recording session (IEMOCAP, MSP-IMPROV), split set (MSP-Podcast) or ``""``.
``label``
    canonical emotion name, one of :data:`CANONICAL_LABELS`.
``raw_label``
    the corpus's own emotion code.

Rows are sorted by path, so a manifest is the same on every machine. Loaders
are registered in :data:`CORPORA` and return *all* labels; :func:`load_corpus`
filters classes and checks the audio.
"""
from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import Iterable, Sequence

import pandas as pd
import soundfile

from emokit.registry import Registry

PAPER_CLASSES = ("anger", "happiness", "sadness", "neutral")
CANONICAL_LABELS = (
    "anger", "happiness", "sadness", "neutral", "fear", "disgust", "boredom",
    "surprise", "calm", "contempt", "frustration", "excitement", "other",
)
MANIFEST_COLUMNS = ["path", "corpus", "speaker", "gender", "session", "label", "raw_label"]

CORPORA: Registry = Registry("corpus loader")

CORPUS_SETTINGS_FILE = "corpus.yaml"  # beside a named corpus's manifest.csv: label_map, classes

# What each loader expects under its root; used in "not found" messages.
LAYOUTS = {
    "emodb": "<root>/wav/NNtTTEv.wav files (Berlin EmoDB)",
    "emovo": "<root>/{f1,f2,f3,m1,m2,m3}/EEE-SS-TT.wav files (EMOVO)",
    "ravdess": "<root>/Actor_XX/MM-VC-EE-II-SS-RR-AA.wav files (RAVDESS)",
    "iemocap": (
        "<root>/Session{1..5}/sentences/wav/<dialog>/<utterance>.wav and "
        "<root>/Session{1..5}/dialog/EmoEvaluation/<dialog>.txt, root being "
        "IEMOCAP_full_release or its parent (IEMOCAP)"
    ),
    "msp_improv": (
        "<root>/Evalution.txt (or Evaluation.txt) and "
        "<root>/[Audio/]session{1..6}/<scenario>/<type>/MSP-IMPROV-*.wav (MSP-IMPROV)"
    ),
    "msp_podcast": "<root>/Labels/labels_consensus.csv and <root>/Audios/<FileName>.wav (MSP-Podcast)",
    "csv": "a CSV file (or <root>/manifest.csv) with columns path, speaker, label [, session, gender]",
}


def corpus_root(name: str, data_root: str | Path | None = None) -> Path:
    """Where corpus ``name`` lies: ``<data_root>/<name>``, with ``data_root``
    defaulting to :func:`emokit.paths.data_root` (``$EMOKIT_DATA``, else the
    checkout's ``data/``, else ``./data``). The one rule used by the
    notebooks, the grid runner and the CLI; for ``csv`` the folder holds
    ``manifest.csv`` (:func:`load_csv` also takes a CSV file directly)."""
    from emokit.paths import data_root as default_root

    return Path(data_root if data_root is not None else default_root()) / name


def load_corpus(
    name: str,
    root: str | Path | None = None,
    classes: Sequence[str] | None = PAPER_CLASSES,
    check_audio: bool = True,
    **options,
) -> pd.DataFrame:
    """Load corpus ``name`` as a manifest.

    Parameters
    ----------
    name : str
        Registered loader name (see ``CORPORA.names()``), or the name of a
        folder ``<data root>/<name>/`` holding a ``manifest.csv`` (a *named
        corpus*, read by :func:`load_csv`, with an optional ``corpus.yaml``
        beside it: :func:`corpus_settings`). :func:`available_corpora` lists both.
    root : str or Path, optional
        Where the corpus lies; default :func:`corpus_root`.
    classes : sequence of str or None
        Canonical labels to keep; None keeps all. The default keeps a named
        corpus's ``classes`` from its ``corpus.yaml``, else the paper's four.
    check_audio : bool
        Read every file's header and leave out missing, unreadable or empty
        files. They are named in a warning and listed in
        ``manifest.attrs["skipped"]`` as ``{"path", "reason"}`` records (see
        :func:`skipped_files` for a DataFrame).
    **options
        Passed to the loader (e.g. ``scripted=True`` for IEMOCAP).

    Returns
    -------
    pandas.DataFrame
        The manifest, sorted by path, with a fresh RangeIndex.

    Raises
    ------
    KeyError
        Neither a loader nor a named corpus (lists what is available).
    ValueError
        Unknown class name (lists the canonical ones).
    FileNotFoundError
        Missing root or no files in the expected layout.
    """
    root = Path(root) if root is not None else corpus_root(name)
    loader = _loader(name, root)
    settings = corpus_settings(root) if loader is load_csv and root.is_dir() else {}
    if loader is load_csv:
        options = {"label_map": settings.get("label_map"), "name": name, **options}
    if classes is PAPER_CLASSES and settings.get("classes"):  # the default: the corpus's own choice, if it made one
        classes = tuple(settings["classes"])
    if isinstance(classes, str):
        classes = (classes,)
    if classes is not None:
        unknown = [c for c in classes if c not in CANONICAL_LABELS]
        if unknown:
            raise ValueError(f"unknown class(es) {unknown}; canonical labels are: {', '.join(CANONICAL_LABELS)}")
    if not root.exists():
        how = ("download it with `emokit download emodb` (EmoDB is free; `make demo` does it too) or set "
               "EMOKIT_DATA to the folder that holds emodb/" if name == "emodb" else
               f"put the corpus there or set EMOKIT_DATA to the folder that holds {name}/")
        raise FileNotFoundError(f"corpus {name!r}: {root} does not exist; expected "
                                f"{LAYOUTS.get(name, 'a corpus folder')}; {how}")

    manifest = loader(root, **options)
    missing = [c for c in MANIFEST_COLUMNS if c not in manifest.columns]
    if missing:
        raise ValueError(f"loader {name!r} returned no column(s) {missing}")
    left_out: dict[str, int] = {}
    if classes is not None:
        outside = ~manifest["label"].isin(classes)
        left_out = {str(k): int(v) for k, v in manifest.loc[outside, "label"].value_counts().sort_index().items()}
        manifest = manifest[~outside]
    extra = [c for c in manifest.columns if c not in MANIFEST_COLUMNS]
    manifest = manifest[MANIFEST_COLUMNS + extra].sort_values("path", kind="mergesort").reset_index(drop=True)
    skipped: list[dict] = []
    if check_audio:
        manifest, skipped = _drop_bad_audio(manifest)
    # Records, not a DataFrame: pandas compares attrs in pd.concat, and
    # comparing DataFrames there raises "truth value is ambiguous".
    manifest.attrs["skipped"] = skipped
    manifest.attrs["left_out_by_class"] = left_out  # label -> rows the class filter left out
    return manifest


def _loader(name: str, root: Path):
    """The loader of ``name``: registered, or :func:`load_csv` for a named corpus's folder."""
    if name in CORPORA:
        return CORPORA.get(name)
    if (root / "manifest.csv").is_file():
        return load_csv
    data = root.parent
    available = available_corpora(data)
    raise KeyError(f"unknown corpus {name!r}: no loader of that name and no {root / 'manifest.csv'}. "
                   f"Corpora under {data}: {', '.join(available) or 'none'}; loaders: {', '.join(CORPORA.names())}. "
                   f"For a corpus of your own, write {root / 'manifest.csv'} with columns path, speaker, label "
                   "(+ optional gender, session).")


def available_corpora(data_root: str | Path | None = None) -> list[str]:
    """Corpora under ``data_root`` (default :func:`emokit.paths.data_root`):
    each folder named after a registered loader, and each folder holding a
    ``manifest.csv`` (a named corpus), sorted."""
    from emokit.paths import data_root as default_root

    folder = Path(data_root if data_root is not None else default_root())
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir()
                  if p.is_dir() and not p.name.startswith(".") and (p.name in CORPORA or (p / "manifest.csv").is_file()))


def corpus_settings(root: str | Path) -> dict:
    """A named corpus's ``corpus.yaml`` (beside its ``manifest.csv``), or {}.

    Keys: ``label_map`` (the CSV's label names -> canonical emotion names,
    e.g. ``{ang: anger, hap: happiness}``) and ``classes`` (the canonical
    labels to keep by default, e.g. ``[anger, sadness, neutral]``); any
    other key is an error naming the file.
    """
    path = Path(root) / CORPUS_SETTINGS_FILE
    if not path.is_file():
        return {}
    import yaml

    try:
        settings = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"{path} is not valid YAML ({exc}); fix it or delete it") from None
    if not isinstance(settings, dict):
        raise ValueError(f"{path} must be a mapping with keys label_map and classes, got {type(settings).__name__}")
    unknown = sorted(set(settings) - {"label_map", "classes"})
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {unknown}; known: label_map, classes")
    if not isinstance(settings.get("label_map") or {}, dict):
        raise ValueError(f"{path}: label_map must map the CSV's labels to emotion names, e.g. {{ang: anger}}")
    classes = settings.get("classes")
    if classes is not None:
        if isinstance(classes, str) or not all(c in CANONICAL_LABELS for c in classes):
            raise ValueError(f"{path}: classes must be a list of canonical labels ({', '.join(CANONICAL_LABELS)}), "
                             f"got {classes!r}")
    return settings


def corpus_classes(name: str, data_root: str | Path | None = None) -> tuple[str, ...]:
    """The classes a corpus is used with by default: its ``corpus.yaml``'s
    ``classes`` for a named corpus that sets them, else :data:`PAPER_CLASSES`."""
    root = corpus_root(name, data_root)
    if (name in CORPORA and name != "csv") or not root.is_dir():
        return PAPER_CLASSES
    classes = corpus_settings(root).get("classes")
    return tuple(classes) if classes else PAPER_CLASSES


def skipped_files(manifest: pd.DataFrame) -> pd.DataFrame:
    """The files :func:`load_corpus` left out, as a DataFrame (columns path, reason)."""
    return pd.DataFrame(manifest.attrs.get("skipped", []), columns=["path", "reason"])


def summarize(manifest: pd.DataFrame) -> pd.DataFrame:
    """Files, speakers and per-class counts, one row per corpus.

    Returns
    -------
    pandas.DataFrame
        Indexed by corpus; columns ``files``, ``speakers`` and one column per
        label present.
    """
    by_corpus = manifest.groupby("corpus")
    table = pd.DataFrame({"files": by_corpus.size(), "speakers": by_corpus["speaker"].nunique()})
    counts = pd.crosstab(manifest["corpus"], manifest["label"])
    # Canonical order first, then any non-canonical labels a CSV brought in.
    order = [c for c in CANONICAL_LABELS if c in counts.columns] + sorted(set(counts.columns) - set(CANONICAL_LABELS))
    return table.join(counts[order])


# --------------------------------------------------------------------------
# helpers


def _drop_bad_audio(manifest: pd.DataFrame) -> tuple[pd.DataFrame, list[dict]]:
    """Header-check every file; return (good rows, ``{"path", "reason"}`` of the others)."""
    reasons = {}
    for path in manifest["path"]:
        try:
            info = soundfile.info(path)
        except Exception as err:  # any failure here means "cannot be used"
            reasons[path] = "missing file" if not os.path.exists(path) else f"unreadable ({type(err).__name__}: {err})"
            continue
        if info.frames == 0:
            reasons[path] = "no audio frames"
    skipped = [{"path": path, "reason": reason} for path, reason in reasons.items()]
    if reasons:
        shown = [f"{p} ({r})" for p, r in list(reasons.items())[:20]]
        more = f"; ... and {len(reasons) - 20} more" if len(reasons) > 20 else ""
        warnings.warn(
            f"{len(reasons)} audio file(s) left out of the manifest (see manifest.attrs['skipped']): "
            + "; ".join(shown) + more,
            stacklevel=3,
        )
        manifest = manifest[~manifest["path"].isin(reasons)].reset_index(drop=True)
    return manifest, skipped


def _rows_to_frame(rows: Iterable[dict] | pd.DataFrame, name: str, root: Path) -> pd.DataFrame:
    """Rows -> DataFrame; no rows means the layout is wrong."""
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    if frame.empty:
        raise FileNotFoundError(f"corpus {name!r}: no files found in {root}; expected {LAYOUTS[name]}")
    return frame


def _abs(path: Path) -> str:
    # abspath, not resolve: keep the user's (possibly symlinked) folder names.
    return os.path.abspath(path)


def _visible(paths: Iterable[Path]) -> list[Path]:
    """Sorted paths without hidden files (macOS ``._x.wav`` copies are common)."""
    return sorted(p for p in paths if not p.name.startswith("."))


# --------------------------------------------------------------------------
# acted corpora named by file name

EMODB_LABELS = {"W": "anger", "L": "boredom", "E": "disgust", "A": "fear", "F": "happiness", "T": "sadness", "N": "neutral"}
EMODB_GENDERS = {
    "03": "male", "08": "female", "09": "female", "10": "male", "11": "male",
    "12": "male", "13": "female", "14": "female", "15": "male", "16": "female",
}
_EMODB_NAME = re.compile(r"^(\d\d)([a-z]\d\d)([WLEAFTN])([a-z])\.wav$")


@CORPORA.register("emodb")
def load_emodb(root: Path) -> pd.DataFrame:
    """Berlin EmoDB: ``<root>/wav/NNtTTEv.wav`` (speaker, text, emotion, version)."""
    rows = []
    for path in _visible((Path(root) / "wav").glob("*.wav")):
        match = _EMODB_NAME.match(path.name)
        if not match:
            continue
        speaker, _text, code, _version = match.groups()
        rows.append(dict(path=_abs(path), corpus="emodb", speaker=speaker, gender=EMODB_GENDERS.get(speaker, "unknown"),
                         session="", label=EMODB_LABELS[code], raw_label=code))
    return _rows_to_frame(rows, "emodb", root)


EMOVO_LABELS = {"dis": "disgust", "gio": "happiness", "neu": "neutral", "pau": "fear", "rab": "anger", "sor": "surprise", "tri": "sadness"}
_EMOVO_NAME = re.compile(r"^(dis|gio|neu|pau|rab|sor|tri)-([fm]\d)-(\w+)\.wav$", re.IGNORECASE)


@CORPORA.register("emovo")
def load_emovo(root: Path) -> pd.DataFrame:
    """EMOVO: ``<root>/{f1..m3}/EEE-SS-TT.wav`` (emotion, speaker, sentence)."""
    rows = []
    for path in _visible(Path(root).glob("[fm][0-9]/*.wav")):
        match = _EMOVO_NAME.match(path.name)
        if not match:
            continue
        code, speaker = match.group(1).lower(), match.group(2).lower()
        rows.append(dict(path=_abs(path), corpus="emovo", speaker=speaker,
                         gender="female" if speaker[0] == "f" else "male",
                         session="", label=EMOVO_LABELS[code], raw_label=code))
    return _rows_to_frame(rows, "emovo", root)


RAVDESS_LABELS = {"01": "neutral", "02": "calm", "03": "happiness", "04": "sadness",
                  "05": "anger", "06": "fear", "07": "disgust", "08": "surprise"}
_RAVDESS_NAME = re.compile(r"^(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)\.wav$")


@CORPORA.register("ravdess")
def load_ravdess(root: Path, song: bool = False) -> pd.DataFrame:
    """RAVDESS: ``<root>/Actor_XX/MM-VC-EE-II-SS-RR-AA.wav``.

    Parameters
    ----------
    song : bool
        Also keep sung utterances (vocal channel 02); default speech only.

    Notes
    -----
    Only audio-only files (modality 03) are kept. Odd actors are male, even
    ones female. The intensity code (01 normal, 02 strong) is kept in column
    ``intensity``. Also accepts the Actor folders one level down (the
    ``Audio_Speech_Actors_01-24`` zip layout).
    """
    root = Path(root)
    paths = _visible(root.glob("Actor_*/*.wav")) or _visible(root.glob("*/Actor_*/*.wav"))
    channels = {"01", "02"} if song else {"01"}
    rows = []
    for path in paths:
        match = _RAVDESS_NAME.match(path.name)
        if not match:
            continue
        modality, channel, emotion, intensity, _statement, _repetition, actor = match.groups()
        if modality != "03" or channel not in channels:
            continue
        rows.append(dict(path=_abs(path), corpus="ravdess", speaker=f"Actor_{actor}",
                         gender="male" if int(actor) % 2 else "female", session="",
                         label=RAVDESS_LABELS.get(emotion, "other"), raw_label=emotion, intensity=intensity))
    return _rows_to_frame(rows, "ravdess", root)


# --------------------------------------------------------------------------
# corpora with separate label files

IEMOCAP_LABELS = {
    "ang": "anger", "hap": "happiness", "sad": "sadness", "neu": "neutral", "fru": "frustration",
    "exc": "excitement", "sur": "surprise", "fea": "fear", "dis": "disgust", "oth": "other", "xxx": "other",
}
_IEMOCAP_LINE = re.compile(r"^\[\s*[\d.]+\s*-\s*[\d.]+\s*\]\s+(Ses\d\d[FM]_\S+_([FM])\S*)\s+(\w+)\s+\[")


@CORPORA.register("iemocap")
def load_iemocap(root: Path, scripted: bool = False, merge_excitement: bool = False) -> pd.DataFrame:
    """IEMOCAP (published layout), utterance wavs with the consensus labels.

    Parameters
    ----------
    root : Path
        ``IEMOCAP_full_release`` (the folder holding ``Session1..5``) or its parent.
    scripted : bool
        Also keep scripted dialogs; default improvised only (as the paper).
    merge_excitement : bool
        Label ``exc`` as happiness (a common IEMOCAP practice).

    Notes
    -----
    Speaker = session + the utterance's own gender letter
    (``Ses01M_impro01_F000`` -> ``"Ses01F"``: the F speaker of session 1).
    Session = ``"Session1"`` ... Utterances without agreement (``xxx``) are
    kept as "other". A labelled utterance whose wav is missing stays in the
    loader's output; the audio check in :func:`load_corpus` reports it.
    """
    root = Path(root)
    if not any(root.glob("Session[1-5]")) and (root / "IEMOCAP_full_release").is_dir():
        root = root / "IEMOCAP_full_release"
    rows = []
    for session_dir in _visible(root.glob("Session[1-5]")):
        for label_file in _visible((session_dir / "dialog" / "EmoEvaluation").glob("*.txt")):
            dialog = label_file.stem
            if "impro" not in dialog and not scripted:
                continue
            for line in label_file.read_text(errors="replace").splitlines():
                match = _IEMOCAP_LINE.match(line)
                if not match:
                    continue
                utterance, gender_letter, code = match.groups()
                label = IEMOCAP_LABELS.get(code, "other")
                if merge_excitement and code == "exc":
                    label = "happiness"
                wav = session_dir / "sentences" / "wav" / dialog / f"{utterance}.wav"
                rows.append(dict(path=_abs(wav), corpus="iemocap", speaker=utterance[:5] + gender_letter,
                                 gender="female" if gender_letter == "F" else "male",
                                 session=session_dir.name, label=label, raw_label=code))
    frame = _rows_to_frame(rows, "iemocap", root)
    if not any((root / s / "sentences" / "wav").is_dir() for s in frame["session"].unique()):
        raise FileNotFoundError(f"corpus 'iemocap': labels but no sentences/wav folders in {root}; expected {LAYOUTS['iemocap']}")
    return frame


MSP_IMPROV_LABELS = {"A": "anger", "H": "happiness", "S": "sadness", "N": "neutral", "X": "other", "O": "other"}
_MSP_IMPROV_ID = re.compile(r"^S(\d\d)([A-Z])-([FM])(\d\d)-([A-Z])-([A-Z0-9]+)$")


@CORPORA.register("msp_improv")
def load_msp_improv(root: Path) -> pd.DataFrame:
    """MSP-IMPROV: ``Evalution.txt`` (sic) consensus labels + the session wavs.

    Label lines look like ``UTD-IMPROV-S01A-F01-P-FM01.avi; A; A:3.0; ...``;
    the second field is the consensus emotion (A, H, S, N; X = no agreement,
    kept as "other"). Audio is ``[Audio/]session{1..6}/S01A/P/MSP-IMPROV-S01A-F01-P-FM01.wav``.

    Notes
    -----
    Speaker = ``"F01"``/``"M01"`` ..., session = ``"session<speaker number>"``
    (F01 and M01 recorded session 1). The scenario (``S01A``) and type
    (P, R, S, T) are kept in columns ``scenario`` and ``type``.
    """
    root = Path(root)
    label_file = next((root / n for n in ("Evalution.txt", "Evaluation.txt") if (root / n).is_file()), None)
    if label_file is None:
        raise FileNotFoundError(f"corpus 'msp_improv': no Evalution.txt in {root}; expected {LAYOUTS['msp_improv']}")
    wavs = {p.stem: p for p in _visible(root.rglob("MSP-IMPROV-*.wav"))}
    if not wavs:
        raise FileNotFoundError(f"corpus 'msp_improv': no MSP-IMPROV-*.wav under {root}; expected {LAYOUTS['msp_improv']}")
    audio_root = root / "Audio" if (root / "Audio").is_dir() else root
    rows = []
    for line in label_file.read_text(errors="replace").splitlines():
        if not line.startswith("UTD-IMPROV-"):
            continue
        fields = [f.strip() for f in line.split(";")]
        utterance_id = fields[0].removeprefix("UTD-IMPROV-").rsplit(".", 1)[0]
        match = _MSP_IMPROV_ID.match(utterance_id)
        if not match or len(fields) < 2:
            continue
        scenario_number, target, gender_letter, speaker_number, utt_type, _ = match.groups()
        stem = f"MSP-IMPROV-{utterance_id}"
        session = f"session{int(speaker_number)}"
        scenario = f"S{scenario_number}{target}"
        wav = wavs.get(stem, audio_root / session / scenario / utt_type / f"{stem}.wav")
        code = fields[1]
        rows.append(dict(path=_abs(wav), corpus="msp_improv", speaker=f"{gender_letter}{speaker_number}",
                         gender="female" if gender_letter == "F" else "male", session=session,
                         label=MSP_IMPROV_LABELS.get(code, "other"), raw_label=code, scenario=scenario, type=utt_type))
    return _rows_to_frame(rows, "msp_improv", root)


MSP_PODCAST_LABELS = {"A": "anger", "H": "happiness", "S": "sadness", "N": "neutral", "U": "surprise",
                      "F": "fear", "D": "disgust", "C": "contempt", "O": "other", "X": "other"}


@CORPORA.register("msp_podcast")
def load_msp_podcast(root: Path) -> pd.DataFrame:
    """MSP-Podcast: ``Labels/labels_consensus.csv`` + ``Audios/<FileName>``.

    Notes
    -----
    Speaker = ``SpkrID``; an ``Unknown`` speaker becomes
    ``"unknown_<file stem>"`` so unknown speakers never merge into one group.
    Session = ``Split_Set`` (Train, Development, Test1 ...). The dimensional
    ratings are kept as ``arousal``, ``valence``, ``dominance``.
    """
    root = Path(root)
    labels = root / "Labels" / "labels_consensus.csv"
    audio_dir = next((root / n for n in ("Audios", "Audio") if (root / n).is_dir()), None)
    if not labels.is_file() or audio_dir is None:
        raise FileNotFoundError(f"corpus 'msp_podcast': {labels} or {root / 'Audios'} missing; expected {LAYOUTS['msp_podcast']}")
    table = pd.read_csv(labels, dtype={"SpkrID": str, "FileName": str, "EmoClass": str})
    names = table["FileName"].where(table["FileName"].str.endswith(".wav"), table["FileName"] + ".wav")
    stems = names.str.removesuffix(".wav")
    speakers = table["SpkrID"].fillna("Unknown").str.strip()
    unknown = speakers.str.lower().isin(["unknown", ""])
    gender = table["Gender"].fillna("unknown").str.strip().str.lower()
    frame = pd.DataFrame({
        "path": [_abs(audio_dir / n) for n in names],
        "corpus": "msp_podcast",
        "speaker": speakers.where(~unknown, "unknown_" + stems),
        "gender": gender.where(gender.isin(["male", "female"]), "unknown"),
        "session": table["Split_Set"].fillna("").astype(str),
        "label": table["EmoClass"].map(MSP_PODCAST_LABELS).fillna("other"),
        "raw_label": table["EmoClass"],
        "arousal": table.get("EmoAct"),
        "valence": table.get("EmoVal"),
        "dominance": table.get("EmoDom"),
    })
    return _rows_to_frame(frame, "msp_podcast", root)


# --------------------------------------------------------------------------
# any corpus described by a CSV file

LABEL_ALIASES = {
    **{a: "anger" for a in ("anger", "angry", "ang", "rab", "wut")},
    **{a: "happiness" for a in ("happiness", "happy", "hap", "joy", "gio")},
    **{a: "sadness" for a in ("sadness", "sad", "tri")},
    **{a: "neutral" for a in ("neutral", "neu")},
    **{a: "fear" for a in ("fear", "fearful", "fea", "afraid", "pau")},
    **{a: "disgust" for a in ("disgust", "disgusted", "dis")},
    **{a: "boredom" for a in ("boredom", "bored")},
    **{a: "surprise" for a in ("surprise", "surprised", "sur", "sor")},
    **{a: "calm" for a in ("calm",)},
    **{a: "contempt" for a in ("contempt",)},
    **{a: "frustration" for a in ("frustration", "frustrated", "fru")},
    **{a: "excitement" for a in ("excitement", "excited", "exc")},
    **{a: "other" for a in ("other", "oth", "xxx")},
}
# No one-letter codes: they clash between corpora (EmoDB F = happiness, MSP F = fear).


def normalize_label(raw: str) -> str:
    """Canonical label for a free-text emotion name; unknown names come back lowercased."""
    text = str(raw).strip().lower()
    return LABEL_ALIASES.get(text, text)


def _normalize_gender(raw) -> str:
    text = str(raw).strip().lower()
    return {"m": "male", "male": "male", "man": "male", "f": "female", "female": "female", "woman": "female"}.get(text, "unknown")


@CORPORA.register("csv")
def load_csv(root: Path, label_map: dict[str, str] | None = None, name: str = "csv") -> pd.DataFrame:
    """A corpus listed in a CSV: columns path, speaker, label [, session, gender, corpus].

    Parameters
    ----------
    root : Path
        The CSV file, or a folder holding ``manifest.csv``. Relative paths in
        the file are resolved against the CSV's folder.

    Notes
    -----
    Labels go through ``label_map`` (the CSV's own names -> canonical labels)
    and then :func:`normalize_label` (``angry``/``ang`` -> anger,
    ``joy``/``happy`` -> happiness ...); ``raw_label`` keeps them as given. A
    label that is still not a canonical emotion name (a typo such as
    ``angr``) is an error naming it, its row count and the fix.
    ``corpus`` defaults to ``name`` (the named corpus's folder name, or
    ``"csv"``); other columns are kept.
    """
    root = Path(root)
    csv_path = root / "manifest.csv" if root.is_dir() else root
    if not csv_path.is_file():
        raise FileNotFoundError(f"corpus {name!r}: no {csv_path}; expected {LAYOUTS['csv']}")
    table = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    missing = [c for c in ("path", "speaker", "label") if c not in table.columns]
    if missing:
        raise ValueError(f"{csv_path} lacks column(s) {missing}; it needs path, speaker, label (+ optional session, gender)")
    base = csv_path.parent
    table["raw_label"] = table["label"]
    mapping = {str(k).strip().lower(): v for k, v in (label_map or {}).items()}
    table["label"] = table["label"].map(lambda raw: normalize_label(mapping.get(str(raw).strip().lower(), raw)))
    unknown = table.loc[~table["label"].isin(CANONICAL_LABELS), "raw_label"].value_counts()
    if len(unknown):
        found = ", ".join(f"{label!r} ({count} rows)" for label, count in unknown.items())
        raise ValueError(f"{csv_path}: label(s) {found} are not emotion names emokit knows ({', '.join(CANONICAL_LABELS)}); "
                         f"fix them in the CSV or map them in {csv_path.parent / CORPUS_SETTINGS_FILE} "
                         "(label_map: {angr: anger})")
    table["path"] = [_abs(base / p) for p in table["path"]]  # an absolute p wins in the join
    table["speaker"] = table["speaker"].str.strip()
    table["gender"] = table["gender"].map(_normalize_gender) if "gender" in table else "unknown"
    if "session" not in table:
        table["session"] = ""
    if "corpus" not in table:
        table["corpus"] = name
    return _rows_to_frame(table, "csv", root)

"""The paper's input: 128 x 128 MFCC (or log-mel) maps of speech.

Every utterance is resampled to ``sample_rate``, zero-padded or truncated to
``duration`` seconds, turned into ``n_mfcc`` coefficients x ``n_frames``
frames with librosa, and max-pooled along time by ``time_pool``. With the
defaults (16 kHz, hop 250 samples = 15.6 ms, 8 s) that is 128 x 512 frames,
pooled to the paper's 128 x 128 map (section IV-A). The paper does not give
its sample rate or hop; these are chosen so that 8 s gives exactly 512 frames.

Plain functions on arrays (:func:`load_audio`, :func:`feature_map`) sit next
to the corpus-level :func:`extract`, which runs in parallel and caches its
result on disk.
"""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from emokit.config import Config
from emokit.locks import cache_lock

FEATURE_KINDS = ("mfcc", "logmel")


@dataclass(frozen=True)
class FeatureConfig(Config):
    """Every parameter of the feature map.

    Attributes
    ----------
    kind : {"mfcc", "logmel"}
    sample_rate : int, Hz
    duration : float, seconds each utterance is padded / truncated to
    n_mfcc : int, coefficients (rows of the map) for ``kind="mfcc"``
    n_mels : int, mel bands (rows for ``kind="logmel"``)
    n_fft : int, samples per FFT window (64 ms at 16 kHz)
    hop_length : int, samples between frames
    time_pool : int, frames max-pooled into one column
    fmin, fmax : float, Hz, mel filterbank range (``fmax=None``: Nyquist)
    """

    kind: str = "mfcc"
    sample_rate: int = 16000
    duration: float = 8.0
    n_mfcc: int = 128
    n_mels: int = 128
    n_fft: int = 1024
    hop_length: int = 250
    time_pool: int = 4
    fmin: float = 0.0
    fmax: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in FEATURE_KINDS:
            raise ValueError(f"unknown feature kind {self.kind!r}; known: {', '.join(FEATURE_KINDS)}")
        if self.kind == "mfcc" and self.n_mfcc > self.n_mels:
            raise ValueError(f"n_mfcc={self.n_mfcc} cannot exceed n_mels={self.n_mels}")
        if self.n_frames < self.time_pool:
            raise ValueError(f"duration {self.duration}s gives {self.n_frames} frames, fewer than time_pool={self.time_pool}")

    @property
    def n_samples(self) -> int:
        return int(round(self.duration * self.sample_rate))

    @property
    def n_frames(self) -> int:
        """Frames before pooling (512 with the defaults)."""
        return self.n_samples // self.hop_length

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, columns) of one map: (128, 128) with the defaults."""
        rows = self.n_mfcc if self.kind == "mfcc" else self.n_mels
        return rows, self.n_frames // self.time_pool


class AudioError(RuntimeError):
    """A file that cannot be decoded as audio."""


def load_audio(path: str | Path, config: FeatureConfig = FeatureConfig()) -> np.ndarray:
    """Read a file as mono float32 at ``config.sample_rate``, padded or cut to
    ``config.duration``.

    Returns
    -------
    ndarray, shape (n_samples,), float32
    """
    import librosa
    import soundfile as sf

    if not Path(path).is_file():
        raise AudioError(f"{path}: no such file")
    try:
        audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises several types for bad files
        raise AudioError(f"{path}: cannot read audio ({exc}); re-export it as PCM wav or remove it from the corpus") from None
    if audio.shape[0] == 0:
        raise AudioError(f"{path}: the file holds no samples; remove it or replace it with a valid recording")
    if not np.isfinite(audio).all():
        raise AudioError(f"{path}: the file holds non-finite samples (NaN or inf); re-export it or remove it")
    if not np.abs(audio).max() > 0:
        raise AudioError(f"{path}: the file is silent (every sample is 0); replace it with a valid recording")
    audio = audio.mean(axis=1)
    if rate != config.sample_rate:
        audio = librosa.resample(audio, orig_sr=rate, target_sr=config.sample_rate, res_type="soxr_hq")
    return fix_length(audio, config.n_samples)


def fix_length(audio: np.ndarray, n_samples: int) -> np.ndarray:
    """Zero-pad at the end or truncate ``audio`` to ``n_samples``."""
    out = np.zeros(n_samples, dtype=np.float32)
    n = min(n_samples, len(audio))
    out[:n] = audio[:n]
    return out


def feature_map(audio: np.ndarray, config: FeatureConfig = FeatureConfig()) -> np.ndarray:
    """The map of one utterance.

    Parameters
    ----------
    audio : ndarray, shape (config.n_samples,)
        Mono samples at ``config.sample_rate`` (see :func:`load_audio`).

    Returns
    -------
    ndarray, shape (rows, columns) = ``config.shape``, float32
        MFCCs (or log-mel energies in dB) max-pooled along time.

    Notes
    -----
    The mel filterbank product runs with single-threaded BLAS, as in
    joblib's worker processes, so a map is bit-identical whether it is made
    here, by :func:`extract` in this process or in a worker (a multi-threaded
    product sums in another order). On such small products one thread is
    also faster.
    """
    import librosa
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        mel = librosa.feature.melspectrogram(
            y=audio, sr=config.sample_rate, n_fft=config.n_fft, hop_length=config.hop_length,
            n_mels=config.n_mels, fmin=config.fmin, fmax=config.fmax,
        )
    # amin keeps silence finite (-100 dB), never -inf.
    logmel = librosa.power_to_db(mel, ref=1.0, amin=1e-10)
    if config.kind == "mfcc":
        maps = librosa.feature.mfcc(S=logmel, n_mfcc=config.n_mfcc)
    else:
        maps = logmel
    maps = maps[:, : config.n_frames]  # librosa's centred frames give one extra
    rows, columns = config.shape
    pooled = maps[:, : columns * config.time_pool].reshape(rows, columns, config.time_pool).max(axis=2)
    return np.ascontiguousarray(pooled, dtype=np.float32)


def checked_map(path: str | Path, config: FeatureConfig = FeatureConfig()) -> np.ndarray:
    """:func:`feature_map` of a file, refusing a map that is not finite
    (samples so large that their power overflows float32, e.g. 1e30)."""
    audio = load_audio(path, config)
    fmap = feature_map(audio, config)
    if not np.isfinite(fmap).all():
        raise AudioError(f"{path}: its feature map is not finite (largest sample magnitude "
                         f"{float(np.abs(audio).max()):.3g}; audio samples should lie within [-1, 1]); "
                         "re-export the file as PCM wav or remove it")
    return fmap


def _extract_chunk(paths: list[str], config: FeatureConfig) -> list[np.ndarray | str]:
    """Worker: a map per file, or the error message for a bad file."""
    out: list[np.ndarray | str] = []
    for path in paths:
        try:
            out.append(checked_map(path, config))
        except AudioError as exc:
            out.append(str(exc))
        except Exception as exc:  # a decoder crash on one file must not end the whole run
            out.append(f"{path}: {type(exc).__name__}: {exc}")
    return out


def cache_key(manifest: pd.DataFrame, config: FeatureConfig | dict) -> str:
    """Hash of the settings (a config or a dict) and every file's path, size
    and mtime: it changes when a file or a setting changes."""
    settings = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    h = hashlib.sha1(json.dumps(settings, sort_keys=True).encode())
    _hash_files(h, manifest["path"])
    return h.hexdigest()[:16]


def data_fingerprint(manifest: pd.DataFrame, cache: str | Path | None = None) -> str:
    """Hash of the content of every file of a manifest, its name and its label.

    It changes when a file is replaced, edited, added, removed or relabelled,
    and not when the corpus is only copied (new modification times) or
    moved to another folder (names are taken relative to the files' common
    folder). A finished run records it (``emokit.runner``), so that results
    are never reused once the audio under them changed.

    Parameters
    ----------
    manifest : DataFrame with ``path`` (and ``label``)
    cache : a JSON file remembering each file's content hash by path, size
        and modification time, so that unchanged files are read once (None:
        every file is read; about 0.1 s for EmoDB)
    """
    paths = [str(p) for p in manifest["path"]]
    digests = file_digests(paths, cache)
    base = os.path.commonpath(paths) if paths else ""
    base = base if os.path.isdir(base) else os.path.dirname(base)
    h = hashlib.sha1()
    for path in paths:
        h.update(f"{os.path.relpath(path, base)}\0{digests[path]}\n".encode())
    if "label" in manifest:
        h.update("\0".join(map(str, manifest["label"])).encode())
    return h.hexdigest()[:16]


def file_digests(paths: list[str], cache: str | Path | None = None) -> dict[str, str]:
    """SHA-1 of each file's bytes ("missing" for a file that is not there),
    reusing ``cache`` entries whose size and modification time still match."""
    from emokit.locks import cache_lock

    known: dict = {}
    if cache is not None and Path(cache).is_file():
        try:
            known = json.loads(Path(cache).read_text())
        except (OSError, ValueError):  # a damaged cache is only slower
            known = {}
    digests, fresh = {}, {}
    for path in paths:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            digests[path] = "missing"
            continue
        entry = known.get(path)
        if entry and entry[:2] == [st.st_size, st.st_mtime_ns]:
            digests[path] = entry[2]
            continue
        with open(path, "rb") as handle:
            digests[path] = hashlib.file_digest(handle, "sha1").hexdigest()
        fresh[path] = [st.st_size, st.st_mtime_ns, digests[path]]
    if cache is not None and fresh:
        Path(cache).parent.mkdir(parents=True, exist_ok=True)
        with cache_lock(cache):  # another process may add its own entries meanwhile
            try:
                known = json.loads(Path(cache).read_text()) if Path(cache).is_file() else {}
            except (OSError, ValueError):
                known = {}
            known.update(fresh)
            tmp = Path(f"{cache}.tmp-{os.getpid()}")
            tmp.write_text(json.dumps(known))
            os.replace(tmp, cache)
    return digests


def _hash_files(h, paths) -> None:
    for path in paths:
        try:
            st = os.stat(path)
            h.update(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        except FileNotFoundError:
            h.update(f"{path}\0missing\n".encode())


def array_fingerprint(*arrays: np.ndarray) -> str:
    """Hash of the bytes, shapes and dtypes of ``arrays``: what a search or a
    training checkpoint was made on (resuming on other data is refused)."""
    h = hashlib.sha1()
    for array in arrays:
        array = np.ascontiguousarray(array)
        h.update(f"{array.dtype.str}{array.shape}".encode())
        h.update(memoryview(array).cast("B"))
    return h.hexdigest()[:16]


def extract(
    manifest: pd.DataFrame,
    config: FeatureConfig = FeatureConfig(),
    cache_dir: str | Path | None = None,
    n_jobs: int = -1,
    chunk_size: int = 16,
    progress: bool = True,
) -> tuple[np.ndarray, pd.DataFrame]:
    """Feature maps of every file of a manifest, in parallel, cached on disk.

    Parameters
    ----------
    manifest : DataFrame with a ``path`` column (see :mod:`emokit.data`)
    config : FeatureConfig
    cache_dir : folder for the cache, or None for no cache. One ``.npy`` array
        and one ``.csv`` manifest per (files, config) key.
    n_jobs : worker processes (joblib); -1 = all cores, 1 = in this process.
    chunk_size : files per task (fewer, larger tasks cost less overhead).
    progress : show a tqdm bar.

    Returns
    -------
    features : ndarray, shape (n, 1, rows, columns), float32
    manifest : DataFrame, the ``n`` rows that were read, in the same order.
        Files that could not be decoded are left out, with a warning naming
        each; they are listed in ``manifest.attrs["skipped"]`` (records of
        path and reason; :func:`emokit.data.skipped_files` makes a table),
        after the records the input manifest already had there (files
        :func:`emokit.data.load_corpus` left out).
    """
    # Files an earlier step (load_corpus's header check) left out stay listed.
    earlier = list(manifest.attrs.get("skipped", []))
    manifest = manifest.reset_index(drop=True)
    missing = [p for p in manifest["path"] if not os.path.exists(p)]
    if missing:
        raise FileNotFoundError(f"{len(missing)} files of the manifest do not exist, e.g. {missing[0]}; check the corpus root")
    if cache_dir is None:
        return _extract(manifest, config, None, earlier, n_jobs, chunk_size, progress)
    corpus = str(manifest["corpus"].iloc[0]) if "corpus" in manifest and len(manifest) else "corpus"
    stem = Path(cache_dir) / f"{corpus}-{config.kind}-{cache_key(manifest, config)}"
    stem.parent.mkdir(parents=True, exist_ok=True)
    cache_files = stem.with_suffix(".npy"), stem.with_suffix(".csv"), stem.with_suffix(".skipped.json")
    # One process extracts a cache entry; the others wait for it, then read it.
    with cache_lock(stem):
        if all(f.exists() for f in cache_files):
            try:
                features, kept = _load_cache(*cache_files, config)
                kept.attrs["skipped"] = _merge_skipped(earlier, kept.attrs["skipped"])
                return features, kept
            except Exception as exc:  # a truncated or damaged file: extract again, never fail or load garbage
                warnings.warn(f"feature cache {stem}.* is damaged ({exc}); extracting the maps again", stacklevel=2)
        return _extract(manifest, config, cache_files, earlier, n_jobs, chunk_size, progress)


def _extract(manifest, config, cache_files, earlier, n_jobs, chunk_size, progress) -> tuple[np.ndarray, pd.DataFrame]:
    """:func:`extract` without the cache look-up; writes ``cache_files`` when given."""
    from joblib import Parallel, delayed
    from tqdm.auto import tqdm

    paths = list(manifest["path"].astype(str))
    chunks = [paths[i : i + chunk_size] for i in range(0, len(paths), chunk_size)]
    bar = tqdm(total=len(paths), desc=f"{config.kind} maps", unit="file", disable=not progress)
    results: list[np.ndarray | str] = []
    if n_jobs == 1:
        for chunk in chunks:
            results += _extract_chunk(chunk, config)
            bar.update(len(chunk))
    else:
        jobs = Parallel(n_jobs=n_jobs, return_as="generator")(delayed(_extract_chunk)(c, config) for c in chunks)
        for chunk_result in jobs:
            results += chunk_result
            bar.update(len(chunk_result))
    bar.close()

    ok = [i for i, r in enumerate(results) if isinstance(r, np.ndarray)]
    skipped = pd.DataFrame(
        [{"path": paths[i], "reason": r} for i, r in enumerate(results) if isinstance(r, str)], columns=["path", "reason"]
    )
    if len(skipped):
        warnings.warn(f"skipped {len(skipped)} unreadable files:\n" + "\n".join(skipped["reason"]), stacklevel=2)
    rows, columns = config.shape
    features = np.stack([results[i] for i in ok])[:, None] if ok else np.zeros((0, 1, rows, columns), np.float32)
    kept = manifest.iloc[ok].reset_index(drop=True)
    if cache_files is not None:
        _save_cache(features, kept, skipped, *cache_files)
    # Records: DataFrames in attrs break pd.concat.
    kept.attrs["skipped"] = _merge_skipped(earlier, skipped.to_dict("records"))
    return features, kept


def _merge_skipped(earlier: list[dict], new: list[dict]) -> list[dict]:
    """``earlier`` then ``new`` skip records, one per path."""
    seen: set[str] = set()
    merged = []
    for record in [*earlier, *new]:
        if record["path"] not in seen:
            seen.add(record["path"])
            merged.append(dict(record))
    return merged


def _save_cache(features, manifest, skipped, npy: Path, csv: Path, skipped_json: Path) -> None:
    from emokit.utils import atomic_write_bytes

    import io

    buffer = io.BytesIO()
    np.save(buffer, features)
    atomic_write_bytes(npy, buffer.getvalue())  # a failed write leaves no partial or temporary file
    atomic_write_bytes(csv, manifest.to_csv(index=False).encode())
    # Written last: its presence marks a complete cache entry.
    atomic_write_bytes(skipped_json, skipped.to_json(orient="records").encode())


def read_cache(npy: str | Path, config: FeatureConfig = FeatureConfig()) -> tuple[np.ndarray, pd.DataFrame]:
    """The maps and manifest of a feature cache written by :func:`extract`
    (``<key>.npy`` with ``<key>.csv`` and ``<key>.skipped.json`` beside it),
    read as :func:`extract` reads them back: speaker and session stay
    strings, so the folds made from the manifest are the runner's."""
    npy = Path(npy)
    return _load_cache(npy, npy.with_suffix(".csv"), npy.with_name(npy.stem + ".skipped.json"), config)


def _load_cache(npy: Path, csv: Path, skipped_json: Path, config: FeatureConfig) -> tuple[np.ndarray, pd.DataFrame]:
    """The cached maps and manifest, checked against each other and the config."""
    features = np.load(npy)
    manifest = pd.read_csv(csv, dtype={"speaker": str, "session": str}, keep_default_na=False)
    manifest.attrs["skipped"] = json.loads(skipped_json.read_text())
    if features.shape[1:] != (1, *config.shape) or len(features) != len(manifest):
        raise ValueError(f"{npy.name} holds maps of shape {features.shape} for {len(manifest)} rows of {csv.name}, "
                         f"expected ({len(manifest)}, 1, {config.shape[0]}, {config.shape[1]})")
    if not np.isfinite(features).all():
        raise ValueError(f"{npy.name} holds non-finite values")
    return features, manifest


NORMALIZATIONS = ("train", "speaker")


def speaker_standardize(features: np.ndarray, speakers) -> np.ndarray:
    """Standardise each speaker's maps with that speaker's own statistics.

    Every row (coefficient or mel band) of a speaker's maps gets zero mean and
    unit variance over all of that speaker's utterances and time columns. It
    removes much of what makes voices differ (vocal tract, microphone, level)
    and keeps what differs between one speaker's utterances. It uses no
    labels; for a test speaker it uses that speaker's unlabelled audio (the
    "speaker normalisation" common in cross-corpus and leave-speaker-out SER).

    Parameters
    ----------
    features : ndarray, shape (n, 1, rows, columns)
    speakers : sequence of n speaker keys

    Returns
    -------
    ndarray, shape of ``features``, float32
    """
    speakers = np.asarray(list(speakers), dtype=object)
    if len(speakers) != len(features):
        raise ValueError(f"{len(speakers)} speaker keys for {len(features)} maps")
    check_finite(features)
    out = np.empty(features.shape, np.float32)
    for key in pd.unique(speakers):
        rows = np.flatnonzero(speakers == key)
        block = features[rows]
        mean = block.mean(axis=(0, 1, 3), dtype=np.float64)[:, None]
        std = np.maximum(block.std(axis=(0, 1, 3), dtype=np.float64), 1e-6)[:, None]
        out[rows] = (block - mean) / std
    return out


def check_finite(features: np.ndarray, names=None) -> None:
    """Raise ``ValueError`` naming the maps (by ``names``, else by index) that hold NaN or inf."""
    bad = np.flatnonzero(~np.isfinite(features.reshape(len(features), -1)).all(axis=1))
    if len(bad):
        shown = [str(names[i]) if names is not None else f"map {i}" for i in bad[:5]]
        raise ValueError(f"{len(bad)} feature maps are not finite: {', '.join(shown)}; extract them again "
                         "(emokit.features.extract skips such files) or remove the files")


@dataclass
class Normalizer:
    """Per-coefficient standardisation, fitted on training speakers only.

    ``mean`` and ``std`` have shape (rows,): one value per MFCC coefficient
    (or mel band), pooled over utterances and time.
    """

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, features: np.ndarray, names=None) -> "Normalizer":
        """Fit on ``features`` of shape (n, 1, rows, columns); ``names`` (one
        per map, e.g. file paths) name the maps that are not finite."""
        if len(features) == 0:
            raise ValueError("cannot fit a Normalizer on zero utterances")
        check_finite(features, names)
        mean = features.mean(axis=(0, 1, 3), dtype=np.float64)
        std = features.std(axis=(0, 1, 3), dtype=np.float64)
        return cls(mean.astype(np.float32), np.maximum(std, 1e-6).astype(np.float32))

    def __call__(self, features: np.ndarray) -> np.ndarray:
        return ((features - self.mean[:, None]) / self.std[:, None]).astype(np.float32)

    def to_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, data: dict) -> "Normalizer":
        return cls(np.asarray(data["mean"], np.float32), np.asarray(data["std"], np.float32))

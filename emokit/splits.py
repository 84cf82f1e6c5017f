"""Speaker-independent cross-validation folds.

Each fold holds out a group of speakers as the test set. The remaining
(training) speakers' utterances are split, stratified by label, into

- ``val``: model selection (early stopping, best epoch) -- never the test set;
  a share of the training speakers' utterances, or with ``val_speakers`` all
  utterances of that many training speakers, so that selection, like the
  test, meets voices it never trained on;
- ``search``: the architecture search (paper: 70 % of the rest);
- ``train``: retraining the found architecture (paper: 30 %).

Test groups follow the paper where it says how (one IEMOCAP / MSP-IMPROV
session per fold) and pair one male with one female speaker for acted corpora
with balanced genders (EmoDB: 5 folds, EMOVO: 3 folds). Other corpora get
speaker groups balanced by class (:func:`fold_imbalance`); a test fold that
still lacks a class is named in a warning, and its UA is the mean recall
over the classes it holds (:func:`emokit.metrics.evaluate`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupKFold, StratifiedGroupKFold, train_test_split

from emokit.data import CANONICAL_LABELS

ROLES = ("search", "train", "val", "test")
SCHEMES = ("auto", "session", "gender_pairs", "groups")
SESSION_CORPORA = ("iemocap", "msp_improv")


@dataclass(frozen=True, eq=False)  # eq=False: pandas Series do not compare to a bool
class Fold:
    """One cross-validation fold.

    Parameters
    ----------
    index : int
        Fold number, from 0.
    test_speakers : tuple of str
        Speakers held out for testing (keys as in :func:`speaker_keys`).
    roles : pandas.Series
        Indexed like the manifest; each row's role, one of :data:`ROLES`.
    row_speakers : pandas.Series, optional
        Each row's speaker key, for :meth:`speakers`.
    """

    index: int
    test_speakers: tuple[str, ...]
    roles: pd.Series
    row_speakers: pd.Series | None = None

    def indices(self, role: str) -> np.ndarray:
        """Row positions (for ``manifest.iloc``) that have ``role``."""
        _check_role(role)
        return np.flatnonzero(self.roles.to_numpy() == role)

    def speakers(self, role: str) -> tuple[str, ...]:
        """Sorted speakers with at least one row in ``role``."""
        _check_role(role)
        if self.row_speakers is None:
            raise ValueError("this Fold was built without row_speakers; pass them to use speakers()")
        return tuple(sorted(set(self.row_speakers.to_numpy()[self.indices(role)])))


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; roles are {', '.join(ROLES)}")


def speaker_keys(manifest: pd.DataFrame) -> pd.Series:
    """Speaker id per row, prefixed ``corpus/`` when the manifest mixes corpora.

    Speaker ids are only unique within a corpus (EmoDB ``"03"`` is not
    RAVDESS ``"03"``), so folds group by these keys. A manifest without a
    ``corpus`` column is one corpus.
    """
    speakers = manifest["speaker"].astype(str)
    if "corpus" in manifest and manifest["corpus"].nunique() > 1:
        return manifest["corpus"].astype(str) + "/" + speakers
    return speakers


def make_folds(
    manifest: pd.DataFrame,
    n_folds: int | None = None,
    seed: int = 0,
    search_fraction: float = 0.7,
    val_fraction: float = 0.15,
    scheme: str = "auto",
    val_speakers: int = 0,
) -> list[Fold]:
    """Speaker-independent folds with search / train / val / test roles.

    Parameters
    ----------
    manifest : pandas.DataFrame
        From :func:`emokit.data.load_corpus`.
    n_folds : int, optional
        Number of folds. Only free for ``"groups"`` (default 5, capped at the
        number of speakers); ``"session"`` and ``"gender_pairs"`` fix it and
        raise if it differs.
    seed : int
        Seeds the speaker grouping and the inner splits (mixed with the fold
        index, so folds differ from each other).
    search_fraction : float
        Share of the non-val training data used for the search (paper 0.7);
        the rest is ``train``.
    val_fraction : float
        Share of the training speakers' data held out as ``val`` first.
    val_speakers : int
        0: ``val`` is ``val_fraction`` of the training speakers' utterances.
        n >= 1: ``val`` is every utterance of n training speakers (drawn with
        the seed per fold; ``val_fraction`` is then unused), and no val
        speaker is in ``search`` or ``train``.
    scheme : {"auto", "session", "gender_pairs", "groups"}
        How test speakers are grouped. ``"auto"``: ``"session"`` for IEMOCAP
        and MSP-IMPROV; ``"gender_pairs"`` when every speaker's gender is
        known and there are as many men as women; else ``"groups"``.

    Returns
    -------
    list of Fold
        Each checked by :func:`check_fold`.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"unknown fold scheme {scheme!r}; known schemes: {', '.join(SCHEMES)}")
    if not isinstance(val_speakers, (int, np.integer)) or val_speakers < 0:
        raise ValueError(f"val_speakers must be a whole number >= 0, got {val_speakers!r}")
    if not 0 <= val_fraction < 1 or not 0 <= search_fraction <= 1:
        raise ValueError(f"need 0 <= val_fraction < 1 and 0 <= search_fraction <= 1, got {val_fraction}, {search_fraction}")
    keys = speaker_keys(manifest)
    if scheme == "auto":
        scheme = _auto_scheme(manifest, keys)

    if scheme == "session":
        groups = _session_groups(manifest, keys)
    elif scheme == "gender_pairs":
        groups = _gender_pair_groups(manifest, keys)
    else:
        groups = _balanced_groups(manifest, keys, n_folds or 5, seed)
    if scheme != "groups" and n_folds is not None and n_folds != len(groups):
        raise ValueError(f"scheme {scheme!r} gives {len(groups)} folds, not n_folds={n_folds}; "
                         "use scheme='groups' for another number of folds")

    folds = []
    for index, test_speakers in enumerate(groups):
        roles = _assign_roles(manifest, keys, test_speakers, search_fraction, val_fraction, seed, index, val_speakers)
        fold = Fold(index, tuple(sorted(test_speakers)), roles, keys)
        check_fold(fold, manifest)
        if val_speakers:  # whole speakers: none of them may train
            shared = set(fold.speakers("val")) & (set(fold.speakers("search")) | set(fold.speakers("train")))
            if shared:
                raise AssertionError(f"fold {index}: val speakers {sorted(shared)} also train")
        folds.append(fold)
    lacking = missing_classes(folds, manifest)
    if lacking:
        import warnings

        where = "; ".join(f"fold {i} has no {', '.join(classes)}" for i, classes in lacking.items())
        warnings.warn(f"{where} in its test speakers (no split of these speakers gives every test fold every class). "
                      "Such a fold's UA is the mean recall over the classes it holds; compare folds with care, or "
                      "use fewer folds (n_folds) or more speakers per class.", stacklevel=2)
    return folds


def fold_scheme(manifest: pd.DataFrame, scheme: str = "auto") -> str:
    """The scheme :func:`make_folds` uses for ``manifest`` (``"auto"`` resolved;
    :data:`SCHEME_RULES` says each in words)."""
    return _auto_scheme(manifest, speaker_keys(manifest)) if scheme == "auto" else scheme


SCHEME_RULES = {
    "session": "one recording session per fold (the published folds)",
    "gender_pairs": "one man and one woman per fold (EmoDB's and EMOVO's folds)",
    "groups": "speaker groups balanced by class",
}


def check_fold(fold: Fold, manifest: pd.DataFrame) -> None:
    """Raise ``ValueError`` if ``fold`` leaks a test speaker or does not fit ``manifest``.

    Checks that roles cover exactly the manifest's rows with known role names,
    that the test rows are exactly the test speakers' rows, and that no test
    speaker appears in any other role.
    """
    if len(fold.roles) != len(manifest) or not fold.roles.index.equals(manifest.index):
        raise ValueError(f"fold {fold.index}: roles are not indexed like the manifest ({len(fold.roles)} vs {len(manifest)} rows)")
    unknown = set(fold.roles.unique()) - set(ROLES)
    if unknown:
        raise ValueError(f"fold {fold.index}: unknown role(s) {sorted(unknown)}; roles are {ROLES}")
    keys = speaker_keys(manifest).to_numpy()
    is_test = fold.roles.to_numpy() == "test"
    leaked = sorted(set(fold.test_speakers) & set(keys[~is_test]))
    if leaked:
        where = {s: sorted(set(fold.roles.to_numpy()[(keys == s) & ~is_test])) for s in leaked}
        raise ValueError(f"fold {fold.index}: test speaker(s) leak into other roles: {where}")
    strangers = sorted(set(keys[is_test]) - set(fold.test_speakers))
    if strangers:
        raise ValueError(f"fold {fold.index}: test rows of speaker(s) {strangers} not listed in test_speakers")


def fold_table(folds: list[Fold], manifest: pd.DataFrame) -> pd.DataFrame:
    """One row per fold: test speakers, rows per role and test rows per class."""
    labels = manifest["label"].to_numpy()
    present = set(labels)
    classes = [c for c in CANONICAL_LABELS if c in present] + sorted(present - set(CANONICAL_LABELS))
    rows = []
    for fold in folds:
        row = {"fold": fold.index, "test_speakers": ", ".join(fold.test_speakers)}
        row.update({f"n_{role}": len(fold.indices(role)) for role in ROLES})
        test_labels = labels[fold.indices("test")]
        row.update({f"test_{c}": int((test_labels == c).sum()) for c in classes})
        rows.append(row)
    return pd.DataFrame(rows)


def describe_folds(folds: list[Fold], manifest: pd.DataFrame) -> str:
    """:func:`fold_table` as printable text."""
    return fold_table(folds, manifest).to_string(index=False)


# --------------------------------------------------------------------------
# test groups


def _auto_scheme(manifest: pd.DataFrame, keys: pd.Series) -> str:
    corpora = set(manifest["corpus"])
    if len(corpora) == 1 and corpora <= set(SESSION_CORPORA):
        return "session"
    genders = manifest.groupby(keys)["gender"].first()
    if genders.isin(["male", "female"]).all() and (genders == "male").sum() == (genders == "female").sum():
        return "gender_pairs"
    return "groups"


def _session_groups(manifest: pd.DataFrame, keys: pd.Series) -> list[list[str]]:
    """All speakers of one session per fold."""
    sessions = manifest["session"].astype(str)
    if (sessions == "").any():
        raise ValueError("scheme 'session' needs a session for every row; use scheme='groups'")
    return [sorted(set(keys[sessions == s])) for s in sorted(sessions.unique())]


def _gender_pair_groups(manifest: pd.DataFrame, keys: pd.Series) -> list[list[str]]:
    """Sorted men paired with sorted women: (m1, f1), (m2, f2) ..."""
    genders = manifest.groupby(keys)["gender"].first()
    men = sorted(genders.index[genders == "male"])
    women = sorted(genders.index[genders == "female"])
    if len(men) != len(women) or len(men) + len(women) != len(genders):
        raise ValueError(f"scheme 'gender_pairs' needs as many men as women and no unknown gender; "
                         f"got {len(men)} men, {len(women)} women, {len(genders) - len(men) - len(women)} unknown")
    return [[man, woman] for man, woman in zip(men, women)]


BALANCE_DRAWS = 20  # StratifiedGroupKFold draws that start _balanced_groups' local search
BALANCE_MAX_SPEAKERS = 200  # above it one draw: with many speakers a draw is balanced and a search slow


def _balanced_groups(manifest: pd.DataFrame, keys: pd.Series, n_folds: int, seed: int) -> list[list[str]]:
    """Speaker groups of similar size and class mix.

    A StratifiedGroupKFold draw is greedy: on a corpus whose speakers hold
    few emotions and very different numbers of files it can leave a class
    out of a test fold although a split holding every class exists. So, for
    corpora of up to :data:`BALANCE_MAX_SPEAKERS` speakers, the best of
    :data:`BALANCE_DRAWS` draws (seeded by ``seed``) by
    :func:`fold_imbalance` is improved by moving single speakers to other
    folds and swapping pairs of speakers while that lowers the imbalance
    (first the (fold, class) pairs without a test utterance, then the
    spread of class shares and fold sizes). Larger corpora get one draw.
    """
    n_speakers = keys.nunique()
    n_folds = min(n_folds, n_speakers)
    if n_folds < 2:
        raise ValueError(f"need at least 2 speakers for speaker-independent folds, got {n_speakers}")
    labels = manifest["label"].to_numpy()
    speakers = sorted(set(keys))
    counts = pd.crosstab(keys, labels).reindex(speakers).to_numpy(float)  # speaker x class
    overall = counts.sum(axis=0)
    small = n_speakers <= BALANCE_MAX_SPEAKERS
    states = np.random.SeedSequence(seed).generate_state(BALANCE_DRAWS) if small else [seed]
    best, best_score = None, None
    for state in states:
        splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=int(state))
        try:
            tests = [set(keys.iloc[test]) for _, test in splitter.split(manifest, labels, groups=keys)]
        except ValueError:  # a class too rare to stratify: plain group folds
            tests = [set(keys.iloc[test]) for _, test in GroupKFold(n_splits=n_folds).split(manifest, groups=keys)]
        fold_of = np.array([next(i for i, t in enumerate(tests) if s in t) for s in speakers])
        score = _score(_per_fold(counts, fold_of, n_folds), overall)
        if best_score is None or score < best_score:
            best, best_score = fold_of, score
    fold_of = _improve(counts, best, n_folds, overall) if small else best
    return [[s for s, f in zip(speakers, fold_of) if f == k] for k in range(n_folds)]


def _per_fold(counts: np.ndarray, fold_of: np.ndarray, n_folds: int) -> np.ndarray:
    """Test utterances per fold and class."""
    return np.stack([counts[fold_of == k].sum(axis=0) for k in range(n_folds)])


def _score(per_fold: np.ndarray, overall: np.ndarray) -> tuple[int, float]:
    sizes = per_fold.sum(axis=1)
    shares = per_fold / np.maximum(sizes, 1)[:, None]
    spread = 0.5 * np.abs(shares - overall / overall.sum()).sum(axis=1).mean() + sizes.std() / max(sizes.mean(), 1)
    return int((per_fold == 0).sum()), float(spread)


def _improve(counts: np.ndarray, fold_of: np.ndarray, n_folds: int, overall: np.ndarray) -> np.ndarray:
    """Local search: single-speaker moves and pair swaps while they lower :func:`_score`
    (each tried on the fold x class counts, updated by the speakers it moves)."""
    fold_of = fold_of.copy()
    per_fold = _per_fold(counts, fold_of, n_folds)
    score = _score(per_fold, overall)
    n = len(fold_of)
    # Moves first (speaker i to fold k), then swaps (speakers i and j), each pass in this order.
    candidates = [(i, None, k) for i in range(n) for k in range(n_folds)] + \
                 [(i, j, None) for i in range(n) for j in range(i + 1, n)]
    improved = True
    while improved:
        improved = False
        for i, j, k in candidates:
            a = fold_of[i]
            b = fold_of[j] if j is not None else k
            if a == b or (j is None and (fold_of == a).sum() == 1):  # no fold may lose its last speaker
                continue
            delta = counts[i] - (counts[j] if j is not None else 0)  # what fold a loses and fold b gains
            trial = per_fold.copy()
            trial[a] -= delta
            trial[b] += delta
            trial_score = _score(trial, overall)
            if trial_score < score:
                fold_of[i] = b
                if j is not None:
                    fold_of[j] = a
                per_fold, score, improved = trial, trial_score, True
    return fold_of


def fold_imbalance(test_labels: list[np.ndarray], labels: np.ndarray) -> tuple[int, float]:
    """How far test folds are from holding every class in the corpus's shares.

    Parameters
    ----------
    test_labels : one array of labels per fold's test set
    labels : every label of the corpus

    Returns
    -------
    (missing, spread): the number of (fold, class) pairs with no test
    utterance, and the mean over folds of the total-variation distance
    between the fold's class shares and the corpus's plus the relative
    spread of the folds' sizes (std / mean).
    """
    classes = np.unique(labels)
    per_fold = np.array([[(fold == c).sum() for c in classes] for fold in test_labels], dtype=float)
    return _score(per_fold, np.array([(labels == c).sum() for c in classes], dtype=float))


def missing_classes(folds: list[Fold], manifest: pd.DataFrame) -> dict[int, list[str]]:
    """Fold index -> the corpus's classes its test speakers never speak (only folds that miss one)."""
    labels = manifest["label"].to_numpy()
    present = sorted(set(labels))
    out = {}
    for fold in folds:
        tested = set(labels[fold.indices("test")])
        lacking = [c for c in present if c not in tested]
        if lacking:
            out[fold.index] = lacking
    return out


# --------------------------------------------------------------------------
# roles inside a fold


def _assign_roles(manifest, keys, test_speakers, search_fraction, val_fraction, seed, fold_index,
                  val_speakers=0) -> pd.Series:
    is_test = keys.isin(test_speakers).to_numpy()
    roles = np.full(len(manifest), "train", dtype=object)
    roles[is_test] = "test"
    labels = manifest["label"].to_numpy()
    # One reproducible stream per (seed, fold): folds get different splits.
    random_state = int(np.random.SeedSequence([seed, fold_index]).generate_state(1)[0])
    if val_speakers:
        training = sorted(set(keys[~is_test]))
        if val_speakers >= len(training):
            raise ValueError(f"val_speakers={val_speakers} leaves no training speaker: fold {fold_index} has "
                             f"{len(training)} ({', '.join(training)}); use fewer")
        chosen = np.random.default_rng(random_state).choice(training, size=val_speakers, replace=False)
        is_val = keys.isin(chosen).to_numpy()
        rest, val = np.flatnonzero(~is_test & ~is_val), np.flatnonzero(is_val)
    else:
        rest, val = _split(np.flatnonzero(~is_test), labels, val_fraction, random_state)
    train, search = _split(rest, labels, search_fraction, random_state + 1)
    roles[val], roles[search], roles[train] = "val", "search", "train"
    return pd.Series(roles, index=manifest.index, name="role")


def _split(positions: np.ndarray, labels: np.ndarray, fraction: float, random_state: int) -> tuple[np.ndarray, np.ndarray]:
    """Split positions into (rest, part) with ``fraction`` in part, stratified when possible."""
    n_part = int(round(fraction * len(positions)))
    if n_part == 0:
        return positions, positions[:0]
    if n_part == len(positions):
        return positions[:0], positions
    try:
        rest, part = train_test_split(positions, test_size=n_part, random_state=random_state, stratify=labels[positions])
    except ValueError:  # a class with one row, or fewer rows than classes
        rest, part = train_test_split(positions, test_size=n_part, random_state=random_state)
    return np.sort(rest), np.sort(part)

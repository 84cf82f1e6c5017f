"""A corpus of our making where speaker and emotion are confounded, and uneven.

Question: on a corpus whose speakers mostly speak one emotion, (a) do the
folds still hold every class in every test fold, and (b) what do speaker
normalisation and validation on shared speakers do to the scores?
Docs row: docs/results.md, "A confounded, uneven corpus" (the fold balance
table and the before/after table).

The corpus is built from the real EmoDB and EMOVO files (16 real speakers,
so no voice is in two "speakers"): 3 speakers keep all their files of the
four classes, the other 13 keep the files of one emotion only, a random
share of them (seeded), so that speakers hold 2 to 56 files. It is written
as a named corpus, ``<data>/<name>/manifest.csv`` (no gender column, so the
folds are speaker groups, not gender pairs):

    python studies/confounded_corpus.py --shared /work/shared/datasets --data own_data
    python studies/confounded_corpus.py --data own_data --folds      # fold balance: old rule vs new
    emokit run --preset quick --data own_data --corpora confounded --baselines random classical --workers 2
    emokit run --preset quick --data own_data --corpora confounded --baselines random classical --workers 2 \\
        --normalization train --val-speakers 1 --results results-after
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

SINGLE = {  # speaker -> the one emotion it keeps
    "emodb/08": "anger", "emodb/09": "anger", "emodb/10": "happiness", "emodb/11": "sadness", "emodb/12": "neutral",
    "emodb/13": "happiness", "emodb/14": "sadness", "emodb/15": "neutral", "emovo/f2": "anger", "emovo/f3": "sadness",
    "emovo/m1": "happiness", "emovo/m2": "neutral", "emovo/m3": "anger",
}
MIXED = ("emodb/03", "emodb/16", "emovo/f1")  # keep all four emotions


def build(shared: Path, seed: int = 0) -> pd.DataFrame:
    """The corpus's manifest rows (path, speaker, label)."""
    from emokit.data import load_corpus

    rng = np.random.default_rng(seed)
    rows = []
    for corpus in ("emodb", "emovo"):
        manifest = load_corpus(corpus, shared / corpus, check_audio=False)
        for speaker, part in manifest.groupby("speaker"):
            key = f"{corpus}/{speaker}"
            if key in SINGLE:
                part = part[part["label"] == SINGLE[key]]
                part = part.iloc[np.sort(rng.choice(len(part), size=int(rng.integers(2, len(part) + 1)), replace=False))]
            elif key not in MIXED:
                continue
            rows += [{"path": p, "speaker": key.replace("/", "_"), "label": label}
                     for p, label in zip(part["path"], part["label"])]
    return pd.DataFrame(rows)


def old_groups(manifest: pd.DataFrame, n_folds: int = 5, seed: int = 0) -> list[list[str]]:
    """The rule before balancing: one StratifiedGroupKFold draw (emokit <= ff62fba)."""
    from sklearn.model_selection import StratifiedGroupKFold

    from emokit.splits import speaker_keys

    keys = speaker_keys(manifest)
    splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    return [sorted(set(keys.iloc[test])) for _, test in splitter.split(manifest, manifest["label"], groups=keys)]


def report_folds(data: Path, name: str) -> None:
    import warnings

    from emokit.data import load_corpus
    from emokit.diagnosis import speaker_confound
    from emokit.splits import Fold, fold_imbalance, fold_table, make_folds, speaker_keys

    manifest = load_corpus(name, data / name)
    print(speaker_confound(manifest).describe(name))
    keys = speaker_keys(manifest)
    old = [Fold(i, tuple(g), pd.Series(np.where(keys.isin(g), "test", "train"), index=manifest.index), keys)
           for i, g in enumerate(old_groups(manifest))]
    print("\nbefore (one StratifiedGroupKFold draw):")
    print(fold_table(old, manifest).drop(columns=["n_search", "n_val"]).to_string(index=False))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        new = make_folds(manifest)
    print("\nafter (emokit's balanced speaker groups):")
    print(fold_table(new, manifest).drop(columns=["n_search", "n_val"]).to_string(index=False))
    for warning in caught:
        print("warning:", warning.message)
    labels = manifest["label"].to_numpy()
    for name, folds in (("before", old), ("after", new)):
        missing, spread = fold_imbalance([labels[f.indices("test")] for f in folds], labels)
        print(f"{name}: {missing} (fold, class) pairs without a test utterance; spread {spread:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, help="folder holding emodb/ and emovo/ (builds the corpus)")
    parser.add_argument("--data", type=Path, required=True, help="data root to write <name>/manifest.csv into")
    parser.add_argument("--name", default="confounded")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--folds", action="store_true", help="print the folds' class balance, old rule and new")
    args = parser.parse_args()
    if args.shared:
        table = build(args.shared, args.seed)
        out = args.data / args.name / "manifest.csv"
        out.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(out, index=False)
        counts = table.groupby("speaker").size()
        print(f"{out}: {len(table)} files, {len(counts)} speakers ({counts.min()}-{counts.max()} files each)")
        print(pd.crosstab(table["speaker"], table["label"]).to_string())
    if args.folds:
        report_folds(args.data, args.name)


if __name__ == "__main__":
    main()

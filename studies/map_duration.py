"""How long should the quick preset's maps be, now that EmoDB has natural

Question: How long should the quick preset's maps be, and does the cnn's single filter train?
Docs row: docs/results.md, "Choices of the quick preset".
lengths (1.4-9.0 s)? And does the cnn baseline's single filter train?

For each map duration, a hand-designed baseline is retrained with the quick
preset on every fold and seed. The duration is chosen on the **validation**
UA (utterances of the training speakers); test UA is printed beside it
only to report. With ``--cnn-filter`` the cnn baseline is trained plain,
with the BatchNorm of its filter, and with that and a positive initial
filter instead; per run the share of its filter's outputs above zero (a
dead filter: about 0) and the sum of its weights (its sign) are printed.

    python studies/map_duration.py --durations 3 4 5 6 --seeds 0 1 2
    python studies/map_duration.py --cnn-filter --seeds 0 1 2

Produces the map-duration and cnn rows of docs/results.md.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import soundfile  # noqa: E402
import torch  # noqa: E402

from emokit.data import corpus_root, load_corpus  # noqa: E402
from emokit.experiments import PRESETS, n_folds  # noqa: E402
from emokit.pipeline import prepare_fold  # noqa: E402
from emokit.train import TrainConfig, load_trained, train_model  # noqa: E402

QUICK = PRESETS["quick"]


def train_runs(corpus, data, duration, model, seeds, folder, model_kwargs=None, feature_dir="cache") -> list[dict]:
    rows = []
    for fold in range(n_folds(corpus, data)):
        fold_data = prepare_fold(corpus, fold, data, {**QUICK["features"], "duration": duration}, feature_dir,
                                 normalization=QUICK["normalization"], progress=False)
        for seed in seeds:
            run = Path(folder) / f"{model}-{duration}-{fold}-{seed}-{len(model_kwargs or {})}"
            metrics = train_model(model, fold_data, run, TrainConfig.from_dict({**QUICK["train"], "seed": seed}),
                                  model_kwargs={"input_shape": list(fold_data.x["train"].shape[2:]),
                                                **(model_kwargs or {})}, progress=False)
            row = dict(duration=duration, fold=fold, seed=seed, val_ua=100 * metrics["best_val_ua"],
                       test_ua=100 * metrics["ua"])
            if model == "cnn":
                net, _ = load_trained(run)
                with torch.no_grad():
                    front = net.front
                    out = front.norm(front.conv(torch.as_tensor(fold_data.x["train"])))
                row["filter_active"] = float((out > 0).float().mean())
                gain = front.norm.weight.item() if hasattr(front.norm, "weight") else 1.0
                row["filter_sum"] = float(front.conv.weight.sum()) * gain
            rows.append(row)
            print(row, flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default="emodb")
    parser.add_argument("--durations", nargs="+", type=float, default=[3.0, 4.0, 5.0, 6.0])
    parser.add_argument("--model", default="cnn_lstm_att")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--cnn-filter", action="store_true", help="cnn with and without its filter's BatchNorm")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    data = os.environ.get("EMOKIT_DATA", str(REPO.parent / "shared" / "datasets"))
    manifest = load_corpus(args.corpus, corpus_root(args.corpus, data))
    seconds = np.array([soundfile.info(p).duration for p in manifest["path"]])
    print(f"{args.corpus}: {len(seconds)} files, {seconds.min():.2f}-{seconds.max():.2f} s, quantiles 50/75/90/95 % "
          + " / ".join(f"{q:.2f}" for q in np.percentile(seconds, [50, 75, 90, 95])) + " s")
    with tempfile.TemporaryDirectory() as folder:
        if args.cnn_filter:
            duration = QUICK["features"]["duration"]
            variants = {"plain": {"batch_norm": False, "positive_filter": False},
                        "batch_norm": {"batch_norm": True, "positive_filter": False},
                        "batch_norm + positive filter": {"batch_norm": True, "positive_filter": True}}
            rows = [dict(r, variant=name) for name, kwargs in variants.items()
                    for r in train_runs(args.corpus, data, duration, "cnn", args.seeds, Path(folder) / name, kwargs)]
            key = "variant"
        else:
            rows = [r for d in args.durations for r in train_runs(args.corpus, data, d, args.model, args.seeds, folder)]
            for d in args.durations:
                print(f"{d:.1f} s maps: {100 * np.mean(seconds > d):.1f} % of the files cut")
            key = "duration"
    table = pd.DataFrame(rows)
    summary = table.groupby(key).agg(val_ua=("val_ua", "mean"), test_ua=("test_ua", "mean"),
                                     test_ua_std=("test_ua", "std"), lowest_test_ua=("test_ua", "min"),
                                     runs=("test_ua", "size"))
    if "filter_active" in table:
        summary["dead_filters"] = table.groupby(key)["filter_active"].apply(lambda a: int((a < 0.01).sum()))
    print(summary.round(2).to_string())
    print(f"chosen on validation UA: {key} = {summary['val_ua'].idxmax()}")


if __name__ == "__main__":
    main()

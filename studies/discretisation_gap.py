"""The discretisation gap of finished searches: the whole supernet against its genome alone.

Question: How much does a search's loss grow when its supernet is cut down to its genome?
Docs row: docs/journal/2026-12-05-results.md, "GDAS: a supernet of single paths".

For every search of one or more results folders: the loss on the search's
alpha half (held-out utterances of the training speakers) of the whole
supernet, of the genome it chose run alone with the supernet's weights, and
of random genomes of the same space run alone the same way
(:mod:`emokit.search.one_shot`). A supernet whose own genome does no better
alone than random genomes ranked ops inside a mixture the genome is not.

    python studies/discretisation_gap.py --results A/results B/results --random-genomes 5
"""
from __future__ import annotations

import argparse
import os
import warnings
from pathlib import Path

import pandas as pd

from emokit.pipeline import prepare_fold, search_space_for
from emokit.results import collect
from emokit.search.genotype import Genome, random_genome
from emokit.search.one_shot import one_shot_losses
from emokit.utils import read_json


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", nargs="+", required=True, help="results folders holding searches")
    parser.add_argument("--corpus", default="emodb")
    parser.add_argument("--scope", default="emodarts")
    parser.add_argument("--random-genomes", type=int, default=5)
    parser.add_argument("--data", default=os.environ.get("EMOKIT_DATA", "../shared/datasets"))
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    rows = []
    for results in map(Path, args.results):
        runs = collect(results)
        searches = runs[(runs["corpus"] == args.corpus) & (runs["name"] == args.scope) & (runs["status"] == "done")]
        folds = {}  # the seeds of a fold share its maps
        for run in searches.sort_values(["fold", "seed"]).itertuples():
            run_dir, fold = Path(run.run_dir), int(run.fold)
            settings = read_json(run_dir / "run.json")["settings"]
            if fold not in folds:
                folds[fold] = prepare_fold(args.corpus, fold, args.data, settings.get("features"), results / "features",
                                           normalization=settings.get("normalization", "train"),
                                           val_speakers=settings.get("val_speakers", 0), progress=False)
            data = folds[fold]
            space = search_space_for(data, settings.get("space"))
            genomes = {"own": Genome.load(run_dir / "search")} | {f"random {g}": random_genome(space, [g, fold])
                                                                  for g in range(args.random_genomes)}
            losses = one_shot_losses(run_dir / "search", data.x["search"], data.y["search"], genomes,
                                     data.speakers("search"))
            losses = losses.set_index("genome")["loss"]
            random_losses = losses[[g for g in genomes if g != "own"]]
            rows.append({"results": str(results), "run": run_dir.name, "supernet": losses["(supernet)"],
                         "own genome": losses["own"], "random mean": random_losses.mean(),
                         "random best": random_losses.min(),
                         "own below every random": bool(losses["own"] < random_losses.min())})
            print(f"{results} {run_dir.name}: supernet {losses['(supernet)']:.3f}, own genome {losses['own']:.3f}, "
                  f"random genomes {random_losses.mean():.3f} (best {random_losses.min():.3f})", flush=True)
    table = pd.DataFrame(rows)
    print("\nmeans per results folder (loss in nats on the alpha half):")
    print(table.groupby("results")[["supernet", "own genome", "random mean", "random best",
                                    "own below every random"]].mean().round(3).to_string())


if __name__ == "__main__":
    main()

"""Is there anything for the search to find? Genomes against seeds, and the supernet's ranking.

Question: Is there anything for the search to find: do genomes differ more than seeds, and does the supernet rank them?
Docs row: docs/findings.md, "Why" (from docs/journal/2026-12-05-results.md, "Is there anything for the search to find?").

For each fold: the genomes of the grid's searches (one per seed) and random
genomes of the same space, each retrained with the quick preset's recipe
under several training seeds. Prints

- how much of the spread of test UA the genome explains and how much the
  training seed (:func:`emokit.stats.genome_signal`, on the random genomes:
  the space's own spread);
- where the searched genomes fall among the random ones;
- whether each search's trained supernet ranks the genomes as retraining
  them does: Kendall's tau between the one-shot loss on the search's alpha
  half (:func:`emokit.search.selection.one_shot_loss`) and the genomes'
  mean validation UA (:func:`emokit.stats.ranking_agreement`).

Random genome ``g`` is drawn with the seed ``[g, fold]`` and searched genome
``s`` is the grid's search of seed ``s``, so genome g / s retrained with
training seed g / s is exactly the grid's ``random`` / ``emodarts`` run of
that seed (the script checks this where the grid has the run). Needs a
results folder of the quick preset with its searches (``make demo`` and
``emokit run --seeds 1 2``). Retraining runs are kept in ``--out`` and
resumed. Nothing here chooses anything: it is a diagnosis.

    python studies/space_signal.py --results results --fold 0 --random-genomes 9 --train-seeds 0 1
"""
from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from emokit.data import PAPER_CLASSES
from emokit.experiments import PRESETS
from emokit.pipeline import prepare_fold, retrain_fold, search_space_for
from emokit.results import collect
from emokit.search.genotype import Genome, random_genome
from emokit.search.one_shot import one_shot_losses
from emokit.stats import genome_signal, ranking_agreement

QUICK = PRESETS["quick"]


def grid_runs(results: Path, corpus: str) -> pd.DataFrame:
    """The finished runs of the results folder on ``corpus`` (:func:`emokit.results.collect`), by name, fold and seed."""
    runs = collect(results)
    return runs[(runs["corpus"] == corpus) & (runs["status"] == "done")].set_index(["name", "fold", "seed"])


def genomes_of_fold(searches: dict[int, Path], data, fold: int, random_genomes: int) -> dict[str, Genome]:
    """``searched-s`` (the grid's search of seed s) and ``random-g`` genomes."""
    genomes = {f"searched-{seed}": Genome.load(search) for seed, search in searches.items()}
    space = search_space_for(data, QUICK["space"])
    return genomes | {f"random-{g}": random_genome(space, [g, fold]) for g in range(random_genomes)}


def retrain(genomes: dict[str, Genome], data, out: Path, train_seeds: list[int], runs: pd.DataFrame,
            fold: int) -> pd.DataFrame:
    rows = []
    for name, genome in genomes.items():
        (out / name).mkdir(parents=True, exist_ok=True)
        genome.save(out / name / "genome.json")
        for seed in train_seeds:
            started = time.perf_counter()
            metrics = retrain_fold(data, out / name / f"train{seed}", "genome", genome_json=out / name / "genome.json",
                                   # one thread, as the grid's runs of two workers: the same sums, the same results
                                   train={**QUICK["train"], "seed": seed, "num_threads": 1}, net=QUICK["net"],
                                   progress=False)
            kind, index = name.split("-")
            grid_run = ("emodarts" if kind == "searched" else "random", fold, seed)
            if index == str(seed) and grid_run in runs.index:  # the same genome and seed as a grid run
                print(f"# {name} train{seed} equals the grid's run: {runs.loc[grid_run, 'ua'] == metrics['ua']}",
                      flush=True)
            rows.append({"fold": fold, "genome": name, "kind": kind, "seed": seed, "ua": metrics["ua"],
                         "val_ua": metrics["best_val_ua"], "seconds": round(time.perf_counter() - started, 1)})
            print(json.dumps(rows[-1]), flush=True)
    return pd.DataFrame(rows)


def one_shot(genomes: dict[str, Genome], data, searches: dict[int, Path], fold: int) -> pd.DataFrame:
    """The one-shot loss of every genome in each of the fold's supernets (one per search seed)."""
    return pd.concat([one_shot_losses(search, data.x["search"], data.y["search"], genomes, data.speakers("search"))
                      .assign(fold=fold, supernet=f"fold{fold}-seed{seed}") for seed, search in searches.items()])


def _signal_line(signal: dict) -> str:
    return (f"between-genome sd {signal['between_sd']:.2f}, seed sd {signal['within_sd']:.2f} points, "
            f"ICC {signal['icc']:.2f}, F {signal['f']:.2f}, p {signal['p']:.3f}")


def report(retrained: pd.DataFrame, losses: pd.DataFrame) -> None:
    taus = []
    for fold, runs in retrained.groupby("fold"):
        random_runs = runs[runs["kind"] == "random"]
        seeds = random_runs.groupby("genome").size().max()
        print(f"\n== fold {fold}: {random_runs['genome'].nunique()} random genomes x {seeds} seeds")
        print(f"   test UA: {_signal_line(genome_signal(random_runs, 'ua'))}")
        print(f"   validation UA: {_signal_line(genome_signal(random_runs, 'val_ua'))}")
        means = runs.groupby(["genome", "kind"])[["ua", "val_ua"]].mean().reset_index()
        random_means = means[means["kind"] == "random"]
        for _, row in means[means["kind"] == "searched"].iterrows():
            rank = int((random_means["ua"] > row["ua"]).sum()) + 1
            print(f"   {row['genome']}: mean test UA {100 * row['ua']:.2f}, rank {rank} of {len(random_means) + 1} "
                  f"among the random genomes (their mean {100 * random_means['ua'].mean():.2f}, "
                  f"range {100 * random_means['ua'].min():.2f}-{100 * random_means['ua'].max():.2f})")
        for supernet, scored in losses[losses["fold"] == fold].groupby("supernet"):
            whole = scored.loc[scored["genome"] == "(supernet)", "loss"].iloc[0]
            alone = scored.loc[scored["genome"] != "(supernet)", "loss"]
            joined = scored.merge(means, on="genome")
            on_val, on_test = ranking_agreement(joined["loss"], joined["val_ua"]), ranking_agreement(joined["loss"], joined["ua"])
            taus.append({"val": on_val["tau"], "test": on_test["tau"]})
            print(f"   supernet {supernet}: loss {whole:.3f} whole, {alone.min():.3f}-{alone.max():.3f} for a genome alone "
                  f"(chance {np.log(len(PAPER_CLASSES)):.3f}); Kendall tau with validation UA {on_val['tau']:+.2f} "
                  f"(p {on_val['p']:.3f}), with test UA {on_test['tau']:+.2f} (p {on_test['p']:.3f}), {on_val['n']} genomes")
    if retrained["fold"].nunique() > 1:
        random_runs = retrained[retrained["kind"] == "random"]
        print(f"\n== all {retrained['fold'].nunique()} folds, each genome against the genomes of its fold")
        print(f"   test UA: {_signal_line(genome_signal(random_runs, 'ua', within='fold'))}")
        print(f"   validation UA: {_signal_line(genome_signal(random_runs, 'val_ua', within='fold'))}")
        taus = pd.DataFrame(taus)
        print(f"   Kendall tau over {len(taus)} supernets: validation UA mean {taus['val'].mean():+.2f} "
              f"({taus['val'].min():+.2f} to {taus['val'].max():+.2f}), test UA mean {taus['test'].mean():+.2f} "
              f"({taus['test'].min():+.2f} to {taus['test'].max():+.2f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default="results", help="a quick-preset results folder with its searches")
    parser.add_argument("--corpus", default="emodb")
    parser.add_argument("--fold", type=int, nargs="+", default=[0])
    parser.add_argument("--random-genomes", type=int, default=9)
    parser.add_argument("--train-seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--data", default=os.environ.get("EMOKIT_DATA", "../shared/datasets"))
    parser.add_argument("--out", default="results/space_signal")
    parser.add_argument("--figure", default=None, help="save the figure of each fold here (a .png path; fold appended)")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    results, out = Path(args.results), Path(args.out)
    runs = grid_runs(results, args.corpus)
    retrained, losses = [], []
    for fold in args.fold:
        data = prepare_fold(args.corpus, fold, args.data, QUICK["features"], results / "features",
                            normalization=QUICK["normalization"], progress=False)
        searches = {seed: Path(runs.loc[("emodarts", fold, seed), "run_dir"]) / "search"
                    for seed in sorted(runs.loc["emodarts"].loc[fold].index)}
        genomes = genomes_of_fold(searches, data, fold, args.random_genomes)
        fold_out = out / args.corpus / f"fold{fold}"
        retrained.append(retrain(genomes, data, fold_out, args.train_seeds, runs, fold))
        losses.append(one_shot(genomes, data, searches, fold))
        retrained[-1].to_csv(fold_out / "retrained.csv", index=False)
        losses[-1].to_csv(fold_out / "one_shot.csv", index=False)
    retrained, losses = pd.concat(retrained), pd.concat(losses)
    report(retrained, losses)
    if args.figure:
        from emokit.viz.results import genome_spread_figure

        for fold in args.fold:
            figure = genome_spread_figure(retrained[retrained["fold"] == fold], losses[losses["fold"] == fold])
            path = Path(args.figure)
            figure.savefig(path.with_name(f"{path.stem}-fold{fold}{path.suffix}"), dpi=110, bbox_inches="tight")


if __name__ == "__main__":
    main()

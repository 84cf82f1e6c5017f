"""Did the search help? Paired statistics over fold x seed runs.

Every run of a grid is one (corpus, model, fold, seed). Two models run on
the same folds and seeds are compared *pairwise*: the difference of their
test UA on each (fold, seed), its mean with a bootstrap 95 % interval
(:func:`scipy.stats.bootstrap`) and a Wilcoxon signed-rank test
(:func:`scipy.stats.wilcoxon`, two-sided). Pairing removes what the folds
share (some speakers are simply harder), which a comparison of two means
with their standard deviations over folds would leave in.

The seeds of one fold share its speakers, so their differences are not
independent: a model may suit one fold's test speakers under every seed.
:func:`paired_comparisons` therefore also tests at the level of the fold
(the differences averaged over each fold's seeds, a one-sample t-test over
the folds: for a balanced grid the test of a mixed model with a random fold
effect), and a verdict of "better" or "worse" needs both tests.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from emokit.metrics import LIKELY_CAUSES
from emokit.search.genotype import Genome, genome_agreement

HAND_DESIGNED = ("cnn", "cnn_lstm", "cnn_lstm_att")
ALPHA = 0.05  # significance level of the verdicts


def paired_difference(a, b, n_resamples: int = 10_000, seed: int = 0) -> dict:
    """UA differences ``a - b`` of paired runs, in percentage points.

    Parameters
    ----------
    a, b : sequences of the same length, UA in [0, 1] of the same (fold, seed) runs

    Returns
    -------
    dict with ``n`` (pairs), ``mean`` (mean difference), ``ci_low``,
    ``ci_high`` (bootstrap 95 % percentile interval of the mean), ``p``
    (Wilcoxon signed-rank, two-sided; 1.0 when every difference is 0, NaN
    with fewer than 2 pairs), ``wins`` (pairs where ``a`` is higher).
    """
    diff = (np.asarray(a, dtype=float) - np.asarray(b, dtype=float)) * 100
    if len(diff) == 0:
        return {"n": 0, "mean": math.nan, "ci_low": math.nan, "ci_high": math.nan, "p": math.nan, "wins": 0}
    out = {"n": len(diff), "mean": float(diff.mean()), "wins": int((diff > 0).sum())}
    if np.all(diff == diff[0]):  # no spread (or one pair): the interval is the value itself
        out.update(ci_low=float(diff[0]), ci_high=float(diff[0]))
    else:
        interval = stats.bootstrap((diff,), np.mean, n_resamples=n_resamples, confidence_level=0.95,
                                   method="percentile", random_state=np.random.default_rng(seed)).confidence_interval
        out.update(ci_low=float(interval.low), ci_high=float(interval.high))
    if len(diff) < 2:
        out["p"] = math.nan
    elif np.all(diff == 0):
        out["p"] = 1.0
    else:
        out["p"] = float(stats.wilcoxon(diff, alternative="two-sided").pvalue)
    return out


def fold_level_difference(differences: pd.Series) -> dict:
    """Paired differences averaged over each fold's seeds, tested over the folds.

    Parameters
    ----------
    differences : Series of UA differences in percentage points, indexed by
        (fold, seed)

    Returns
    -------
    dict with ``folds`` (how many) and ``p_folds`` (one-sample two-sided
    t-test of the fold means against 0; NaN with fewer than 2 folds, 0 or 1
    when the fold means are all equal)
    """
    means = differences.groupby(level="fold").mean().to_numpy(float)
    if len(means) < 2:
        return {"folds": len(means), "p_folds": math.nan}
    if np.all(means == means[0]):  # no spread: t is infinite, or 0/0 when every mean is 0
        return {"folds": len(means), "p_folds": 1.0 if means[0] == 0 else 0.0}
    return {"folds": len(means), "p_folds": float(stats.ttest_1samp(means, 0.0).pvalue)}


def paired_test(a: pd.Series, b: pd.Series) -> dict:
    """:func:`paired_difference` of ``a - b`` over the runs and
    :func:`fold_level_difference` over the folds; ``a`` and ``b`` are UA in
    [0, 1] indexed alike, with a ``fold`` level."""
    return {**paired_difference(a, b), **fold_level_difference((a - b) * 100)}


def best_hand_designed(results: pd.DataFrame, corpus: str) -> str | None:
    """The hand-designed baseline with the highest mean test UA on ``corpus``:
    the strongest competitor the kit offers (a reporting choice, not a model
    selection: nothing is trained on it)."""
    done = results[(results["status"] == "done") & (results["corpus"] == corpus)
                   & results["name"].isin(HAND_DESIGNED)]
    if done.empty:
        return None
    return str(done.groupby("name")["ua"].mean().idxmax())


def paired_comparisons(results: pd.DataFrame, model: str = "emodarts",
                       against: tuple[str, ...] = ("random", "random_search", "classical", "best baseline"),
                       ) -> pd.DataFrame:
    """``model`` against each of ``against`` (``"best baseline"``: see
    :func:`best_hand_designed`), per corpus, on the (fold, seed) runs both finished.

    Returns
    -------
    DataFrame with corpus, model, against, n, mean, ci_low, ci_high, p, wins
    (differences in UA percentage points), folds, p_folds
    (:func:`fold_level_difference`), suspect (paired runs scored below
    chance, :func:`emokit.metrics.below_chance`: no verdict is drawn then) and a
    ``verdict`` sentence.
    """
    done = results[results["status"] == "done"]
    rows = []
    for corpus in dict.fromkeys(done["corpus"]):
        part = done[done["corpus"] == corpus]
        table = part.pivot_table(index=["fold", "seed"], columns="name", values="ua", aggfunc="mean")
        suspects = (part.assign(flag=part["suspect"].notna().astype(int))
                    .pivot_table(index=["fold", "seed"], columns="name", values="flag", aggfunc="max")
                    if "suspect" in part else None)
        if model not in table:
            continue
        for other in against:
            name = best_hand_designed(results, corpus) if other == "best baseline" else other
            if name is None or name not in table:
                continue
            pairs = table[[model, name]].dropna()
            result = paired_test(pairs[model], pairs[name])
            result["suspect"] = int(suspects.reindex(pairs.index.tolist()).loc[:, [model, name]].fillna(0).to_numpy().sum()) \
                if suspects is not None and {model, name} <= set(suspects.columns) else 0
            label = f"{name} (best baseline)" if other == "best baseline" else name
            rows.append({"corpus": corpus, "model": model, "against": label, **result,
                         "verdict": verdict(model, label, result)})
    columns = ["corpus", "model", "against", "n", "mean", "ci_low", "ci_high", "p", "wins", "folds", "p_folds",
               "suspect", "verdict"]
    return pd.DataFrame(rows, columns=columns)


def decision(result) -> str:
    """What a paired difference shows: "better", "worse", "no difference
    shown", "too few" (fewer than 5 pairs) or "suspect" (a paired run scored
    below chance: the numbers are not a comparison of models). "better" and "worse" need a
    Wilcoxon p below :data:`ALPHA` with the bootstrap interval on one side
    of 0 and, where ``result`` has ``p_folds`` (:func:`fold_level_difference`),
    the test over the folds too."""
    if (result.get("suspect") or 0) > 0:
        return "suspect"
    if result["n"] < 5:
        return "too few"
    significant = result["p"] < ALPHA and ("p_folds" not in result or result["p_folds"] < ALPHA)
    if significant and result["ci_low"] > 0:
        return "better"
    if significant and result["ci_high"] < 0:
        return "worse"
    return "no difference shown"


def verdict(model: str, other: str, result: dict) -> str:
    """One sentence on a paired difference (:func:`decision`), with its numbers."""
    n, mean, low, high, p = (result[k] for k in ("n", "mean", "ci_low", "ci_high", "p"))
    numbers = (f"{mean:+.2f} UA points (95 % CI {low:+.2f} to {high:+.2f}, Wilcoxon p = {p:.3f}, "
               f"{result['wins']} of {n} paired runs higher")
    if "p_folds" in result:
        numbers += f"; over {result['folds']} folds, t-test p = {result['p_folds']:.3f}"
    numbers += ")"
    sentence = {"too few": f"{model} vs {other}: {numbers}; too few paired runs (fewer than 5) to tell.",
                "better": f"{model} beats {other}: {numbers}.",
                "worse": f"{model} is worse than {other}: {numbers}.",
                "no difference shown": f"{model} is not demonstrably better than {other}: {numbers}.",
                "suspect": f"{model} vs {other}: no verdict: {result.get('suspect')} of the paired runs scored below "
                           f"chance, likely from {LIKELY_CAUSES} ({numbers})."}
    return sentence[decision(result)]


def search_helped(comparisons: pd.DataFrame, corpus: str) -> str:
    """The plain answer for one corpus: did the search beat its random control?"""
    row = comparisons[(comparisons["corpus"] == corpus) & (comparisons["against"] == "random")]
    if row.empty:
        return f"{corpus}: no random control was run, so nothing shows that the search chose its genome for a reason."
    row = row.iloc[0]
    if decision(row) == "better":
        return f"{corpus}: the search helped: its genomes beat random genomes of the same space ({row['verdict']})"
    return (f"{corpus}: the search did not demonstrably help: its genomes are not significantly better than "
            f"random genomes of the same space ({row['verdict']})")


def agreement_across_seeds(results: pd.DataFrame) -> pd.DataFrame:
    """Per corpus, scope and fold: how alike the genomes of different seeds
    are (:func:`~emokit.search.genotype.genome_agreement`). A search that
    finds another genome for every seed is not finding much.

    Returns
    -------
    DataFrame with corpus, scope, fold, seeds, edges, ops (shares in [0, 1])
    """
    rows = []
    darts = results[(results["kind"] == "darts") & results["genome"].notna()]
    for (corpus, scope, fold), group in darts.groupby(["corpus", "name", "fold"], sort=True):
        if len(group) < 2:
            continue
        agreement = genome_agreement([Genome.from_json(g) for g in group["genome"]])
        rows.append({"corpus": corpus, "scope": scope, "fold": int(fold), "seeds": len(group), **agreement})
    return pd.DataFrame(rows, columns=["corpus", "scope", "fold", "seeds", "edges", "ops"])


def genome_signal(table: pd.DataFrame, value: str = "ua", within: str | None = None) -> dict:
    """How much of the spread of retrained accuracies is the genome's, and
    how much is the training seed's: a one-way random-effects ANOVA over
    genomes, each retrained with several seeds.

    If genomes of a space differ in accuracy by less than seeds of one genome
    do, a search of that space has little to find, and no comparison of a
    few searched against a few random genomes can show that it found it.

    Parameters
    ----------
    table : DataFrame with a ``genome`` column (any label), a ``seed``
        column and ``value`` (accuracy in [0, 1]); genomes with fewer than
        two seeds are left out
    within : a column of strata (e.g. ``"fold"``): genomes are compared
        only with genomes of their stratum (each fold's own mean), and the
        strata's sums of squares are pooled into one test

    Returns
    -------
    dict with ``genomes``, ``runs``, ``f`` and ``p`` (F-test of equal
    genome means), ``between_sd`` (estimated spread of the genomes' true
    means) and ``within_sd`` (spread of one genome over seeds), both in
    percentage points, and ``icc`` (share of the variance due to the genome,
    ICC(1); 0 when the between-genome mean square is no larger than the
    within one).
    """
    strata = table.groupby(within) if within else [(None, table)]
    ss_between = ss_within = df_between = df_within = n_squares = 0.0
    genomes = runs = 0
    for _, part in strata:
        groups = [g[value].to_numpy(float) * 100 for _, g in part.groupby("genome") if len(g) >= 2]
        if len(groups) < 2:
            continue
        n = np.array([len(g) for g in groups])
        grand = np.concatenate(groups).mean()
        ss_between += sum(m * (g.mean() - grand) ** 2 for m, g in zip(n, groups))
        ss_within += sum(((g - g.mean()) ** 2).sum() for g in groups)
        df_between += len(groups) - 1
        df_within += n.sum() - len(groups)
        n_squares += (n ** 2).sum() / n.sum()
        genomes, runs = genomes + len(groups), runs + int(n.sum())
    if genomes < 2 or df_within == 0:
        raise ValueError("need at least 2 genomes (of one stratum) with 2 or more seeds each")
    ms_between, ms_within = ss_between / df_between, ss_within / df_within
    n0 = (runs - n_squares) / df_between  # seeds per genome (balanced: the count itself)
    between_var = max(0.0, (ms_between - ms_within) / n0)
    f = ms_between / ms_within if ms_within > 0 else math.inf
    return {"genomes": genomes, "runs": runs, "f": float(f), "p": float(stats.f.sf(f, df_between, df_within)),
            "between_sd": float(math.sqrt(between_var)), "within_sd": float(math.sqrt(ms_within)),
            "icc": float(between_var / (between_var + ms_within)) if between_var + ms_within > 0 else math.nan}


def genome_transfer(table: pd.DataFrame, value: str = "ua") -> dict:
    """Does a genome that is good on one fold's speakers stay good on
    another's? A two-way random-effects ANOVA of the same genomes retrained
    on every fold under the same seeds: genome, genome x fold and seed.

    A genome's quality that a search could find, on training speakers, and
    carry to unseen ones is its main effect. Differences that change from
    fold to fold (the interaction) can show up as a signal within one fold
    (:func:`genome_signal`) and still be out of any selection's reach.

    Parameters
    ----------
    table : DataFrame with ``genome``, ``fold`` and ``seed`` columns and
        ``value`` (accuracy in [0, 1]); every genome on every fold with the
        same number (2 or more) of seeds

    Returns
    -------
    dict with ``genomes``, ``folds``, ``seeds``; ``genome_sd`` (spread of
    the genomes' true means over folds) and ``genome_sd_upper`` (its
    one-sided 95 % upper bound), ``interaction_sd`` (spread of a
    genome's fold-specific deviations) and ``seed_sd``, in percentage points;
    ``f_genome`` and ``p_genome`` (genome mean square against the
    interaction's: a genome effect that holds across folds) and
    ``f_interaction``, ``p_interaction`` (against the seeds').
    """
    cells = table.groupby(["genome", "fold"])[value]
    counts = cells.size()
    genomes, folds = table["genome"].nunique(), table["fold"].nunique()
    if genomes < 2 or folds < 2 or len(counts) != genomes * folds or counts.nunique() != 1 or counts.iloc[0] < 2:
        raise ValueError(f"need every one of {genomes} genomes on every one of {folds} folds with the same number "
                         f"(2 or more) of seeds; got cells of {sorted(int(c) for c in counts.unique())} runs, {len(counts)} cells")
    n = int(counts.iloc[0])
    x = table[value].to_numpy(float) * 100
    grand = x.mean()
    cell = cells.mean().unstack() * 100  # genome x fold
    genome_means, fold_means = cell.mean(axis=1), cell.mean(axis=0)
    ss_genome = n * folds * ((genome_means - grand) ** 2).sum()
    ss_fold = n * genomes * ((fold_means - grand) ** 2).sum()
    ss_cells = n * ((cell - grand) ** 2).to_numpy().sum()
    ss_interaction = ss_cells - ss_genome - ss_fold
    ss_seed = ((x - grand) ** 2).sum() - ss_cells
    df_genome, df_interaction, df_seed = genomes - 1, (genomes - 1) * (folds - 1), genomes * folds * (n - 1)
    ms_genome, ms_interaction, ms_seed = ss_genome / df_genome, ss_interaction / df_interaction, ss_seed / df_seed
    f_genome = ms_genome / ms_interaction if ms_interaction > 0 else math.inf
    f_interaction = ms_interaction / ms_seed if ms_seed > 0 else math.inf
    # F_genome / theta follows F(df_genome, df_interaction), theta = 1 + n folds var_genome / E[MS_interaction]:
    # the one-sided 95 % upper bound of theta gives that of the genome sd (exact given E[MS_interaction]).
    theta_upper = f_genome / stats.f.ppf(0.05, df_genome, df_interaction)
    return {"genomes": genomes, "folds": folds, "seeds": n,
            "genome_sd": float(math.sqrt(max(0.0, (ms_genome - ms_interaction) / (n * folds)))),
            "genome_sd_upper": float(math.sqrt(max(0.0, theta_upper - 1) * ms_interaction / (n * folds))),
            "interaction_sd": float(math.sqrt(max(0.0, (ms_interaction - ms_seed) / n))),
            "seed_sd": float(math.sqrt(ms_seed)),
            "f_genome": float(f_genome), "p_genome": float(stats.f.sf(f_genome, df_genome, df_interaction)),
            "f_interaction": float(f_interaction),
            "p_interaction": float(stats.f.sf(f_interaction, df_interaction, df_seed))}


def ranking_agreement(one_shot_loss, accuracy) -> dict:
    """Kendall's tau between the genomes' order by one-shot loss (lower is
    better) and by their accuracy trained on their own: 1 when the supernet
    ranks them as training them does, about 0 when it ranks at random.

    Returns
    -------
    dict with ``n``, ``tau`` and ``p`` (two-sided test of tau = 0)
    """
    loss, acc = np.asarray(one_shot_loss, float), np.asarray(accuracy, float)
    if len(loss) != len(acc) or len(loss) < 3:
        raise ValueError(f"need 3 or more genomes with both figures, got {len(loss)} and {len(acc)}")
    result = stats.kendalltau(-loss, acc)
    return {"n": len(loss), "tau": float(result.statistic), "p": float(result.pvalue)}

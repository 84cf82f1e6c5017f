"""The controls that say whether the search helped: the classical baseline,
the random genome through the pipeline, and the paired statistics."""
import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from emokit.classical import ClassicalConfig, fit_classical, functionals, normalise
from emokit.stats import (agreement_across_seeds, decision, fold_level_difference, paired_comparisons, paired_difference,
                          search_helped, verdict)


def _learnable_functionals(labels, seed=0, dims=6):
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(len(labels), dims))
    values[np.arange(len(labels)), labels % dims] += 3.0  # class k raises feature k
    return values


def test_classical_baseline_learns_and_writes_a_finished_run(tiny_fold_data, tmp_path):
    values = _learnable_functionals(tiny_fold_factory_labels(tiny_fold_data))
    metrics = fit_classical(values, tiny_fold_data, tmp_path, ClassicalConfig(c_grid=(0.1, 1.0)))
    assert metrics["ua"] > 0.7 and metrics["n"] == 16 and metrics["best_c"] in (0.1, 1.0)
    assert set(metrics["val_ua_by_c"]) == {"0.1", "1.0"}
    assert metrics["parameters"] == 4 * 6 + 4
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_name"] == "classical" and config["fold"]["test_speakers"] == ["s4", "s5"]
    assert (tmp_path / "model.joblib").exists() and (tmp_path / "confusion.png").exists()
    svm = fit_classical(values, tiny_fold_data, tmp_path / "svm", ClassicalConfig(classifier="svm"))
    assert svm["ua"] > 0.7


def tiny_fold_factory_labels(data):
    return np.concatenate([data.y[r] for r in data.y])[np.argsort(np.concatenate(
        [data.fold.indices(r) for r in data.y]))]


@pytest.mark.parametrize("normalization", ["train", "speaker"])
def test_classical_baseline_never_fits_or_selects_on_test_speakers(tiny_fold_factory, tmp_path, normalization):
    """Whatever the test speakers' functionals are, the chosen C, the fitted
    coefficients and the validation scores stay the same: only the test
    scores move."""
    import joblib

    from conftest import make_fold_data, tiny_layout

    labels, speakers, roles = tiny_layout()
    data = make_fold_data(np.zeros((48, 1, 4, 4), np.float32), labels, speakers, roles, normalization=normalization)
    values = _learnable_functionals(labels)
    test = np.array(roles) == "test"
    changed = values.copy()
    changed[test] = np.random.default_rng(5).normal(scale=50.0, size=(test.sum(), values.shape[1]))
    runs = [fit_classical(v, data, tmp_path / f"run{i}", ClassicalConfig()) for i, v in enumerate((values, changed))]
    assert runs[0]["best_c"] == runs[1]["best_c"] and runs[0]["val_ua_by_c"] == runs[1]["val_ua_by_c"]
    models = [joblib.load(tmp_path / f"run{i}" / "model.joblib") for i in range(2)]
    np.testing.assert_allclose(models[0].coef_, models[1].coef_)
    assert runs[0]["ua"] != runs[1]["ua"] or runs[0]["confusion"] != runs[1]["confusion"]
    assert np.allclose(normalise(values, data)[~test], normalise(changed, data)[~test])
    with pytest.raises(ValueError, match="not finite"):
        fit_classical(np.where(test[:, None], np.nan, values), data, tmp_path / "nan", ClassicalConfig())


def test_functionals_from_audio_are_cached(tmp_path, write_wav):
    paths = [write_wav(tmp_path / f"u{i}.wav", seconds=0.3, seed=i) for i in range(3)]
    values = functionals(paths, cache_dir=tmp_path / "cache", progress=False)
    assert values.shape == (3, 80) and np.isfinite(values).all()
    assert len(list((tmp_path / "cache").glob("functionals-mfcc_stats-*.npy"))) == 1
    np.testing.assert_array_equal(functionals(paths, cache_dir=tmp_path / "cache", progress=False), values)
    egemaps = functionals(paths[:1], ClassicalConfig(functionals="egemaps"), progress=False)
    assert egemaps.shape == (1, 88)
    with pytest.raises(ValueError, match="mfcc_stats, egemaps, compare"):
        ClassicalConfig(functionals="praat")


def test_paired_difference_matches_a_hand_computed_case():
    a = np.array([0.60, 0.70, 0.65, 0.80, 0.75])
    b = np.array([0.59, 0.68, 0.62, 0.76, 0.70])  # a - b = 1, 2, 3, 4, 5 points
    result = paired_difference(a, b)
    assert result["n"] == 5 and result["wins"] == 5 and result["mean"] == pytest.approx(3.0)
    # Wilcoxon, all 5 differences positive: the exact two-sided p is 2 / 2**5
    assert result["p"] == pytest.approx(2 / 32)
    assert 1.0 <= result["ci_low"] < 3.0 < result["ci_high"] <= 5.0
    constant = paired_difference([0.5] * 6, [0.48] * 6)
    assert constant["ci_low"] == constant["ci_high"] == pytest.approx(2.0) and constant["p"] < 0.05
    same = paired_difference([0.5, 0.6], [0.5, 0.6])
    assert same["mean"] == 0 and same["p"] == 1.0
    assert math.isnan(paired_difference([], [])["mean"])
    # five pairs, all won, still p = 0.0625: one seed of 5 folds can never show a significant difference
    assert verdict("emodarts", "random", result).startswith("emodarts is not demonstrably better than random")
    assert "too few" in verdict("emodarts", "random", paired_difference(a[:4], b[:4]))
    six = paired_difference(np.r_[a, 0.9], np.r_[b, 0.84])
    assert six["p"] == pytest.approx(2 / 64) and verdict("emodarts", "random", six).startswith("emodarts beats random")


def _results(ua_by_name: dict, folds=5, seeds=(0,)):
    rows = []
    for name, values in ua_by_name.items():
        for (fold, seed), ua in zip([(f, s) for f in range(folds) for s in seeds], values):
            rows.append({"corpus": "emodb", "name": name, "kind": "darts" if name == "emodarts" else "baseline",
                         "fold": fold, "seed": seed, "status": "done", "ua": ua, "genome": None})
    return pd.DataFrame(rows)


def test_paired_comparisons_and_the_plain_answer():
    darts = [0.80, 0.82, 0.78, 0.85, 0.79, 0.81]
    results = _results({"emodarts": darts, "random": [u - 0.03 for u in darts], "classical": darts,
                        "cnn": [0.4] * 6, "cnn_lstm_att": [u + 0.05 for u in darts]}, folds=3, seeds=(0, 1))
    table = paired_comparisons(results).set_index("against")
    assert list(table.index) == ["random", "classical", "cnn_lstm_att (best baseline)"]
    assert table.loc["random", "mean"] == pytest.approx(3.0) and table.loc["random", "n"] == 6
    assert table.loc["classical", "p"] == 1.0
    assert "is worse than cnn_lstm_att" in table.loc["cnn_lstm_att (best baseline)", "verdict"]
    assert search_helped(paired_comparisons(results), "emodb").startswith("emodb: the search helped")
    level = _results({"emodarts": darts, "random": [0.81, 0.80, 0.80, 0.84, 0.81, 0.80]}, folds=3, seeds=(0, 1))
    assert "did not demonstrably help" in search_helped(paired_comparisons(level), "emodb")
    assert "no random control" in search_helped(paired_comparisons(_results({"emodarts": darts})), "emodb")


def test_agreement_across_seeds():
    from emokit.search.genotype import random_genome
    from emokit.search.supernet import SearchSpace

    genomes = [random_genome(SearchSpace(), [s, 0]).to_json() for s in range(3)]
    results = pd.DataFrame({"corpus": "emodb", "name": "emodarts", "kind": "darts", "fold": 0, "seed": [0, 1, 2],
                            "status": "done", "genome": [genomes[0], genomes[0], genomes[1]]})
    row = agreement_across_seeds(results).iloc[0]
    assert row["seeds"] == 3 and 1 / 3 < row["ops"] < 1


def test_genome_signal_matches_a_hand_computed_anova():
    from scipy import stats as scipy_stats

    from emokit.stats import genome_signal

    # Genome means 81, 71, 91 (grand mean 81); each genome's two seeds 2 points apart.
    table = pd.DataFrame({"genome": ["a", "a", "b", "b", "c", "c"], "seed": [0, 1] * 3,
                          "ua": [0.80, 0.82, 0.70, 0.72, 0.90, 0.92]})
    signal = genome_signal(table)
    # MS between = 2 * (0 + 100 + 100) / 2 = 200, MS within = (2 + 2 + 2) / 3 = 2, F = 100,
    # genome variance (200 - 2) / 2 = 99, ICC 99 / (99 + 2).
    assert signal["genomes"] == 3 and signal["runs"] == 6
    assert signal["f"] == pytest.approx(100.0)
    assert signal["p"] == pytest.approx(scipy_stats.f.sf(100.0, 2, 3))
    assert signal["between_sd"] == pytest.approx(math.sqrt(99)) and signal["within_sd"] == pytest.approx(math.sqrt(2))
    assert signal["icc"] == pytest.approx(99 / 101)
    # Seeds spread more than genomes: no genome signal at all.
    noisy = pd.DataFrame({"genome": ["a", "a", "b", "b"], "seed": [0, 1] * 2, "ua": [0.70, 0.90, 0.71, 0.89]})
    flat = genome_signal(noisy)
    assert flat["between_sd"] == 0 and flat["icc"] == 0 and flat["p"] > 0.9
    one_seed = pd.concat([table, pd.DataFrame({"genome": ["d"], "seed": [0], "ua": [0.5]})])
    assert genome_signal(one_seed)["genomes"] == 3  # a genome with one seed says nothing about seeds
    with pytest.raises(ValueError, match="at least 2 genomes"):
        genome_signal(table[table["genome"] == "a"])
    # Two folds, the second 10 points easier: within folds the same test as one fold, with
    # twice the degrees of freedom (4 and 6); pooled across folds the fold's offset would count.
    folds = pd.concat([table.assign(fold=0), table.assign(fold=1, ua=table["ua"] + 0.1)])
    pooled = genome_signal(folds, within="fold")
    assert pooled["genomes"] == 6 and pooled["f"] == pytest.approx(100.0)
    assert pooled["p"] == pytest.approx(scipy_stats.f.sf(100.0, 4, 6)) and pooled["icc"] == pytest.approx(99 / 101)
    assert genome_signal(folds)["genomes"] == 3  # without strata, "a" of both folds is one genome
    assert genome_signal(noisy)["p"] == pytest.approx(scipy_stats.f_oneway([70, 90], [71, 89]).pvalue)


def test_genome_transfer_matches_a_hand_computed_two_way_anova():
    from scipy import stats as scipy_stats

    from emokit.stats import genome_transfer

    # Cell means (genome x fold): a 81 / 85, b 71 / 79; each cell's two seeds 1 point either side.
    means = {("a", 0): 81, ("a", 1): 85, ("b", 0): 71, ("b", 1): 79}
    table = pd.DataFrame([{"genome": g, "fold": f, "seed": s, "ua": (m + d) / 100}
                          for (g, f), m in means.items() for s, d in enumerate((-1, 1))])
    t = genome_transfer(table)
    # Grand 79; genome means 83, 75; fold means 76, 82. SS genome 2*2*(16+16) = 128,
    # SS fold 72, SS cells 2*(4+36+64+0) = 208, SS interaction 8, SS seed 8 (df 1, 1, 4):
    # MS 128, 8, 2. Genome variance (128-8)/(2*2) = 30, interaction (8-2)/2 = 3.
    assert (t["genomes"], t["folds"], t["seeds"]) == (2, 2, 2)
    assert t["f_genome"] == pytest.approx(16.0) and t["p_genome"] == pytest.approx(scipy_stats.f.sf(16.0, 1, 1))
    assert t["f_interaction"] == pytest.approx(4.0)
    assert t["p_interaction"] == pytest.approx(scipy_stats.f.sf(4.0, 1, 4))
    assert t["genome_sd"] == pytest.approx(math.sqrt(30)) and t["interaction_sd"] == pytest.approx(math.sqrt(3))
    assert t["seed_sd"] == pytest.approx(math.sqrt(2))
    # Upper bound: F / F_0.05(1, 1) bounds 1 + (2*2) var_genome / 8.
    theta = 16.0 / scipy_stats.f.ppf(0.05, 1, 1)
    assert t["genome_sd_upper"] == pytest.approx(math.sqrt((theta - 1) * 8 / 4)) and t["genome_sd_upper"] > t["genome_sd"]
    # Genomes that swap places from fold to fold: a large signal within each fold, none that carries.
    swapped = pd.DataFrame([{"genome": g, "fold": f, "seed": s,
                             "ua": (80 + (5 if (g == "a") == (f == 0) else -5) + d) / 100}
                            for g in "ab" for f in (0, 1) for s, d in enumerate((-1, 1))])
    crossed = genome_transfer(swapped)
    assert crossed["genome_sd"] == 0 and crossed["p_genome"] > 0.9 and crossed["genome_sd_upper"] == 0
    assert crossed["interaction_sd"] > 4 and crossed["p_interaction"] < 1e-3
    with pytest.raises(ValueError, match="every one of 2 genomes on every one of 2 folds"):
        genome_transfer(table.iloc[1:])


def test_ranking_agreement_is_kendalls_tau_with_the_lowest_loss_best():
    from emokit.stats import ranking_agreement

    assert ranking_agreement([0.5, 0.6, 0.7, 0.8], [0.9, 0.8, 0.7, 0.6])["tau"] == pytest.approx(1.0)
    assert ranking_agreement([0.5, 0.6, 0.7, 0.8], [0.6, 0.7, 0.8, 0.9])["tau"] == pytest.approx(-1.0)
    # One swapped pair of 6: tau = (5 - 1) / 6.
    result = ranking_agreement([0.1, 0.2, 0.3, 0.4], [0.9, 0.8, 0.6, 0.7])
    assert result["n"] == 4 and result["tau"] == pytest.approx(4 / 6)
    with pytest.raises(ValueError, match="3 or more genomes"):
        ranking_agreement([0.1, 0.2], [0.5, 0.6])


def test_a_verdict_also_needs_the_folds_whose_seeds_share_their_speakers():
    # 5 folds x 3 seeds: every seed of folds 0-3 favours emodarts by 2-4 points,
    # every seed of fold 4 disfavours it by 2: 12 of 15 runs won, 4 of 5 folds.
    gains = {0: [2, 3, 4], 1: [3, 3, 3], 2: [2, 4, 3], 3: [4, 2, 3], 4: [-2, -2, -2]}
    darts = [0.8] * 15
    other = [0.8 - gains[f][s] / 100 for f in range(5) for s in range(3)]
    table = paired_comparisons(_results({"emodarts": darts, "random": other}, folds=5, seeds=(0, 1, 2)))
    row = table.iloc[0]
    assert row["n"] == 15 and row["folds"] == 5 and row["wins"] == 12
    fold_means = np.array([3.0, 3.0, 3.0, 3.0, -2.0])  # by hand: t = mean / (sd / sqrt(5)), 4 degrees of freedom
    t = fold_means.mean() / (fold_means.std(ddof=1) / math.sqrt(5))
    assert row["p_folds"] == pytest.approx(2 * scipy_stats.t.sf(abs(t), 4))
    assert row["p"] < 0.05 and row["p_folds"] > 0.05  # the runs alone would call it a win
    assert decision(row) == "no difference shown"
    assert "over 5 folds, t-test p = " in row["verdict"] and "not demonstrably better" in row["verdict"]
    assert "did not demonstrably help" in search_helped(table, "emodb")
    one_fold = fold_level_difference(pd.Series([1.0, 2.0], index=pd.MultiIndex.from_tuples(
        [(0, 0), (0, 1)], names=["fold", "seed"])))
    assert one_fold["folds"] == 1 and math.isnan(one_fold["p_folds"])

"""emokit.train: every model trains through the same loop, runs resume
exactly, finished runs are reused, and test speakers never leak."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
import torch

from emokit.metrics import evaluate
from emokit.models import build_model, count_parameters
from emokit.search.genotype import Genome
from emokit.train import LOG_COLUMNS, TrainConfig, _class_weights, load_trained, predict_logits, train_model

GENOME = Genome(
    normal=((("sep_conv_3x3", 0), ("skip_connect", 1)), (("max_pool_3x3", 0), ("dil_conv_3x3", 2))),
    reduce=((("max_pool_3x3", 0), ("skip_connect", 1)), (("avg_pool_3x3", 2), ("sep_conv_3x3", 1))),
    seq=((("lstm_1", 0), ("skip_connect", 1)), (("lstm_att_1", 2), ("rnn_1", 0))),
)
SETUPS = {  # name -> (genome, model_kwargs), all tiny
    "genome": (GENOME, {"cnn_cells": 2, "seq_cells": 1, "channels": 4, "seq_hidden": 8, "freq_bins": 2}),
    "cnn": (None, {"input_shape": (32, 32)}),
    "cnn_lstm": (None, {"input_shape": (32, 32), "units": 16, "hidden": 16}),
    "cnn_lstm_att": (None, {"input_shape": (32, 32), "units": 16, "hidden": 16}),
}
FAST = TrainConfig(epochs=2, batch_size=8, lr=0.05, device="cpu", num_threads=1)  # 1 thread: fast on a busy 2-core box
RUN_FILES = ("config.json", "metrics.json", "model.pt", "log.csv", "confusion.png", "curves.png")


@pytest.mark.parametrize("name", list(SETUPS))
def test_every_model_trains(name, tiny_fold_data, tmp_path):
    genome, kwargs = SETUPS[name]
    run = tmp_path / name
    threads = torch.get_num_threads()
    metrics = train_model(name, tiny_fold_data, run, FAST, genome=genome, model_kwargs=kwargs, progress=False)
    assert torch.get_num_threads() == threads  # num_threads=1 held for the run only

    expected = count_parameters(build_model(name, genome=genome, n_classes=4, **kwargs))
    assert metrics["parameters"] == expected > 0
    assert all((run / f).is_file() for f in RUN_FILES)
    assert not (run / "checkpoint.pt").exists()
    assert 0 <= metrics["ua"] <= 1 and 0 <= metrics["wa"] <= 1 and 0 <= metrics["best_val_ua"] <= 1
    assert metrics["n"] == len(tiny_fold_data.y["test"]) == 16
    assert metrics["best_epoch"] in (1, 2)
    log = pd.read_csv(run / "log.csv")
    assert list(log.columns) == list(LOG_COLUMNS) and list(log["epoch"]) == [1, 2]

    # model.pt holds the weights the test metrics came from
    model, config = load_trained(run)
    assert config["model_name"] == name and config["classes"] == list(tiny_fold_data.classes)
    assert config["fold"]["test_speakers"] == ["s4", "s5"]
    predicted = predict_logits(model, tiny_fold_data.x["test"]).argmax(1).numpy()
    assert evaluate(tiny_fold_data.y["test"], predicted, tiny_fold_data.classes)["ua"] == pytest.approx(metrics["ua"])


def test_finished_run_is_reused_not_retrained(tiny_fold_data, tmp_path):
    genome, kwargs = SETUPS["cnn"]
    first = train_model("cnn", tiny_fold_data, tmp_path, FAST, model_kwargs=kwargs, progress=False)
    calls = []
    again = train_model("cnn", tiny_fold_data, tmp_path, FAST, model_kwargs=kwargs, progress=False,
                        callback=calls.append, extra={"note": "extra is not part of the identity"})
    assert again == first and calls == []
    with pytest.raises(ValueError, match="another configuration"):
        train_model("cnn", tiny_fold_data, tmp_path, dataclasses.replace(FAST, lr=0.01), model_kwargs=kwargs,
                    progress=False)
    changed = dataclasses.replace(tiny_fold_data, x={**tiny_fold_data.x, "test": tiny_fold_data.x["test"] + 0.5})
    with pytest.raises(ValueError, match="another configuration"):  # other data: never the old metrics
        train_model("cnn", changed, tmp_path, FAST, model_kwargs=kwargs, progress=False)


class Interrupt(Exception):
    pass


AUGMENTED = dict(optimizer="adam", lr=0.01, time_shift=4, freq_masks=1, time_masks=1, mask_width=3, mixup=0.4,
                 label_smoothing=0.1)


@pytest.mark.parametrize("options", [{}, AUGMENTED], ids=["sgd", "adam-augmented"])
def test_interrupted_run_resumes_exactly(options, tiny_fold_data, tmp_path):
    genome, kwargs = SETUPS["genome"]  # dropout + BatchNorm + LSTM: the RNG and buffers must be restored
    config = dataclasses.replace(FAST, epochs=3, **options)
    run = dict(genome=genome, model_kwargs=kwargs, progress=False)
    whole = train_model("genome", tiny_fold_data, tmp_path / "whole", config, **run)

    def stop_after_first(record):
        if record["epoch"] == 1:
            raise Interrupt

    with pytest.raises(Interrupt):
        train_model("genome", tiny_fold_data, tmp_path / "cut", config, callback=stop_after_first, **run)
    assert (tmp_path / "cut" / "checkpoint.pt").exists() and not (tmp_path / "cut" / "metrics.json").exists()
    epochs_seen = []
    resumed = train_model("genome", tiny_fold_data, tmp_path / "cut", config,
                          callback=lambda r: epochs_seen.append(r["epoch"]), **run)

    assert epochs_seen == [2, 3]
    drop_time = lambda m: {k: v for k, v in m.items() if k != "train_seconds"}
    assert drop_time(resumed) == drop_time(whole)
    logs = [pd.read_csv(tmp_path / d / "log.csv").drop(columns="seconds") for d in ("whole", "cut")]
    pd.testing.assert_frame_equal(*logs)
    a, b = (torch.load(tmp_path / d / "model.pt", weights_only=True) for d in ("whole", "cut"))
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6)


def test_a_run_checkpointing_every_so_many_seconds_resumes_exactly_and_logs_every_epoch(tiny_fold_data, tmp_path):
    genome, kwargs = SETUPS["genome"]
    config = dataclasses.replace(FAST, epochs=3, checkpoint_every_s=3600)
    run = dict(genome=genome, model_kwargs=kwargs, progress=False)
    written = []
    whole = train_model("genome", tiny_fold_data, tmp_path / "whole", config, **run,
                        callback=lambda r: written.append((tmp_path / "whole" / "checkpoint.pt").exists()))
    assert written == [False, False, True]
    assert pd.read_csv(tmp_path / "whole" / "log.csv")["epoch"].tolist() == [1, 2, 3]

    def stop_after_second(record):
        if record["epoch"] == 2:
            raise Interrupt

    with pytest.raises(Interrupt):
        train_model("genome", tiny_fold_data, tmp_path / "cut", config, callback=stop_after_second, **run)
    assert pd.read_csv(tmp_path / "cut" / "log.csv")["epoch"].tolist() == [1, 2]  # the stop wrote both
    resumed = train_model("genome", tiny_fold_data, tmp_path / "cut", dataclasses.replace(config, checkpoint_every_s=0),
                          **run)
    drop_time = lambda m: {k: v for k, v in m.items() if k != "train_seconds"}
    assert drop_time(resumed) == drop_time(whole)


def test_a_run_stopped_early_logs_the_epochs_since_its_last_checkpoint(tiny_fold_data, tmp_path):
    config = dataclasses.replace(FAST, epochs=10, lr=0.0, lr_min=0.0, patience=2, checkpoint_every_s=3600)
    metrics = train_model("cnn", tiny_fold_data, tmp_path, config, model_kwargs=SETUPS["cnn"][1], progress=False)
    assert metrics["epochs_run"] == 3 and len(pd.read_csv(tmp_path / "log.csv")) == 3
    assert not (tmp_path / "checkpoint.pt").exists()


def test_early_stopping_on_val_ua(tiny_fold_data, tmp_path):
    # lr 0: the cnn baseline (no BatchNorm) never changes, so val UA never improves after epoch 1
    config = dataclasses.replace(FAST, epochs=10, lr=0.0, lr_min=0.0, patience=2)
    metrics = train_model("cnn", tiny_fold_data, tmp_path, config, model_kwargs=SETUPS["cnn"][1], progress=False)
    assert metrics["best_epoch"] == 1 and metrics["epochs_run"] == 3
    assert len(pd.read_csv(tmp_path / "log.csv")) == 3


def test_class_weights_and_train_roles(tiny_fold_data, tmp_path):
    np.testing.assert_allclose(_class_weights(np.array([0, 0, 0, 1]), 3).numpy(), [4 / 9, 4 / 3, 0.0], rtol=1e-6)
    config = dataclasses.replace(FAST, epochs=1, class_weights=True, train_roles=("search", "train"))
    metrics = train_model("cnn", tiny_fold_data, tmp_path, config, model_kwargs=SETUPS["cnn"][1], progress=False)
    assert metrics["epochs_run"] == 1


def test_test_speaker_leak_is_refused(tiny_fold_data, tmp_path):
    roles = tiny_fold_data.manifest["role"].copy()
    roles[tiny_fold_data.manifest["speaker"] == "s5"] = "val"
    roles.iloc[-1] = "test"  # s5 now has rows in both test and val
    leaky = dataclasses.replace(tiny_fold_data, manifest=tiny_fold_data.manifest.assign(role=roles))
    with pytest.raises(ValueError, match="s5"):
        train_model("cnn", leaky, tmp_path, FAST, model_kwargs=SETUPS["cnn"][1], progress=False)
    assert not (tmp_path / "model.pt").exists()


def test_train_config_round_trip_and_checks():
    config = TrainConfig(epochs=5, train_roles=["search", "train"], patience=3)
    assert config.train_roles == ("search", "train")
    assert TrainConfig.from_dict(config.to_dict()) == config
    for bad in ("test", "val"):
        with pytest.raises(ValueError, match="train_roles"):
            TrainConfig(train_roles=(bad,))


def test_paper_cnn_baseline_size():
    # Paper, section V: the hand-designed CNN has about 35 K trainable parameters.
    assert 30_000 < count_parameters(build_model("cnn", input_shape=(128, 128))) < 40_000


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_genome_network_sharing_relus_matches_the_plain_one(seed):
    """GenomeNet's fast path (one ReLU per state, shared by every op that
    reads it) against the plain cells: outputs, every gradient and the
    BatchNorm statistics, with drop-path on, for random genomes (reduction
    cells included), channels-last as in training."""
    from emokit.search.genotype import random_genome
    from emokit.search.supernet import SearchSpace

    genome = random_genome(SearchSpace(cnn_nodes=3, seq_nodes=2), seed)
    kwargs = dict(cnn_cells=3, seq_cells=1, channels=4, seq_hidden=8, freq_bins=2, drop_path=0.2)
    nets = [build_model("genome", genome, fast=fast, **kwargs).to(memory_format=torch.channels_last)
            for fast in (False, True)]
    nets[1].load_state_dict(nets[0].state_dict())
    x = torch.randn(6, 1, 32, 24).contiguous(memory_format=torch.channels_last)
    results = []
    for net in nets:
        torch.manual_seed(seed)  # the same drop-path masks
        logits = net.train()(x)
        torch.nn.functional.cross_entropy(logits, torch.arange(6) % 4).backward()
        results.append([logits.detach()] + [p.grad for p in net.parameters()] + list(net.buffers()))
    assert len(results[0]) == len(results[1])
    for plain, fast in zip(*results):
        torch.testing.assert_close(fast, plain, rtol=1e-5, atol=1e-6)  # gradients summed in another order
    from emokit.search import speed

    relus, cell = speed.SharedReLU(), nets[1].cnn_cells[0]
    with torch.no_grad():
        stem = nets[1].eval().stem(x)
        cell(stem, stem, 0.0, relus.apply)
    led_by_relu = [op for op in (cell.pre0, cell.pre1, *cell.ops) if speed.after_leading_relu(op) is not None]
    assert len(relus._done) < len(led_by_relu)  # pre0 and pre1 of the first cell both read the stem's output


def test_random_search_keeps_the_candidate_with_the_best_validation_ua(tiny_fold_data, tmp_path):
    import json

    from emokit.pipeline import random_search

    net = {"cnn_cells": 2, "seq_cells": 1, "channels": 4, "seq_hidden": 8, "freq_bins": 2}
    space = {"cnn_nodes": 2, "seq_nodes": 2}
    run = tmp_path / "random_search"
    metrics = random_search(tiny_fold_data, run, FAST, net, space, candidates=3, progress=False)
    candidates = [json.loads((run / "candidates" / str(i) / "metrics.json").read_text()) for i in range(3)]
    val = [c["best_val_ua"] for c in candidates]
    assert [c["best_val_ua"] for c in metrics["candidates"]] == val
    assert metrics["chosen"] == val.index(max(val))  # the first of a tie
    assert metrics["ua"] == candidates[metrics["chosen"]]["ua"]
    assert metrics["train_seconds"] == pytest.approx(sum(c["train_seconds"] for c in candidates))
    genomes = [Genome.from_dict(c["genome"]) for c in metrics["candidates"]]
    assert len(set(genomes)) == 3  # three different draws ...
    assert Genome.load(run / "genome.json") == genomes[metrics["chosen"]]
    again = random_search(tiny_fold_data, tmp_path / "again", FAST, net, space, candidates=3, progress=False)
    assert [Genome.from_dict(c["genome"]) for c in again["candidates"]] == genomes  # ... seeded
    # The run folder is the chosen model's: it reloads and scores the test speakers as reported.
    model, config = load_trained(run)
    assert config["model_name"] == "random_search" and config["extra"]["chosen"] == metrics["chosen"]
    predicted = predict_logits(model, tiny_fold_data.x["test"]).argmax(1).numpy()
    assert evaluate(tiny_fold_data.y["test"], predicted, tiny_fold_data.classes)["ua"] == pytest.approx(metrics["ua"])

    # Only validation chooses: a finished candidate is reused with its recorded metrics, so
    # rewriting them shows which one counts. A perfect test UA elsewhere changes nothing ...
    other = (metrics["chosen"] + 1) % 3
    path = run / "candidates" / str(other) / "metrics.json"
    path.write_text(json.dumps({**candidates[other], "ua": 1.0}))
    assert random_search(tiny_fold_data, run, FAST, net, space, candidates=3, progress=False)["chosen"] == metrics["chosen"]
    # ... a better validation UA does.
    path.write_text(json.dumps({**candidates[other], "best_val_ua": 1.01}))
    assert random_search(tiny_fold_data, run, FAST, net, space, candidates=3, progress=False)["chosen"] == other
    with pytest.raises(ValueError, match="1 or more candidates"):
        random_search(tiny_fold_data, run, FAST, net, space, candidates=0)


def test_a_cnn_trained_before_its_filter_was_normalised_still_loads(tiny_fold_data, tmp_path):
    genome, kwargs = SETUPS["cnn"]
    train_model("cnn", tiny_fold_data, tmp_path, FAST, model_kwargs={**kwargs, "batch_norm": False}, progress=False)
    config = json.loads((tmp_path / "config.json").read_text())
    config["model_kwargs"].pop("batch_norm")  # as an older emokit wrote it
    (tmp_path / "config.json").write_text(json.dumps(config))
    model, _ = load_trained(tmp_path)
    assert isinstance(model.front.norm, torch.nn.Identity)


def test_the_cnn_filter_is_normalised_and_starts_positive():
    torch.manual_seed(0)
    cnn = build_model("cnn", input_shape=(32, 32))
    assert isinstance(cnn.front.norm, torch.nn.BatchNorm2d) and (cnn.front.conv.weight >= 0).all()
    torch.manual_seed(0)
    paper = build_model("cnn", input_shape=(32, 32), batch_norm=False, positive_filter=False)
    assert isinstance(paper.front.norm, torch.nn.Identity) and (paper.front.conv.weight < 0).any()
    assert torch.equal(cnn.front.conv.weight, paper.front.conv.weight.abs())  # the same draw, its signs dropped

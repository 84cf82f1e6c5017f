"""The CUDA path: a tiny search (first and second order, PC-DARTS, bf16;
first order and PC-DARTS replay CUDA graphs by default), retraining, resume
and prediction on the GPU, CPU / GPU agreement, a search from CUDA graphs
against the eager one, and the memory check on the device.

Marked ``cuda``; skipped where torch sees no GPU. ``EMOKIT_TEST_DEVICE=cpu``
runs the same tests on the CPU (a check of the tests themselves on a machine
without a GPU; it proves nothing about CUDA).
"""
from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest
import torch

from emokit.resume import pack, unpack
from emokit.search.budget import estimate_cost
from emokit.search.loop import SearchConfig, SearchInterrupted, load_search, run_search
from emokit.search.memory import choose_recompute, free_bytes, step_bytes
from emokit.search.supernet import Supernet
from emokit.train import TrainConfig, load_trained, predict_logits, train_model

from test_search import TINY as SPACE, tiny_data

DEVICE = os.environ.get("EMOKIT_TEST_DEVICE", "cuda")
pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(DEVICE.startswith("cuda") and not torch.cuda.is_available(), reason="no CUDA device"),
]
cuda_only = pytest.mark.skipif(not DEVICE.startswith("cuda"), reason="CUDA graphs and CUDA memory need CUDA")

@pytest.mark.parametrize("options", [dict(order="first"), dict(order="second"), dict(partial_channels=2),
                                     dict(precision="bf16")], ids=["first", "second", "pc-darts", "bf16"])
def test_a_tiny_search_runs_on_the_device_and_resumes(options, tmp_path):
    x, y = tiny_data()
    space = SPACE if "partial_channels" not in options else SPACE.replace(partial_channels=options["partial_channels"])
    search_options = {k: v for k, v in options.items() if k != "partial_channels"}
    config = SearchConfig(epochs=2, batch_size=8, device=DEVICE, seed=0, **search_options)
    full = run_search(x, y, tmp_path / "full", space, config, progress=False)
    assert all(np.isfinite(h).all() for h in full.alpha_history.values())
    assert len(full.log) == 2 and full.log["weight_loss"].notna().all()

    def stop_after_first(record):
        if record["epoch"] == 1:
            raise SearchInterrupted("simulated crash")

    with pytest.raises(SearchInterrupted):
        run_search(x, y, tmp_path / "cut", space, config, callback=stop_after_first, progress=False)
    resumed = run_search(x, y, tmp_path / "cut", space, config, progress=False)
    assert resumed.genome == full.genome  # resumed on the device, to the same genome
    assert load_search(tmp_path / "cut").genome == full.genome


def test_cpu_and_device_agree_on_a_forward_pass():
    torch.manual_seed(0)
    model = Supernet(SPACE).eval()
    x = torch.randn(4, 1, 16, 16)
    with torch.no_grad():
        on_cpu = model(x)
        on_device = model.to(DEVICE)(x.to(DEVICE)).cpu()
    # TF32 is off for float32 convolutions by default in torch; the remaining
    # difference is summation order in cuDNN kernels.
    torch.testing.assert_close(on_device, on_cpu, rtol=1e-4, atol=1e-4)


def test_a_packed_checkpoint_holds_device_weights_beside_cpu_step_counts():
    # An Adam state on a GPU keeps its step counts on the CPU; packing once
    # concatenated both into one tensor and failed (found by a paper fold).
    model = torch.nn.Linear(3, 2).to(DEVICE)
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.ones(1, 3, device=DEVICE)).sum().backward()
    optimizer.step()
    tree = {"model": model.state_dict(), "opt": optimizer.state_dict()}
    back = unpack(pack(tree), map_location=DEVICE)
    assert torch.equal(back["model"]["weight"], tree["model"]["weight"])
    assert torch.equal(back["opt"]["state"][0]["exp_avg"], tree["opt"]["state"][0]["exp_avg"])
    assert back["opt"]["state"][0]["step"].item() == 1


def test_retraining_resume_and_prediction_on_the_device(tiny_fold_data, tmp_path):
    from test_train import GENOME, SETUPS

    kwargs = SETUPS["genome"][1]
    config = TrainConfig(epochs=3, batch_size=8, lr=0.05, device=DEVICE, time_shift=4, mixup=0.4)

    class Interrupt(Exception):
        pass

    def stop_after_second(record):
        if record["epoch"] == 2:
            raise Interrupt

    with pytest.raises(Interrupt):
        train_model("genome", tiny_fold_data, tmp_path / "cut", config, genome=GENOME, model_kwargs=kwargs,
                    callback=stop_after_second, progress=False)
    resumed = train_model("genome", tiny_fold_data, tmp_path / "cut", config, genome=GENOME, model_kwargs=kwargs,
                          progress=False)
    full = train_model("genome", tiny_fold_data, tmp_path / "full", config, genome=GENOME, model_kwargs=kwargs,
                       progress=False)
    log_full, log_cut = pd.read_csv(tmp_path / "full" / "log.csv"), pd.read_csv(tmp_path / "cut" / "log.csv")
    np.testing.assert_allclose(log_cut["train_loss"], log_full["train_loss"], rtol=1e-4)
    assert resumed["ua"] == pytest.approx(full["ua"])

    model, _ = load_trained(tmp_path / "full", device=DEVICE)
    logits = predict_logits(model, tiny_fold_data.x["test"], device=DEVICE)
    assert logits.device.type == "cpu" and torch.isfinite(logits).all()
    on_cpu = predict_logits(load_trained(tmp_path / "full", device="cpu")[0], tiny_fold_data.x["test"])
    torch.testing.assert_close(logits, on_cpu, rtol=1e-3, atol=1e-3)


def test_the_speed_path_on_the_device_matches_the_plain_reference():
    """On the GPU the fast supernet runs its tanh RNNs through cuDNN, not the
    CPU's grouped recurrence: same outputs and gradients as plain DARTS."""
    torch.manual_seed(0)
    plain = Supernet(SPACE, fast=False).to(DEVICE)
    fast = Supernet(SPACE).to(DEVICE)
    fast.load_state_dict(plain.state_dict())
    x, y = torch.randn(4, 1, 16, 16, device=DEVICE), torch.tensor([0, 1, 2, 3], device=DEVICE)
    results = []
    for net in (plain, fast):
        logits = net(x)
        torch.nn.functional.cross_entropy(logits, y).backward()
        results.append([logits.detach()] + [p.grad.clone() for p in net.parameters()])
    for reference, other in zip(*results):  # summation order differs: float rounding
        torch.testing.assert_close(other, reference, rtol=1e-4, atol=1e-5)


@cuda_only
def test_a_search_replayed_from_cuda_graphs_ends_where_the_eager_one_does(tmp_path):
    """Batches of 8 and 4 (two pairs of graphs), a large alpha_lr so that
    the alphas move; replays of the same kernels: float rounding only."""
    x, y = tiny_data()
    results = {}
    for graphs in (False, True):
        config = SearchConfig(epochs=3, batch_size=8, alpha_lr=3e-2, device=DEVICE, seed=0, cuda_graphs=graphs)
        results[graphs] = run_search(x, y, tmp_path / str(graphs), SPACE, config, progress=False)
        assert json.loads((tmp_path / str(graphs) / "summary.json").read_text())["cuda_graphs"] is graphs
    for cell, history in results[False].alpha_history.items():
        np.testing.assert_allclose(results[True].alpha_history[cell], history, rtol=1e-4, atol=1e-5)
    for column in ("weight_loss", "alpha_loss"):
        np.testing.assert_allclose(results[True].log[column], results[False].log[column], rtol=1e-4)
    assert results[True].genome == results[False].genome


@cuda_only
def test_the_cost_estimate_times_the_graphed_step():
    cost = estimate_cost(SPACE, SearchConfig(batch_size=8, device=DEVICE, cuda_graphs=True), n_search=24, repeats=2)
    assert cost["cuda_graphs"] is True and cost["steps_per_epoch"] == 2 and cost["epoch_seconds"] > 0
    assert cost["recording_seconds"] > 0  # the first step of a batch size records its graphs


@cuda_only
def test_the_memory_check_reads_the_device_and_leaves_its_random_state_alone():
    device = torch.device(DEVICE)
    free = free_bytes(device)
    assert 0 < free <= torch.cuda.get_device_properties(device).total_memory
    cuda_state, cpu_state = torch.cuda.get_rng_state(device), torch.get_rng_state()
    need, per_map = step_bytes(SPACE, SearchConfig(batch_size=8), False, device)
    assert torch.equal(torch.cuda.get_rng_state(device), cuda_state) and torch.equal(torch.get_rng_state(), cpu_state)
    assert need > 8 * per_map > 0
    assert choose_recompute(SPACE, SearchConfig(batch_size=8, device=DEVICE), device) is False

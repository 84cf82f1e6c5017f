"""Projected memory of a search step, and the choice of edge recomputation."""
import json
import warnings
import weakref

import numpy as np
import pytest
import torch
from torch import nn

from emokit.search import memory
from emokit.experiments import PRESETS
from emokit.search.architect import BF16_SWITCH, bf16_runs
from emokit.search.budget import estimate_cost
from emokit.search.loop import SearchConfig, run_search
from emokit.search.memory import HEADROOM, PARAMETER_COPIES, choose_recompute, step_bytes, stored_bytes
from emokit.search.supernet import SearchSpace, Supernet

TINY = SearchSpace(cnn_cells=2, cnn_nodes=2, seq_cells=1, seq_nodes=2, channels=4, seq_hidden=8, freq_bins=2,
                   input_shape=(16, 16))
CPU = torch.device("cpu")


def activations(space, config, recompute, **kwargs):
    """The projected stored activations of a step, without headroom and weights."""
    need, _ = step_bytes(space, config, recompute, CPU, **kwargs)
    weights = sum(p.numel() * p.element_size() for p in Supernet(space).parameters())
    return (need - PARAMETER_COPIES * weights) / HEADROOM[bool(recompute)]


@pytest.mark.parametrize("recompute", [False, True])
def test_the_projection_from_two_small_batches_matches_what_a_big_batch_stores(recompute):
    # The quick preset's supernet, whose convolutions' activations dominate as
    # in any supernet big enough to matter (in TINY oneDNN's LSTM workspace,
    # which grows in steps, does: 9 % off at batch 16).
    space = SearchSpace.from_dict({**PRESETS["quick"]["space"], "input_shape": (128, 64)})
    torch.manual_seed(0)
    model = Supernet(space, recompute_edges=recompute).to(memory_format=torch.channels_last).train()
    x = torch.randn(16, 1, 128, 64).contiguous(memory_format=torch.channels_last)
    measured = stored_bytes(model, x)
    projected = activations(space, SearchConfig(batch_size=16), recompute)
    assert projected == pytest.approx(measured, rel=0.06)


def test_recomputation_projects_less_memory_and_a_larger_batch_more():
    fp32 = activations(TINY, SearchConfig(batch_size=8), False)
    assert activations(TINY, SearchConfig(batch_size=8), True) < 0.7 * fp32
    assert activations(TINY, SearchConfig(batch_size=16), False) > 1.8 * fp32


@pytest.mark.skipif(not bf16_runs(CPU)[0], reason=f"no native bf16 here: {bf16_runs(CPU)[1]}")
def test_bf16_projects_less_memory_where_the_cpu_runs_it():
    fp32 = activations(TINY, SearchConfig(batch_size=8), False)
    assert activations(TINY, SearchConfig(batch_size=8, precision="bf16"), False) < 0.8 * fp32


def test_bf16_where_the_cpu_cannot_run_it_projects_the_fp32_it_falls_back_to(monkeypatch):
    monkeypatch.setenv(BF16_SWITCH, "0")
    fp32 = activations(TINY, SearchConfig(batch_size=8), False)
    assert activations(TINY, SearchConfig(batch_size=8, precision="bf16"), False) == fp32


def test_counting_keeps_no_tensor_alive_and_leaves_the_random_state_alone():
    kept = []

    class Probe(nn.Module):
        def forward(self, x):
            hidden = torch.relu(x @ torch.ones(3, 4, requires_grad=True))  # relu stores its own output
            kept.append(weakref.ref(hidden))
            return hidden

    x = torch.randn(5, 3)
    assert stored_bytes(Probe(), x) >= (5 * 3 + 5 * 4) * 4  # at least the product's input and relu's output
    assert kept[0]() is None  # a tensor that referenced itself through its grad_fn would outlive the call

    state = torch.get_rng_state()
    step_bytes(TINY, SearchConfig(batch_size=4), False, CPU)
    assert torch.equal(torch.get_rng_state(), state)


def test_free_memory_is_read_on_linux():
    free = memory.free_bytes(CPU)
    assert free is None or free > 2**20


def decide(monkeypatch, free, **options):
    monkeypatch.setattr(memory, "free_bytes", lambda device: free)
    return choose_recompute(TINY, SearchConfig(batch_size=8, **options), CPU)


def test_auto_recomputes_only_when_a_step_would_not_fit(monkeypatch):
    plain, _ = step_bytes(TINY, SearchConfig(batch_size=8), False, CPU)
    recomputed, per_map = step_bytes(TINY, SearchConfig(batch_size=8), True, CPU)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert decide(monkeypatch, plain + 1) is False
        assert decide(monkeypatch, plain + 1, recompute_edges=True) is True
    with pytest.warns(UserWarning, match="recomputed in the backward pass"):
        assert decide(monkeypatch, (plain + recomputed) // 2) is True
    with pytest.raises(MemoryError, match="recompute_edges 'auto' or True"):
        decide(monkeypatch, (plain + recomputed) // 2, recompute_edges=False)
    # Fitting neither way: the error names the largest batch that fits.
    with pytest.raises(MemoryError, match=r"batch_size (\d+) \(the largest that fits\)") as error:
        decide(monkeypatch, recomputed - 3 * per_map)
    assert int(error.value.args[0].split("batch_size ")[1].split()[0]) == 5
    assert step_bytes(TINY, SearchConfig(batch_size=6), True, CPU)[0] > recomputed - 3 * per_map


def test_without_a_memory_figure_the_setting_is_taken_as_asked(monkeypatch):
    assert decide(monkeypatch, None) is False
    assert decide(monkeypatch, None, recompute_edges=True) is True


def test_recompute_edges_is_true_false_or_auto():
    with pytest.raises(ValueError, match="True, False or 'auto'"):
        SearchConfig(recompute_edges="sometimes")


def tiny_data(n_per_class=6, seed=0):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(4), n_per_class)
    x = rng.normal(size=(len(y), 1, 16, 16)) + y[:, None, None, None]
    return x.astype(np.float32), y


def test_a_search_that_would_not_fit_recomputes_and_finds_the_same_alphas(tmp_path, monkeypatch):
    x, y = tiny_data()
    config = SearchConfig(epochs=2, batch_size=4)
    plain = run_search(x, y, tmp_path / "plain", TINY, config.replace(recompute_edges=False), progress=False)
    need, _ = step_bytes(TINY, config, False, CPU)
    monkeypatch.setattr(memory, "free_bytes", lambda device: need - 1)
    with pytest.warns(UserWarning, match="recomputed"):
        auto = run_search(x, y, tmp_path / "auto", TINY, config, progress=False)
    assert json.loads((tmp_path / "auto" / "summary.json").read_text())["recompute_edges"] is True
    assert json.loads((tmp_path / "plain" / "summary.json").read_text())["recompute_edges"] is False
    for cell, history in plain.alpha_history.items():  # the same sums in another order
        np.testing.assert_allclose(auto.alpha_history[cell], history, rtol=1e-4, atol=1e-6)


def test_the_cost_estimate_stops_before_a_step_that_cannot_fit(monkeypatch):
    monkeypatch.setattr(memory, "free_bytes", lambda device: 1)
    with pytest.raises(MemoryError, match="only 0.0 GiB are free"):
        estimate_cost(TINY, SearchConfig(batch_size=4))


def test_released_memory_goes_back_to_the_os():
    import platform

    from emokit.search.budget import _status_kb
    from emokit.utils import release_freed_memory, reuse_freed_memory

    if not (platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"):
        pytest.skip("glibc's allocator only")
    reuse_freed_memory()  # freed blocks of up to 32 MiB now stay with the process...
    blocks = [torch.ones(256, 1024) for _ in range(200)]  # 200 x 1 MiB
    del blocks
    before = _status_kb("VmRSS")
    assert release_freed_memory()  # ...until they are handed back
    assert _status_kb("VmRSS") < before - 100 * 1024

"""Search space, supernet, genome, architect and the search loop."""
import json
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from emokit.search.architect import BF16_SWITCH, bf16_runs, resolve_precision
from emokit.resume import load_checkpoint, pack, save_checkpoint, unpack
from emokit.search import speed
from emokit.search.budget import checkpoints_written, cost_advice, estimate_cost, format_cost
from emokit.search.cells import MixedOp
from emokit.search.genotype import Genome, collapse_report, derive_cell, edge_labels, n_edges, undecided_report
from emokit.search.loop import SearchConfig, SearchInterrupted, load_search, run_search, split_halves
from emokit.search.ops import CNN_OPS, CNN_SCOPE, SEQ_OPS, SEQ_SCOPES, seq_scope
from emokit.search.supernet import SearchSpace, Supernet

TINY = SearchSpace(cnn_cells=2, cnn_nodes=2, seq_cells=1, seq_nodes=2, channels=4, seq_hidden=8, freq_bins=2,
                   input_shape=(16, 16))


def tiny_data(n_per_class=6, shape=(16, 16), seed=0):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(4), n_per_class)
    x = rng.normal(size=(len(y), 1, *shape)) + y[:, None, None, None]
    return x.astype(np.float32), y


def test_every_cnn_op_keeps_or_halves_the_map():
    x = torch.randn(2, 8, 16, 16)
    for name in CNN_SCOPE:
        assert CNN_OPS.get(name)(8, 1, True)(x).shape == (2, 8, 16, 16), name
        assert CNN_OPS.get(name)(8, 2, True)(x).shape == (2, 8, 8, 8), name


@pytest.mark.parametrize("channels", [2, 4, 8])
@pytest.mark.parametrize("name", ["max_pool_3x3", "avg_pool_3x3", "sep_conv_3x3"])
def test_few_channel_detour_through_nchw_changes_nothing_but_speed(name, channels):
    torch.manual_seed(0)
    op = speed.accelerate(CNN_OPS.get(name)(channels, 1, False))
    x0 = torch.randn(3, channels, 9, 9)
    results = []
    for layout in (torch.contiguous_format, torch.channels_last):
        x = x0.clone(memory_format=layout).requires_grad_(True)
        out = op.to(memory_format=layout)(x)
        out.square().sum().backward()
        assert out.is_contiguous(memory_format=layout)  # the layout is kept for the next op
        results.append((out.detach(), x.grad))
    for nchw, channels_last in zip(*results):  # kernels differ by layout: float rounding too
        torch.testing.assert_close(nchw, channels_last, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("stride", [1, 2])
def test_max_pool_keeping_its_input_matches_torchs(stride):
    from emokit.search.speed import InputKeepingMaxPool as MaxPool

    x = torch.randn(2, 3, 9, 9, dtype=torch.float64, requires_grad=True)
    ours = MaxPool(3, stride, 1)(x)
    reference = torch.nn.functional.max_pool2d(x, 3, stride, 1)
    torch.testing.assert_close(ours, reference)
    grad = torch.randn_like(ours)
    torch.testing.assert_close(torch.autograd.grad(ours, x, grad)[0], torch.autograd.grad(reference, x, grad)[0])
    assert torch.autograd.gradcheck(lambda t: MaxPool(3, stride, 1)(t), (x,))


@pytest.mark.parametrize("kernel, stride, dilation, padding", [(3, 1, 1, 1), (5, 1, 2, 4), (7, 1, 1, 1), (3, 2, 2, 2),
                                                               (5, 2, 2, 4), (3, 3, 3, 1)])
@pytest.mark.parametrize("size", [(11, 9), (12, 8), (6, 5)])  # (6, 5): grids of more padding than map
def test_depthwise_conv_with_faster_gradients_matches_torchs(kernel, stride, dilation, padding, size):
    from emokit.search.speed import DepthwiseConv2d

    torch.manual_seed(0)
    reference = torch.nn.Conv2d(4, 4, kernel, stride, padding, dilation=dilation, groups=4, bias=False).double()
    ours = speed.accelerate(torch.nn.Sequential(reference))[0]
    assert type(ours) is DepthwiseConv2d
    x = torch.randn(3, 4, *size, dtype=torch.float64, requires_grad=True)
    torch.testing.assert_close(ours(x), torch.nn.functional.conv2d(x, ours.weight, None, stride, padding, dilation, 4))
    assert torch.autograd.gradcheck(ours, (x,))
    assert torch.autograd.gradgradcheck(ours, (x,))  # second-order DARTS differentiates the backward
    for layout in (torch.contiguous_format, torch.channels_last):  # the layouts the speed path meets
        x32 = x.detach().float().contiguous(memory_format=layout).requires_grad_(True)
        fast = ours.float().to(memory_format=layout)
        plain = torch.nn.Conv2d(4, 4, kernel, stride, padding, dilation=dilation, groups=4, bias=False)
        plain.load_state_dict(fast.state_dict())
        outs = [m(x32) for m in (fast, plain)]
        assert outs[0].is_contiguous(memory_format=layout)
        grads = [torch.autograd.grad(out.square().sum(), (x32, m.weight)) for out, m in zip(outs, (fast, plain))]
        assert grads[0][0].is_contiguous(memory_format=layout)  # a gradient in another layout slows every later op
        for a, b in zip(*grads):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


class _GradientLayoutProbe(torch.autograd.Function):
    """Identity that records whether the gradient reaching it is a dense channels-last map."""

    dense: list[bool] = []

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        _GradientLayoutProbe.dense.append(grad.is_contiguous(memory_format=torch.channels_last))
        return grad


@pytest.mark.parametrize("dense", [False, True])
def test_a_node_gets_its_gradient_dense_from_the_cells_concatenation(dense):
    # A node's gradient is a channel slice of the concatenation's: strided in
    # channels-last, which sends BatchNorm's backward down a slow path.
    x = torch.randn(2, 4, 5, 6).contiguous(memory_format=torch.channels_last).requires_grad_(True)
    node = _GradientLayoutProbe.apply(x)
    node = speed.dense_gradient(node) if dense else node
    _GradientLayoutProbe.dense.clear()
    (torch.cat([node, x * 2], dim=1) * torch.arange(8.0).view(1, 8, 1, 1)).sum().backward()
    assert _GradientLayoutProbe.dense == [dense]
    expected = torch.arange(4.0) + 2 * torch.arange(4.0, 8.0)  # per channel: through the node, through x * 2
    torch.testing.assert_close(x.grad, expected.view(1, 4, 1, 1).expand_as(x))


def test_only_depthwise_convs_of_stride_one_or_of_their_dilation_take_the_faster_path():
    from emokit.search.speed import DepthwiseConv2d

    convs = torch.nn.Sequential(torch.nn.Conv2d(4, 4, 3, 1, 1, groups=4, bias=False),
                                torch.nn.Conv2d(4, 4, 3, 2, 2, dilation=2, groups=4, bias=False),
                                torch.nn.Conv2d(4, 4, 3, 2, 1, groups=4, bias=False),  # strided, undilated
                                torch.nn.Conv2d(4, 8, 1, bias=False),  # pointwise
                                torch.nn.Conv2d(4, 4, 3, 1, 1, groups=4, bias=True))  # bias
    assert [type(m) is DepthwiseConv2d for m in speed.accelerate(convs)] == [True, True, False, False, False]


@pytest.mark.parametrize("size", [8, 9])
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_factorized_reduce_as_one_conv_matches_even_and_odd_grids(size, layout):
    """The 2x2 stride-2 conv equals DARTS' 1x1 convs on the even and on the
    odd grid (zero-padded where the odd grid is one shorter), gradients too."""
    from emokit.search.ops import FactorizedReduce

    torch.manual_seed(0)
    op = FactorizedReduce(4, 6, affine=True).to(memory_format=layout)
    x0 = torch.randn(2, 4, size, size)

    def reference(x):
        x = torch.relu(x)
        even, odd = x[:, :, ::2, ::2], x[:, :, 1::2, 1::2]
        odd = torch.nn.functional.pad(odd, (0, even.shape[3] - odd.shape[3], 0, even.shape[2] - odd.shape[2]))
        return op.bn(torch.cat([op.conv1(even), op.conv2(odd)], dim=1))

    results = []
    for run in (op, reference):
        x = x0.clone(memory_format=layout).requires_grad_(True)
        out = run(x)
        (out * torch.linspace(-2, 2, out.numel()).view_as(out)).sum().backward()
        results.append([out.detach(), x.grad] + [p.grad.clone() for p in op.parameters()])
        op.zero_grad()
    assert results[0][0].shape == (2, 6, (size + 1) // 2, (size + 1) // 2)
    for ours, theirs in zip(*results):
        torch.testing.assert_close(ours, theirs)


def test_every_seq_op_keeps_the_sequence_shape():
    x = torch.randn(3, 5, 8)
    for name in SEQ_SCOPES["emodarts"]:
        assert SEQ_OPS.get(name)(8)(x).shape == (3, 5, 8), name


def test_unknown_names_list_the_known_ones():
    with pytest.raises(KeyError, match="sep_conv_3x3"):
        CNN_OPS.get("sep_conv_9x9")
    with pytest.raises(KeyError, match="lstm_att"):
        seq_scope("transformer")
    with pytest.raises(KeyError, match="lstm_1"):
        SearchSpace(seq_ops=("lstm_1", "gru_9"))


def test_scopes_follow_table_6():
    assert seq_scope("lstm") == ("lstm_1", "lstm_2", "lstm_3", "lstm_4", "skip_connect", "none")
    assert seq_scope("rnn_att") == ("rnn_att_1", "rnn_att_2", "skip_connect", "none")
    assert len(seq_scope("emodarts")) == 14
    assert SearchSpace(scope="lstm_att").seq_ops == ("lstm_att_1", "lstm_att_2", "skip_connect", "none")
    assert SearchSpace(seq_ops=["rnn_1", "none"]).seq_ops == ("rnn_1", "none")
    assert SearchSpace().reduction_cells == (1, 2)


@pytest.mark.parametrize("stride", [1, 2])
def test_skipping_none_and_sharing_relu_change_neither_outputs_nor_gradients(stride):
    torch.manual_seed(0)
    build = lambda n: CNN_OPS.get(n)(4, stride, False)
    edge = MixedOp(CNN_SCOPE, build, stride=stride)
    assert len(speed.plan(edge).tails) == (5 if stride == 1 else 6)  # five conv ops (+ the factorised reduce of skip_connect)
    x0 = torch.randn(2, 4, 8, 8)
    results = []
    for run in (lambda x, w: speed.edge_forward(edge, x, w), edge):
        edge.zero_grad()
        x = x0.clone().requires_grad_(True)
        alpha = torch.randn(len(CNN_SCOPE), requires_grad=True)
        alpha.data = torch.arange(len(CNN_SCOPE), dtype=torch.float) / 10
        out = run(x, torch.softmax(alpha, 0))
        out.square().sum().backward()
        results.append((out.detach(), alpha.grad, x.grad, [p.grad.clone() for p in edge.parameters()]))
    for fast_value, plain_value in zip(*results):
        torch.testing.assert_close(fast_value, plain_value)


def test_supernet_outputs_logits_and_never_mixes_utterances():
    torch.manual_seed(0)
    net = Supernet(TINY).eval()
    x = torch.randn(4, 1, 16, 16)
    out = net(x)
    assert out.shape == (4, 4)
    changed = x.clone()
    changed[2] += 5.0
    out2 = net(changed)
    torch.testing.assert_close(out[[0, 1, 3]], out2[[0, 1, 3]])
    assert not torch.allclose(out[2], out2[2])


def test_strided_stem_halves_the_maps_of_supernet_and_genome_net():
    import dataclasses

    from emokit.models import GenomeNet

    space = dataclasses.replace(TINY, stem_stride=2)
    net = Supernet(space)
    x = torch.randn(3, 1, 16, 16)
    assert net.stem(x).shape[2:] == (8, 8) and net(x).shape == (3, 4)
    genome = Supernet(TINY).genome()
    genome_net = GenomeNet(genome, cnn_cells=2, seq_cells=1, channels=4, seq_hidden=8, freq_bins=2, stem_stride=2)
    assert genome_net.stem(x).shape[2:] == (8, 8) and genome_net(x).shape == (3, 4)
    with pytest.raises(ValueError, match="stem_stride"):
        Supernet(dataclasses.replace(TINY, stem_stride=3))


def test_alphas_start_small_and_seeded():
    torch.manual_seed(3)
    a = Supernet(TINY).alpha_snapshot()
    torch.manual_seed(3)
    b = Supernet(TINY).alpha_snapshot()
    assert set(a) == {"normal", "reduce", "seq"}
    assert a["normal"].shape == (n_edges(2), len(CNN_SCOPE))
    for t in a:
        np.testing.assert_array_equal(a[t], b[t])
        assert np.abs(a[t] - 1 / a[t].shape[1]).max() < 1e-2  # softmax of 1e-3 * randn is near uniform


def test_derive_cell_keeps_top_two_edges_ignoring_none():
    ops = ["sep_conv_3x3", "skip_connect", "none"]
    w = np.array([
        [0.2, 0.1, 0.7],   # node 0 <- c_{k-2}: none is strongest but ignored -> sep_conv 0.2
        [0.1, 0.5, 0.4],   # node 0 <- c_{k-1}: skip 0.5
        [0.3, 0.3, 0.4],   # node 1 <- c_{k-2}
        [0.05, 0.05, 0.9],  # node 1 <- c_{k-1}
        [0.6, 0.2, 0.2],   # node 1 <- node 0
    ])
    genes = derive_cell(w, ops, n_nodes=2)
    assert genes == ((("sep_conv_3x3", 0), ("skip_connect", 1)), (("sep_conv_3x3", 0), ("sep_conv_3x3", 2)))
    assert edge_labels(2)[4] == "node 1 <- 0"


def test_genome_round_trips_through_json_and_reports_collapse():
    genome = Genome(normal=((("sep_conv_3x3", 0), ("skip_connect", 1)),),
                    reduce=((("max_pool_3x3", 0), ("dil_conv_3x3", 1)),),
                    seq=((("skip_connect", 0), ("skip_connect", 1)),))
    text = genome.to_json()
    assert Genome.from_json(text) == genome
    assert json.loads(text)["seq"] == [[["skip_connect", 0], ["skip_connect", 1]]]
    assert "node 0 = sep_conv_3x3(c_{k-2})" in str(genome)
    assert collapse_report(genome) == ["seq cell collapsed: every edge is skip_connect"]
    with pytest.raises(ValueError, match="earlier state"):
        Genome(normal=((("skip_connect", 5),),), reduce=(), seq=())


NATIVE_BF16, NO_BF16_BECAUSE = bf16_runs(torch.device("cpu"))


@pytest.mark.parametrize("order,precision", [
    ("first", "fp32"), ("second", "fp32"),
    pytest.param("first", "bf16", marks=pytest.mark.skipif(not NATIVE_BF16, reason=f"no native bf16: {NO_BF16_BECAUSE}"))])
def test_tiny_search_moves_the_alphas_and_writes_its_run_folder(tmp_path, order, precision):
    x, y = tiny_data()
    config = SearchConfig(epochs=2, batch_size=8, order=order, seed=1, precision=precision)
    records = []
    result = run_search(x, y, tmp_path, TINY, config, callback=records.append, progress=False)
    assert [r["epoch"] for r in records] == [1, 2]  # epochs count from 1
    torch.manual_seed(config.seed)
    initial = Supernet(TINY).alpha_snapshot()
    for t, history in result.alpha_history.items():
        assert history.shape == (2, *initial[t].shape)
        assert np.abs(history[-1] - initial[t]).max() > 1e-5, t
    for name in ("genome.json", "log.csv", "alpha_history.npz", "search_space.json", "config.json",
                 "checkpoint.pt", "summary.json"):
        assert (tmp_path / name).exists(), name
    loaded = load_search(tmp_path)
    assert loaded.genome == result.genome
    assert list(loaded.log["epoch"]) == [1, 2]


def test_bf16_on_a_cpu_without_it_warns_once_and_searches_as_fp32(tmp_path, monkeypatch):
    x, y = tiny_data()
    config = SearchConfig(epochs=1, batch_size=8, seed=1)
    fp32 = run_search(x, y, tmp_path / "fp32", TINY, config, progress=False)
    monkeypatch.setenv(BF16_SWITCH, "0")  # the probe's answer on an AVX2-only CPU
    with pytest.warns(UserWarning, match=r"precision 'bf16': EMOKIT_BF16=0; running in fp32 instead.*precision='fp32'"):
        asked = run_search(x, y, tmp_path / "bf16", TINY, config.replace(precision="bf16"), progress=False)
    for cell, history in fp32.alpha_history.items():
        np.testing.assert_array_equal(asked.alpha_history[cell], history)
    assert json.loads((tmp_path / "bf16" / "summary.json").read_text())["precision"] == "fp32"


def test_the_bf16_probe_runs_once_leaves_the_random_state_alone_and_obeys_its_switch(monkeypatch):
    from emokit.search import architect

    monkeypatch.delenv(BF16_SWITCH, raising=False)
    architect._bf16_probe.cache_clear()
    torch.manual_seed(3)
    expected = torch.rand(3)
    torch.manual_seed(3)
    ok, why = bf16_runs(torch.device("cpu"))
    assert torch.equal(torch.rand(3), expected)
    assert ok == (why == "") and architect._bf16_probe.cache_info().misses == 1
    bf16_runs(torch.device("cpu"))
    assert architect._bf16_probe.cache_info().hits == 1
    for switch, expected_ok in (("0", False), ("1", True)):
        monkeypatch.setenv(BF16_SWITCH, switch)
        assert bf16_runs(torch.device("cpu")) == (expected_ok, f"{BF16_SWITCH}={switch}")
    assert resolve_precision("bf16", torch.device("cpu")) == "bf16"  # switch 1: taken as native


def test_undecided_report_names_cells_whose_alphas_are_near_uniform():
    uniform = np.full((5, 8), 1 / 8)
    decided = uniform.copy()
    decided[2] = [0.3] + [0.1] * 7
    assert undecided_report({"normal": decided, "seq": np.zeros((0, 8))}) == []
    (message,) = undecided_report({"normal": decided, "reduce": uniform})
    assert message.startswith("reduce cell undecided") and "1.000x the uniform 0.1250" in message
    assert undecided_report({"reduce": uniform}, ratio=1.0) == []


def test_search_warns_when_its_alphas_barely_moved(tmp_path):
    x, y = tiny_data()
    with pytest.warns(UserWarning, match="undecided.*near-ties"):
        slow = run_search(x, y, tmp_path / "slow", TINY, SearchConfig(epochs=2, batch_size=8, seed=1), progress=False)
    assert [m.split()[0] for m in slow.undecided] == ["normal", "reduce", "seq"]
    assert json.loads((tmp_path / "slow" / "summary.json").read_text())["undecided"] == slow.undecided
    assert load_search(tmp_path / "slow").undecided == slow.undecided
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*undecided")
        fast = run_search(x, y, tmp_path / "fast", TINY, SearchConfig(epochs=2, batch_size=8, seed=1, alpha_lr=0.1),
                          progress=False)
    assert fast.undecided == []


def test_interrupted_search_resumes_to_the_same_alphas_and_genome(tmp_path):
    x, y = tiny_data()
    config = SearchConfig(epochs=3, batch_size=8, seed=2, channels_last=False)
    full = run_search(x, y, tmp_path / "full", TINY, config, progress=False)

    def stop_after_first(record):
        if record["epoch"] == 1:
            raise SearchInterrupted("simulated crash")

    with pytest.raises(SearchInterrupted):
        run_search(x, y, tmp_path / "cut", TINY, config, callback=stop_after_first, progress=False)
    assert len(load_search(tmp_path / "cut").log) == 1
    resumed = run_search(x, y, tmp_path / "cut", TINY, config, progress=False)
    assert resumed.genome == full.genome
    for t in full.alpha_history:
        np.testing.assert_allclose(resumed.alpha_history[t], full.alpha_history[t], rtol=0, atol=1e-6)


def test_a_search_checkpointing_every_so_many_seconds_still_resumes_exactly(tmp_path):
    """With checkpoint_every_s longer than the run only the last epoch and a
    stop write the checkpoint; how often is not part of the run's identity,
    and the resumed search ends where an uninterrupted one does."""
    x, y = tiny_data()
    config = SearchConfig(epochs=3, batch_size=8, seed=2, channels_last=False, checkpoint_every_s=3600)
    written = []
    full = run_search(x, y, tmp_path / "full", TINY, config, progress=False,
                      callback=lambda r: written.append((tmp_path / "full" / "checkpoint.pt").exists()))
    assert written == [False, False, True]

    def stop_after_second(record):
        if record["epoch"] == 2:
            raise SearchInterrupted("simulated crash")

    with pytest.raises(SearchInterrupted):
        run_search(x, y, tmp_path / "cut", TINY, config, callback=stop_after_second, progress=False)
    assert len(load_search(tmp_path / "cut").log) == 2  # the stop wrote the checkpoint and the log
    resumed = run_search(x, y, tmp_path / "cut", TINY, config.replace(checkpoint_every_s=0), progress=False)
    assert resumed.genome == full.genome and len(resumed.log) == 3
    for t in full.alpha_history:
        np.testing.assert_allclose(resumed.alpha_history[t], full.alpha_history[t], rtol=0, atol=1e-6)


@pytest.mark.parametrize("epochs, epoch_seconds, every_s, expected",
                         [(300, 1.0, 30, 10), (301, 1.0, 30, 11), (300, 100.0, 30, 300), (10, 1.0, 0, 10),
                          (10, 1.0, 3600, 1), (10, 0.4, 1.0, 4)])
def test_the_cost_estimate_counts_the_checkpoints_a_search_writes(epochs, epoch_seconds, every_s, expected):
    assert checkpoints_written(epochs, epoch_seconds, every_s) == expected


def test_checkpoints_pack_their_tensors_and_read_unpacked_ones(tmp_path):
    """State dicts go into one flat tensor per dtype and come back equal, in
    their own memory; a checkpoint written before packing still loads."""
    torch.manual_seed(0)
    model = Supernet(TINY).to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(4, 1, 16, 16)).sum().backward()
    optimizer.step()
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "pair": (torch.tensor(3), 0.5)}
    packed = pack(state)
    assert sorted(packed["flat"]) == ["float32", "int64"]
    back = unpack(packed)
    assert back["pair"][1] == 0.5 and torch.equal(back["pair"][0], state["pair"][0])
    for key, tensor in state["model"].items():
        assert torch.equal(back["model"][key], tensor) and back["model"][key].dtype == tensor.dtype, key
    assert back["optimizer"]["param_groups"] == state["optimizer"]["param_groups"]
    for i, entry in state["optimizer"]["state"].items():
        assert torch.equal(back["optimizer"]["state"][i]["momentum_buffer"], entry["momentum_buffer"])
    views = [t for t in back["model"].values() if t.numel()]
    assert len({t.untyped_storage().data_ptr() for t in views}) == len(views)  # no tensor shares memory

    save_checkpoint(tmp_path / "new.pt", {"a": 1}, {"model": model}, {"rows": []})
    old = {k: v for k, v in torch.load(tmp_path / "new.pt", weights_only=False).items() if k != "packed_state_dicts"}
    torch.save({**old, "state_dicts": {"model": model.state_dict()}}, tmp_path / "old.pt")
    for name in ("new.pt", "old.pt"):
        fresh = Supernet(TINY)
        assert load_checkpoint(tmp_path / name, {"a": 1}, {"model": fresh}) == {"rows": []}
        for key, tensor in model.state_dict().items():
            assert torch.equal(fresh.state_dict()[key], tensor), (name, key)


def test_resume_refuses_other_settings_and_other_data(tmp_path):
    x, y = tiny_data()
    run_search(x, y, tmp_path, TINY, SearchConfig(epochs=1, batch_size=8), progress=False)
    with pytest.raises(ValueError, match="other settings"):
        run_search(x, y, tmp_path, TINY, SearchConfig(epochs=1, batch_size=4), progress=False)
    changed = x.copy()
    changed[0, 0, 0, 0] += 1.0  # one value of one map
    with pytest.raises(ValueError, match="other settings"):
        run_search(changed, y, tmp_path, TINY, SearchConfig(epochs=1, batch_size=8), progress=False)


def test_search_rejects_maps_of_the_wrong_shape(tmp_path):
    x, y = tiny_data(shape=(8, 8))
    with pytest.raises(ValueError, match="input_shape"):
        run_search(x, y, tmp_path, TINY, SearchConfig(epochs=1), progress=False)


def test_cost_estimate_reports_parameters_time_and_projection():
    cost = estimate_cost(TINY, SearchConfig(batch_size=4, epochs=3), n_search=40)
    assert cost["parameters"] > 0 and cost["step_seconds"] > 0
    assert cost["steps_per_epoch"] == 5
    assert cost["checkpoint_seconds"] > 0 and cost["checkpoints"] == 3
    assert cost["recording_seconds"] == 0  # no CUDA graphs here
    assert cost["total_seconds"] == pytest.approx((cost["epoch_seconds"] + cost["checkpoint_seconds"]) * 3)
    assert "M weights" in format_cost(cost) and "for its checkpoint" in format_cost(cost)


@pytest.fixture
def budget_clock(monkeypatch):
    """A fake clock for :func:`estimate_cost`: it moves only when a test's step moves it."""
    from emokit.search import budget

    clock = {"now": 0.0}
    monkeypatch.setattr(budget, "time", type("FakeTime", (), {"perf_counter": staticmethod(lambda: clock["now"])}))
    return clock


def test_cost_estimate_times_warm_up_epochs_as_weight_only_steps(monkeypatch, budget_clock):
    # A fake clock that a full step (alphas + weights) advances by 3 s and a
    # weight-only step by 1 s: the projection must use each where it belongs,
    # whatever the real step times on a busy machine.
    from emokit.search import budget

    clock = budget_clock
    real_make = budget.make_search_step

    def make_timed_step(*args):
        take_step = real_make(*args)

        def timed_step(x_w, y_w, x_a, y_a, lr, alphas_move):
            clock["now"] += 3.0 if alphas_move else 1.0
            return take_step(x_w, y_w, x_a, y_a, lr, alphas_move)
        return timed_step

    monkeypatch.setattr(budget, "make_search_step", make_timed_step)
    warm = estimate_cost(TINY, SearchConfig(batch_size=4, epochs=3, warmup_epochs=2), n_search=40, repeats=3)
    assert warm["step_seconds"] == 3.0 and warm["steps_per_epoch"] == 5
    assert warm["epoch_seconds"] == 15.0 and warm["warmup_epoch_seconds"] == 5.0
    assert warm["total_seconds"] == pytest.approx(2 * 5.0 + 15.0)
    assert "per warm-up epoch (weights only)" in format_cost(warm)
    # 22 weight-half rows in batches of 4: 5 full steps and a last one of 2
    # rows, timed on its own; 21 rows: the last row joins the batch before it.
    ragged = estimate_cost(TINY, SearchConfig(batch_size=4, epochs=3, warmup_epochs=2), n_search=44, repeats=3)
    assert ragged["steps_per_epoch"] == 6 and ragged["epoch_seconds"] == 18.0 and ragged["warmup_epoch_seconds"] == 6.0
    merged = estimate_cost(TINY, SearchConfig(batch_size=4, epochs=3, warmup_epochs=2), n_search=42, repeats=3)
    assert merged["steps_per_epoch"] == 5 and merged["epoch_seconds"] == 15.0


def test_cost_estimate_on_a_cpu_times_a_few_maps_and_scales_to_the_batch(monkeypatch, budget_clock):
    # A fake step whose time grows with its maps, 0.5 s each: the paper's
    # batch of 64 would take minutes to time on a CPU; 8 maps take seconds.
    from emokit.search import budget

    clock, sizes = budget_clock, []
    real_make = budget.make_search_step

    def make_timed_step(*args):
        take_step = real_make(*args)

        def timed_step(x_w, y_w, x_a, y_a, lr, alphas_move):
            sizes.append(len(x_w))
            clock["now"] += 0.5 * len(x_w)
            return take_step(x_w, y_w, x_a, y_a, lr, alphas_move)
        return timed_step

    monkeypatch.setattr(budget, "make_search_step", make_timed_step)
    cost = estimate_cost(TINY, SearchConfig(batch_size=32, epochs=300), n_search=200)
    assert max(sizes) == 8 and cost["timed_batch_size"] == 8
    assert cost["step_seconds"] == 16.0 and cost["steps_per_epoch"] == 4  # 100 rows: 3 x 32 and 4
    assert cost["epoch_seconds"] == pytest.approx(3 * 16.0 + 2.0)
    assert cost["peak_memory_bytes"] is None and cost["projected_memory_bytes"] > 0
    assert "timed on 8 maps, scaled" in format_cost(cost) and "projected memory of a step" in format_cost(cost)
    advice = cost_advice(cost)  # 300 epochs of 50 s: 4.2 h
    assert advice.startswith("This search is projected to take 4.2 h on the CPU") and 'preset = "quick"' in advice
    assert cost_advice({**cost, "total_seconds": 600.0}) is None
    assert cost_advice({**cost, "device": "cuda:0"}) is None


def test_cost_estimate_adds_the_recording_of_cuda_graphs_once_per_batch_size(monkeypatch, budget_clock):
    # A step replayed from CUDA graphs, faked on the CPU with a fake clock:
    # every step takes 1 s, and the first step of each batch size 10 s more
    # (recording). The search's first epoch records the same graphs once.
    from emokit.search import budget

    clock = budget_clock
    real_make = budget.make_search_step

    class RecordingStep(budget.GraphedStep):
        def __init__(self, eager):
            self.eager, self.record, self.recorded = eager, True, set()

        def __call__(self, x_w, y_w, x_a, y_a, lr, alphas_move):
            if len(x_w) not in self.recorded:
                self.recorded.add(len(x_w))
                clock["now"] += 10.0
            clock["now"] += 1.0
            return self.eager(x_w, y_w, x_a, y_a, lr, alphas_move)

    monkeypatch.setattr(budget, "make_search_step", lambda *args: RecordingStep(real_make(*args)))
    # 22 weight-half rows in batches of 4: 5 full steps and one of 2 rows, two batch sizes to record.
    cost = estimate_cost(TINY, SearchConfig(batch_size=4, epochs=3), n_search=44, repeats=3)
    assert cost["cuda_graphs"] is True
    assert cost["step_seconds"] == 1.0 and cost["epoch_seconds"] == 6.0
    assert cost["recording_seconds"] == 20.0
    assert cost["total_seconds"] == pytest.approx(3 * 6.0 + 20.0)
    assert "20 s to record the CUDA graphs" in format_cost(cost)
    one_size = estimate_cost(TINY, SearchConfig(batch_size=4, epochs=3), n_search=40, repeats=3)
    assert one_size["recording_seconds"] == 10.0 and one_size["total_seconds"] == pytest.approx(3 * 5.0 + 10.0)


def test_recomputing_edges_and_the_plain_reference_give_the_same_gradients():
    torch.manual_seed(0)
    plain = Supernet(TINY, fast=False)
    fast = Supernet(TINY)
    fast.load_state_dict(plain.state_dict())
    recomputed = Supernet(TINY, recompute_edges=True)
    recomputed.load_state_dict(plain.state_dict())
    x, y = torch.randn(4, 1, 16, 16), torch.tensor([0, 1, 2, 3])
    grads = []
    for net in (plain, fast, recomputed):
        torch.nn.functional.cross_entropy(net(x), y).backward()
        grads.append([p.grad.clone() for p in net.parameters()])
    for reference, other in ((grads[0], grads[1]), (grads[0], grads[2])):
        for a, b in zip(reference, other):  # the sums run in another order: float rounding differs
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("recompute", [False, True])
@pytest.mark.parametrize("partial", [1, 2])
@pytest.mark.parametrize("reduction", [False, True])
def test_cell_state_by_state_matches_edge_by_edge(partial, reduction, recompute):
    """The fast evaluation (edges grouped by the state they read, shared
    parameter-free ops, one channel shuffle per node) against the plain sum
    of edge outputs, with and without checkpointing (whose recomputation must
    not update BatchNorm statistics a second time): outputs, all gradients
    and BatchNorm statistics."""
    from emokit.search.cells import SearchCNNCell

    torch.manual_seed(0)
    fast = SearchCNNCell(CNN_SCOPE, 3, 8, 8, 4, reduction, False, partial).to(memory_format=torch.channels_last)
    plain = SearchCNNCell(CNN_SCOPE, 3, 8, 8, 4, reduction, False, partial).to(memory_format=torch.channels_last)
    plain.load_state_dict(fast.state_dict())
    speed.accelerate(fast)
    if recompute:
        speed.accelerate(plain)  # BatchNorm that knows it is recomputing
    assert [CNN_SCOPE[i] for i in speed.shared_ops(fast)] == (["max_pool_3x3", "avg_pool_3x3"] if reduction
                                                              else ["max_pool_3x3", "avg_pool_3x3", "skip_connect"])
    inputs = [torch.randn(3, 8, 8, 8).contiguous(memory_format=torch.channels_last) for _ in range(2)]
    alpha0 = torch.randn(n_edges(3), len(CNN_SCOPE))
    results = []
    plain_run = speed.cnn_cell_recomputed if recompute else lambda cell, *args: cell(*args)
    for cell, run in ((fast, speed.cnn_cell_by_state), (plain, plain_run)):
        s0, s1 = (t.clone().requires_grad_(True) for t in inputs)
        alpha = alpha0.clone().requires_grad_(True)
        out = run(cell, s0, s1, torch.softmax(alpha, -1))
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        results.append([out.detach(), alpha.grad, s0.grad, s1.grad] + [p.grad for p in cell.parameters()]
                       + list(cell.buffers()))
    assert results[0][0].shape == (3, 12, 4 if reduction else 8, 4 if reduction else 8)
    for a, b in zip(*results):  # the sums run in another order: float rounding differs
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


# --------------------------------------------------------------------------
# remedies for undecided and collapsed searches, and the random control


def test_max_skip_caps_skip_connect_per_cell():
    ops = ["sep_conv_3x3", "skip_connect", "max_pool_3x3", "none"]
    weights = np.tile([0.1, 0.6, 0.2, 0.1], (n_edges(2), 1))
    weights[0] = [0.1, 0.7, 0.1, 0.1]  # the strongest skip: kept
    weights[3, 2] = 0.25  # node 1 <- c_{k-1}: max pool is its next best op
    free = derive_cell(weights, ops, 2)
    assert [op for node in free for op, _ in node] == ["skip_connect"] * 4
    capped = derive_cell(weights, ops, 2, max_skip=1)
    assert [op for node in capped for op, _ in node] == ["skip_connect", "max_pool_3x3", "max_pool_3x3", "max_pool_3x3"]
    assert [src for node in capped for _, src in node] == [src for node in free for _, src in node]  # same edges


def test_aux_skip_adds_a_decaying_identity_to_stride_one_edges():
    torch.manual_seed(0)
    x = torch.randn(2, 4, 8, 8)
    weights = torch.softmax(torch.randn(len(CNN_SCOPE)), 0)
    for stride in (1, 2):
        edge = MixedOp(CNN_SCOPE, lambda n: CNN_OPS.get(n)(4, stride, False), stride=stride).eval()
        plain = edge(x, weights)
        edge.aux_skip = 0.5
        for run in (edge, lambda x, w: speed.edge_forward(edge, x, w)):
            expected = plain + 0.5 * x if stride == 1 else plain  # no skip across a reduction
            torch.testing.assert_close(run(x, weights), expected, rtol=1e-5, atol=1e-5)
    net = Supernet(TINY)
    net.set_aux_skip(0.3)
    assert {m.aux_skip for m in net.modules() if isinstance(m, MixedOp)} == {0.3}


def _final_alphas(result):
    return {t: h[-1] for t, h in result.alpha_history.items()}


def test_aux_skip_and_beta_decay_change_the_alphas_as_intended(tmp_path):
    """DARTS-' auxiliary skip takes over the identity's job, so skip_connect
    gains less weight; beta-decay shrinks the alphas (lower logsumexp)."""
    x, y = tiny_data()
    base = dict(epochs=3, batch_size=8, seed=1, alpha_lr=0.05, channels_last=False)
    runs = {}
    for name, extra in (("plain", {}), ("aux_skip", {"aux_skip": 1.0}), ("beta_decay", {"beta_decay": 5.0})):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            runs[name] = run_search(x, y, tmp_path / name, TINY, SearchConfig(**base, **extra), progress=False)
    skip = list(CNN_SCOPE).index("skip_connect")
    assert _final_alphas(runs["aux_skip"])["normal"][:, skip].mean() < _final_alphas(runs["plain"])["normal"][:, skip].mean()
    log = runs["aux_skip"].log
    assert list(log["aux_skip"]) == pytest.approx([1.0, 2 / 3, 1 / 3])  # decays linearly towards 0
    assert list(runs["beta_decay"].log["beta_decay"]) == pytest.approx([5 / 3, 10 / 3, 5.0])

    def spread(result):  # mean over edges of logsumexp(alpha): what beta-decay pushes down
        checkpoint = unpack(torch.load(result.run_dir / "checkpoint.pt", weights_only=False)["packed_state_dicts"])["model"]
        return float(torch.cat([torch.logsumexp(v, -1) for k, v in checkpoint.items() if k.startswith("alphas.")]).mean())

    assert spread(runs["beta_decay"]) < spread(runs["plain"])


def test_gdas_runs_one_op_per_edge_while_training_with_gradients_to_every_alpha():
    torch.manual_seed(0)
    net = Supernet(TINY)
    x, y = (torch.as_tensor(v) for v in tiny_data(n_per_class=2))
    net.gumbel_tau = 1.0
    drawn = [net._edge_weights(net.alphas["normal"]) for _ in range(20)]
    for weights in drawn:  # one op per edge, weight exactly 1
        assert torch.equal(weights.detach().sum(-1), torch.ones(len(weights)))
        assert set(weights.detach().unique().tolist()) == {0.0, 1.0}
    assert len({tuple(w.detach().argmax(-1).tolist()) for w in drawn}) > 1  # drawn anew each pass
    nn.functional.cross_entropy(net(x), y).backward()
    for alphas in net.alphas.values():  # straight-through: the softmax carries the gradient to every alpha
        assert (alphas.grad != 0).all()
    net.eval()
    torch.testing.assert_close(net._edge_weights(net.alphas["normal"]), torch.softmax(net.alphas["normal"], -1))


def test_a_gdas_search_anneals_its_temperature_and_is_seeded(tmp_path):
    from emokit.search.loop import gdas_temperature

    x, y = tiny_data()
    config = SearchConfig(epochs=3, batch_size=8, seed=1, alpha_lr=0.05, gdas=True, gdas_tau=(4.0, 0.5))
    assert [gdas_temperature(config, e) for e in range(3)] == pytest.approx([4.0, 2.25, 0.5])
    assert gdas_temperature(SearchConfig(), 0) is None
    runs = [run_search(x, y, tmp_path / name, TINY, cfg, progress=False) for name, cfg in
            (("a", config), ("b", config), ("darts", config.replace(gdas=False)))]
    assert list(runs[0].log["gumbel_tau"]) == pytest.approx([4.0, 2.25, 0.5])
    for t, alphas in _final_alphas(runs[0]).items():
        np.testing.assert_array_equal(alphas, _final_alphas(runs[1])[t])  # the same draws under one seed
        assert not np.allclose(alphas, _final_alphas(runs[2])[t])  # not the DARTS search
    with pytest.raises(ValueError, match="first order"):
        SearchConfig(gdas=True, order="second")
    with pytest.raises(ValueError, match="temperatures > 0"):
        SearchConfig(gdas=True, gdas_tau=(1.0, 0.0))


def test_random_genomes_are_valid_seeded_and_differ_across_seeds():
    from emokit.models import GenomeNet
    from emokit.search.genotype import genome_agreement, random_genome

    space = SearchSpace(cnn_nodes=4, seq_nodes=3)
    first = random_genome(space, [0, 3])
    assert random_genome(space, [0, 3]) == first  # seeded
    others = [random_genome(space, [seed, 3]) for seed in range(1, 6)]
    assert all(g != first for g in others)
    for genome in [first] + others:
        for cell in ("normal", "reduce", "seq"):
            assert genome.n_nodes(cell) == space.nodes(cell)
            for j, node in enumerate(genome.cell(cell)):
                sources = [src for _, src in node]
                assert len(sources) == 2 and len(set(sources)) == 2 and all(0 <= s < 2 + j for s in sources)
                assert all(op in space.ops(cell) and op != "none" for op, _ in node)
    ops = {op for g in [first] + others for op in g.ops("seq")}
    assert len(ops) > 5  # drawn from the whole list, not a fixed few
    net = GenomeNet(first, cnn_cells=2, seq_cells=1, channels=4, seq_hidden=8, freq_bins=2)
    assert net(torch.randn(2, 1, 16, 16)).shape == (2, 4)
    assert genome_agreement([first, first]) == {"edges": 1.0, "ops": 1.0}
    agreement = genome_agreement([first] + others)
    assert 0 < agreement["ops"] < agreement["edges"] < 1


def test_an_alpha_half_of_speakers_shares_no_speaker_with_the_weight_half():
    y = np.tile(np.arange(4), 21)
    speakers = np.repeat([f"s{k}" for k in range(7)], 12)
    w_idx, a_idx = split_halves(y, 0.5, seed=3, speakers=speakers)
    assert sorted(np.concatenate([w_idx, a_idx])) == list(range(len(y)))
    assert not set(speakers[w_idx]) & set(speakers[a_idx])
    assert len(set(speakers[a_idx])) == 3  # floor(0.5 * 7) of the 7 speakers
    again, _ = split_halves(y, 0.5, seed=3, speakers=speakers)[::-1]
    assert np.array_equal(again, a_idx)  # seeded
    halves = {tuple(sorted(set(speakers[split_halves(y, 0.5, seed, speakers)[1]]))) for seed in range(6)}
    assert len(halves) > 1  # the seed picks the speakers
    assert len(set(speakers[split_halves(y, 0.99, 0, speakers)[0]])) == 1  # both halves keep a speaker
    assert len(set(speakers[split_halves(y, 0.01, 0, speakers)[1]])) == 1
    with pytest.raises(ValueError, match="two speakers or more.*alpha_split='utterances'"):
        split_halves(y, 0.5, 0, np.full(len(y), "s0"))
    with pytest.raises(ValueError, match="3 speakers for 84 rows"):
        split_halves(y, 0.5, 0, speakers[:3])


def test_a_search_split_by_speakers_needs_them_and_chooses_its_alphas_on_other_voices(tmp_path):
    x, y = tiny_data()
    speakers = np.array([f"s{i % 4}" for i in range(len(y))])
    config = SearchConfig(epochs=2, batch_size=8, seed=1, alpha_lr=0.1, alpha_split="speakers")
    with pytest.raises(ValueError, match="needs each search row's speaker: pass speakers="):
        run_search(x, y, tmp_path / "none", TINY, config, progress=False)
    by_speaker = run_search(x, y, tmp_path / "speakers", TINY, config, progress=False, speakers=speakers)
    alpha_speakers = json.loads((tmp_path / "speakers" / "summary.json").read_text())["alpha_speakers"]
    assert len(alpha_speakers) == 2 and set(alpha_speakers) < set(speakers)
    by_utterance = run_search(x, y, tmp_path / "utterances", TINY, config.replace(alpha_split="utterances"),
                              progress=False, speakers=speakers)
    assert json.loads((tmp_path / "utterances" / "summary.json").read_text())["alpha_speakers"] is None
    assert any(not np.allclose(by_speaker.alpha_history[t], by_utterance.alpha_history[t])
               for t in by_speaker.alpha_history)  # other rows choose the alphas
    # The default split is not written into the identity, so searches from
    # before the option resume; the speaker split is.
    assert "alpha_split" not in json.loads((tmp_path / "utterances" / "config.json").read_text())["search"]
    assert json.loads((tmp_path / "speakers" / "config.json").read_text())["search"]["alpha_split"] == "speakers"
    with pytest.raises(ValueError, match="unknown alpha_split 'voices'; known: utterances, speakers"):
        SearchConfig(alpha_split="voices")

"""Reading the genome from a trained supernet: by the alphas or by perturbation."""
import json

import numpy as np
import pytest
import torch

from emokit.pipeline import search_fold
from emokit.search.genotype import Genome, derive_cell, random_genome
from emokit.search.loop import SearchConfig, load_search, run_search, split_halves
from emokit.search.one_shot import genome_weights, load_supernet, one_shot_loss, one_shot_losses
from emokit.search.selection import (batch_statistics, genome_from_scores, perturbation_scores, read_scores,
                                    supernet_loss)
from emokit.search.supernet import Supernet

from test_search import TINY, tiny_data


def twin_supernets(seed=0):
    """The fast supernet and the plain DARTS reference with the same weights, in eval mode."""
    torch.manual_seed(seed)
    fast = Supernet(TINY)
    plain = Supernet(TINY, fast=False)
    plain.load_state_dict(fast.state_dict())
    with torch.no_grad():  # alphas away from uniform, so a mask's effect differs by op
        for a in list(fast.alphas.values()) + list(plain.alphas.values()):
            a.copy_(torch.linspace(-1, 1, a.numel()).reshape(a.shape))
    return fast.eval(), plain.eval()


def test_a_mask_takes_an_op_out_of_its_edge_in_every_cell_of_its_type():
    fast, plain = twin_supernets()
    x = torch.randn(3, 1, *TINY.input_shape)
    ops = list(TINY.ops("normal"))
    edge, op = 1, ops.index("sep_conv_3x3")
    mask = torch.ones_like(fast.alphas["normal"])
    mask[edge, op] = 0.0
    masked = plain(x, {"normal": mask})
    assert not torch.allclose(masked, plain(x), atol=1e-6)  # the op mattered
    torch.testing.assert_close(plain(x, {"normal": torch.ones_like(mask)}), plain(x))
    torch.testing.assert_close(fast(x, {"normal": mask}), masked, rtol=1e-5, atol=1e-5)
    # The same as the op giving zeros wherever a normal cell runs it.
    hooks = [cell.edges[edge].ops[op].register_forward_hook(lambda m, i, out: torch.zeros_like(out))
             for cell in plain.cnn_cells if not cell.reduction]
    try:
        torch.testing.assert_close(plain(x), masked)
    finally:
        for hook in hooks:
            hook.remove()


def test_perturbation_scores_measure_the_loss_without_each_op_and_edge():
    model, _ = twin_supernets(seed=1)
    model.train()
    model.set_aux_skip(0.5)
    x, y = (torch.as_tensor(v) for v in tiny_data(n_per_class=3))
    before = [b.clone() for b in model.buffers()]
    scores = perturbation_scores(model, x, y, batch_size=12)  # one batch: 160 forward passes
    assert model.training and model.cnn_cells[0].edges[0].aux_skip == 0.5  # put back
    for buffer, saved in zip(model.buffers(), before):  # running statistics untouched
        torch.testing.assert_close(buffer, saved, rtol=0, atol=0)
    model.set_aux_skip(0.0)
    with batch_statistics(model):
        base = supernet_loss(model, x, y, batch_size=12)
        ops = list(TINY.ops("seq"))
        o = next(c for c, name in enumerate(ops) if name != "none")
        mask = torch.ones_like(model.alphas["seq"])
        mask[-1, o] = 0
        expected = supernet_loss(model, x, y, batch_size=12, masks={"seq": mask}) - base
    # One entry by hand: the seq cell's last edge without its first usable op.
    assert scores["seq"]["ops"][-1, o] == pytest.approx(expected, rel=1e-6, abs=1e-9)
    for t, by in scores.items():
        ops = list(TINY.ops(t))
        assert by["ops"].shape == model.alphas[t].shape and by["edges"].shape == (model.alphas[t].shape[0],)
        if "none" in ops:
            assert np.isnan(by["ops"][:, ops.index("none")]).all()
        usable = [c for c, name in enumerate(ops) if name != "none"]
        assert np.isfinite(by["ops"][:, usable]).all() and np.isfinite(by["edges"]).all()


def test_scoring_normalises_with_batch_statistics_without_dropout_and_splits_evenly():
    torch.manual_seed(0)
    model = Supernet(TINY.replace(dropout=0.5)).eval()
    x, y = (torch.as_tensor(v) for v in tiny_data(n_per_class=3))  # 12 maps
    with batch_statistics(model):
        assert all(m.training == isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
        assert supernet_loss(model, x, y, batch_size=5) == supernet_loss(model, x, y, batch_size=5)  # no dropout
        sizes = []
        hook = model.stem.register_forward_hook(lambda m, i, out: sizes.append(len(out)))
        supernet_loss(model, x, y, batch_size=5)
        hook.remove()
    assert sizes == [4, 4, 4]  # three batches of 4, not 5 + 5 + 2
    assert not any(m.training for m in model.modules())


def test_edge_strength_picks_the_edges_and_op_scores_pick_the_ops():
    ops = ["none", "skip_connect", "sep_conv_3x3", "max_pool_3x3"]
    scores = np.array([[np.nan, 0.1, 0.5, 0.0],   # node 0 <- c_{k-2}
                       [np.nan, 0.3, 0.0, 0.2],   # node 0 <- c_{k-1}
                       [np.nan, 0.0, 0.0, 0.9],   # node 1 <- c_{k-2}
                       [np.nan, 0.2, 0.1, 0.0],   # node 1 <- c_{k-1}
                       [np.nan, 0.0, 0.4, 0.1]])  # node 1 <- node 0
    by_ops = derive_cell(scores, ops, n_nodes=2)
    assert by_ops == ((("sep_conv_3x3", 0), ("skip_connect", 1)), (("max_pool_3x3", 0), ("sep_conv_3x3", 2)))
    # Removing edge "node 1 <- c_{k-1}" hurts most, although its best op scores lowest.
    by_edges = derive_cell(scores, ops, n_nodes=2, edge_strength=[0.2, 0.1, 0.3, 0.8, 0.0])
    assert by_edges[1] == (("max_pool_3x3", 0), ("skip_connect", 1))
    with pytest.raises(ValueError, match="edge_strength shape"):
        derive_cell(scores, ops, n_nodes=2, edge_strength=[1.0, 2.0])


def test_a_search_selected_by_perturbation_writes_its_scores_and_can_be_read_again(tmp_path):
    x, y = tiny_data()
    config = SearchConfig(epochs=2, batch_size=8, seed=3, alpha_lr=0.1, selection="perturbation")
    result = run_search(x, y, tmp_path, TINY, config, progress=False)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["selection"] == "perturbation"
    scores = read_scores(tmp_path)
    assert sorted(scores) == ["normal", "reduce", "seq"]
    assert result.genome == genome_from_scores(scores, TINY) == load_search(tmp_path).genome
    by_alphas = json.loads(result.log["genome"].iloc[-1])  # every epoch's log row reads the alphas
    # The same finished supernet read by its alphas: no epoch runs again, and
    # the outputs come back from the checkpoint where they were lost.
    for name in ("log.csv", "alpha_history.npz"):
        (tmp_path / name).unlink()
    again = run_search(x, y, tmp_path, TINY, SearchConfig(**{**config.to_dict(), "selection": "alphas"}),
                       progress=False)
    assert again.genome.to_dict() == by_alphas and len(again.log) == 2
    assert not (tmp_path / "selection.npz").exists() and (tmp_path / "alpha_history.npz").exists()
    assert load_search(tmp_path).genome == again.genome


def test_an_unknown_selection_names_the_known_ones():
    with pytest.raises(ValueError, match="known: alphas, perturbation"):
        SearchConfig(selection="magnitude")


def test_genome_weights_run_the_genome_alone_with_the_supernets_weights():
    _, plain = twin_supernets(seed=2)
    genome = random_genome(TINY, 5)
    weights = genome_weights(genome, TINY)
    for t, w in weights.items():
        assert w.sum() == 2 * TINY.nodes(t) and set(w.unique().tolist()) == {0.0, 1.0}
    kept = {(t, e, o) for t, w in weights.items() for e, o in w.nonzero().tolist()}
    cells = {"normal": [c for c in plain.cnn_cells if not c.reduction],
             "reduce": [c for c in plain.cnn_cells if c.reduction], "seq": list(plain.seq_cells)}
    softmax = {t: torch.softmax(a.detach(), -1) for t, a in plain.alphas.items()}
    x, y = (torch.as_tensor(v) for v in tiny_data(n_per_class=3))
    alone = plain(x, weights=weights)
    # The same as the supernet whose kept ops are scaled to weight 1 and whose other ops give zeros.
    hooks = [op.register_forward_hook(lambda m, i, out, scale=(1 / softmax[t][e, o] if (t, e, o) in kept else 0.0):
                                      out * scale)
             for t, of_type in cells.items() for cell in of_type for e, edge in enumerate(cell.edges)
             for o, op in enumerate(edge.ops)]
    try:
        torch.testing.assert_close(plain(x), alone, rtol=1e-5, atol=1e-5)
    finally:
        for hook in hooks:
            hook.remove()
    plain.train()
    plain.set_aux_skip(0.5)
    loss = one_shot_loss(plain, genome, x, y, batch_size=12)
    assert plain.training and plain.cnn_cells[0].edges[0].aux_skip == 0.5  # put back
    plain.set_aux_skip(0.0)
    with batch_statistics(plain):
        assert loss == pytest.approx(supernet_loss(plain, x, y, 12, weights=weights), rel=1e-6)
        assert loss != pytest.approx(supernet_loss(plain, x, y, 12), rel=1e-3)  # not the whole supernet


def test_load_supernet_restores_the_trained_search(tmp_path):
    x, y = tiny_data()
    config = SearchConfig(epochs=2, batch_size=8, seed=4, alpha_lr=0.1, max_skip=1)
    result = run_search(x, y, tmp_path, TINY, config, progress=False)
    rng = torch.get_rng_state()
    model, loaded = load_supernet(tmp_path)
    assert torch.equal(torch.get_rng_state(), rng)  # not the search's RNG state from the checkpoint
    assert not model.training and loaded.seed == 4 and loaded.max_skip == 1
    for t, history in result.alpha_history.items():
        np.testing.assert_allclose(model.alpha_snapshot()[t], history[-1], rtol=1e-6)
    assert model.genome(loaded.max_skip) == Genome.load(tmp_path)
    with pytest.raises(FileNotFoundError, match="run a search there first"):
        load_supernet(tmp_path / "nothing")
    # One-shot losses on the search's own alpha half.
    table = one_shot_losses(tmp_path, x, y, {"found": result.genome, "random": random_genome(TINY, 1)})
    assert list(table["genome"]) == ["(supernet)", "found", "random"]
    _, alpha_rows = split_halves(y, loaded.alpha_fraction, loaded.seed)
    x_a, y_a = torch.as_tensor(x[alpha_rows]), torch.as_tensor(y[alpha_rows]).long()
    assert table["loss"][1] == pytest.approx(one_shot_loss(model, result.genome, x_a, y_a, 8), rel=1e-5)
    with batch_statistics(model):
        assert table["loss"][0] == pytest.approx(supernet_loss(model, x_a, y_a, 8), rel=1e-5)


def test_a_fold_search_split_by_speakers_keeps_the_test_speakers_out_and_scores_on_its_alpha_speakers(
        tiny_fold_data, tmp_path):
    data = tiny_fold_data
    config = {"epochs": 1, "batch_size": 4, "alpha_split": "speakers", "seed": 2}
    space = TINY.to_dict()
    result = search_fold(data, tmp_path, space, config, progress=False)
    (alpha_speaker,) = json.loads((tmp_path / "summary.json").read_text())["alpha_speakers"]
    assert alpha_speaker in data.fold.speakers("search") and alpha_speaker not in data.fold.test_speakers
    speakers = data.speakers("search")
    assert len(speakers) == len(data.y["search"]) and set(speakers) == set(data.fold.speakers("search"))
    x, y = data.x["search"], data.y["search"]
    table = one_shot_losses(tmp_path, x, y, {"found": result.genome}, speakers)
    model, _ = load_supernet(tmp_path)
    alpha_rows = np.flatnonzero(speakers == alpha_speaker)
    x_a, y_a = torch.as_tensor(x[alpha_rows]), torch.as_tensor(y[alpha_rows]).long()
    assert table["loss"][1] == pytest.approx(one_shot_loss(model, result.genome, x_a, y_a, 4), rel=1e-5)
    with pytest.raises(ValueError, match="pass speakers="):
        one_shot_losses(tmp_path, x, y, {"found": result.genome})

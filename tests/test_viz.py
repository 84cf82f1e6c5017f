"""Tests of emokit.viz: cell graphs (checked on their DOT source), rendering
with the real ``dot``, the missing-``dot`` error, and the matplotlib figures."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import graphviz
import numpy as np
import pandas as pd
import pytest
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from emokit import viz
from emokit.search.genotype import Genome, edge_labels, n_edges

CNN_OPS = ["max_pool_3x3", "avg_pool_3x3", "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3",
           "dil_conv_5x5", "conv_7x1_1x7", "skip_connect", "none"]
SEQ_OPS = ["lstm_1", "lstm_2", "lstm_3", "lstm_4", "lstm_att_1", "lstm_att_2", "rnn_1", "rnn_2",
           "rnn_3", "rnn_4", "rnn_att_1", "rnn_att_2", "skip_connect", "none"]
OPS = {"normal": CNN_OPS, "reduce": CNN_OPS, "seq": SEQ_OPS}
NODES = {"normal": 4, "reduce": 4, "seq": 3}

GENOME_A = Genome(
    normal=[[("sep_conv_3x3", 0), ("skip_connect", 1)],
            [("max_pool_3x3", 0), ("sep_conv_5x5", 2)],
            [("dil_conv_3x3", 1), ("skip_connect", 3)],
            [("avg_pool_3x3", 0), ("sep_conv_3x3", 4)]],
    reduce=[[("max_pool_3x3", 0), ("max_pool_3x3", 1)],
            [("skip_connect", 2), ("max_pool_3x3", 1)],
            [("dil_conv_5x5", 0), ("sep_conv_3x3", 3)],
            [("skip_connect", 2), ("avg_pool_3x3", 4)]],
    seq=[[("lstm_2", 0), ("lstm_att_1", 1)],
         [("rnn_1", 2), ("skip_connect", 0)],
         [("lstm_att_1", 3), ("rnn_1", 1)]],
)
GENOME_B = Genome(
    normal=[[("sep_conv_3x3", 0), ("sep_conv_3x3", 1)],
            [("skip_connect", 0), ("sep_conv_3x3", 1)],
            [("skip_connect", 0), ("dil_conv_5x5", 2)],
            [("max_pool_3x3", 1), ("conv_7x1_1x7", 2)]],
    reduce=[[("max_pool_3x3", 0), ("avg_pool_3x3", 1)],
            [("max_pool_3x3", 0), ("skip_connect", 2)],
            [("max_pool_3x3", 1), ("skip_connect", 2)],
            [("max_pool_3x3", 0), ("sep_conv_5x5", 3)]],
    seq=[[("lstm_2", 0), ("rnn_1", 1)],
         [("lstm_att_1", 0), ("lstm_att_1", 2)],
         [("skip_connect", 2), ("rnn_att_2", 3)]],
)

CONV, POOL, SKIP = viz.FAMILY_COLORS["convolution"], viz.FAMILY_COLORS["pooling"], viz.FAMILY_COLORS["identity"]
REC, ATT = viz.FAMILY_COLORS["recurrent"], viz.FAMILY_COLORS["attention"]

# Labelled edges of GENOME_A, written out by hand: (source, target, op, colour).
EXPECTED_EDGES = {
    "normal": {
        ("c_{k-2}", "0", "sep_conv_3x3", CONV), ("c_{k-1}", "0", "skip_connect", SKIP),
        ("c_{k-2}", "1", "max_pool_3x3", POOL), ("0", "1", "sep_conv_5x5", CONV),
        ("c_{k-1}", "2", "dil_conv_3x3", CONV), ("1", "2", "skip_connect", SKIP),
        ("c_{k-2}", "3", "avg_pool_3x3", POOL), ("2", "3", "sep_conv_3x3", CONV),
    },
    "reduce": {
        ("c_{k-2}", "0", "max_pool_3x3", POOL), ("c_{k-1}", "0", "max_pool_3x3", POOL),
        ("0", "1", "skip_connect", SKIP), ("c_{k-1}", "1", "max_pool_3x3", POOL),
        ("c_{k-2}", "2", "dil_conv_5x5", CONV), ("1", "2", "sep_conv_3x3", CONV),
        ("0", "3", "skip_connect", SKIP), ("2", "3", "avg_pool_3x3", POOL),
    },
    "seq": {
        ("c_{k-2}", "0", "lstm_2", REC), ("c_{k-1}", "0", "lstm_att_1", ATT),
        ("0", "1", "rnn_1", REC), ("c_{k-2}", "1", "skip_connect", SKIP),
        ("1", "2", "lstm_att_1", ATT), ("c_{k-1}", "2", "rnn_1", REC),
    },
}

# --------------------------------------------------------------------------
# a small DOT reader (enough for what graphviz' Python package writes)
_ID = r'"(?:[^"\\]|\\.)*"|[\w.]+'
_EDGE = re.compile(rf"^\s*({_ID})\s*->\s*({_ID})\s*(?:\[(.*)\])?\s*$")
_NODE = re.compile(rf"^\s*({_ID})\s*(?:\[(.*)\])?\s*$")
_ATTR = re.compile(rf"(\w+)=({_ID}|[^\s\]]+)")


def _unquote(token: str) -> str:
    return token[1:-1] if token.startswith('"') else token


def _attrs(text: str | None) -> dict[str, str]:
    return {k: _unquote(v) for k, v in _ATTR.findall(text or "")}


def parse_dot(source: str):
    """-> (nodes: dict name -> attrs, edges: list of (src, dst, attrs))."""
    nodes, edges = {}, []
    for line in source.splitlines():
        if m := _EDGE.match(line):
            edges.append((_unquote(m[1]), _unquote(m[2]), _attrs(m[3])))
        elif (m := _NODE.match(line)) and m[1] not in ("graph", "node", "edge", "}"):
            nodes[_unquote(m[1])] = _attrs(m[2])
    return nodes, edges


def softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def random_snapshot(seed=0):
    rng = np.random.default_rng(seed)
    return {cell: softmax(rng.normal(size=(n_edges(NODES[cell]), len(OPS[cell])))) for cell in OPS}


needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz 'dot' is not installed")


# --------------------------------------------------------------------------
# cell graphs
@pytest.mark.parametrize("cell", ["normal", "reduce", "seq"])
def test_cell_graph_nodes_and_edges(cell):
    graph = viz.cell_graph(GENOME_A, cell)
    assert isinstance(graph, graphviz.Digraph)
    assert "rankdir=LR" in graph.source and f'"{cell} cell"' in graph.source
    nodes, edges = parse_dot(graph.source)
    n = NODES[cell]
    assert set(nodes) == {"c_{k-2}", "c_{k-1}", "c_{k}"} | {str(j) for j in range(n)}
    assert nodes["c_{k-2}"]["fillcolor"] == nodes["c_{k-1}"]["fillcolor"]
    assert {nodes[str(j)]["label"] for j in range(n)} == {str(j) for j in range(n)}
    labelled = {(s, d, a["label"], a["color"]) for s, d, a in edges if "label" in a}
    assert labelled == EXPECTED_EDGES[cell]
    assert all(a["fontcolor"] == a["color"] for _, _, a in edges if "label" in a)
    to_output = [(s, d, a) for s, d, a in edges if "label" not in a]
    assert {(s, d) for s, d, _ in to_output} == {(str(j), "c_{k}") for j in range(n)}
    assert {a["color"] for _, _, a in to_output} == {"gray"}
    assert len(edges) == len(EXPECTED_EDGES[cell]) + n


def test_cell_graph_with_weights_labels_the_right_edge():
    snapshot = random_snapshot()
    weights = snapshot["normal"].copy()
    # edge_list(4) row 2 is node 1 <- c_{k-2}; its op in GENOME_A is max_pool_3x3 (column 0)
    weights[2, 0] = 0.31
    graph = viz.cell_graph(GENOME_A, "normal", weights=weights, ops=CNN_OPS)
    _, edges = parse_dot(graph.source)
    by_edge = {(s, d): a["label"] for s, d, a in edges if "label" in a}
    assert by_edge[("c_{k-2}", "1")] == "max_pool_3x3\\n0.31"
    # node 0 <- c_{k-1} is row 1, skip_connect is column 7
    assert by_edge[("c_{k-1}", "0")] == f"skip_connect\\n{weights[1, 7]:.2f}"
    # node 3 <- node 2 (state 4) is row 13, sep_conv_3x3 is column 2
    assert by_edge[("2", "3")] == f"sep_conv_3x3\\n{weights[13, 2]:.2f}"
    # a whole snapshot and ops dict are accepted too
    assert viz.cell_graph(GENOME_A, "normal", weights={**snapshot, "normal": weights}, ops=OPS).source == graph.source


def test_cell_graph_errors():
    with pytest.raises(KeyError, match="normal, reduce, seq"):
        viz.cell_graph(GENOME_A, "conv")
    with pytest.raises(ValueError, match="shape"):
        viz.cell_graph(GENOME_A, "normal", weights=np.zeros((9, 9)), ops=CNN_OPS)
    with pytest.raises(ValueError, match="both"):
        viz.cell_graph(GENOME_A, "normal", weights=np.zeros((14, 9)))
    with pytest.raises(ValueError, match="lstm_2"):
        viz.cell_graph(GENOME_A, "seq", weights=np.zeros((9, 9)), ops=CNN_OPS)


def test_genome_figure_has_three_prefixed_clusters():
    snapshot = random_snapshot(1)
    graph = viz.genome_figure(GENOME_A, snapshot, OPS)
    for cell in OPS:
        assert f"subgraph cluster_{cell}" in graph.source
        assert f'label="{cell} cell"' in graph.source
    nodes, edges = parse_dot(graph.source)
    assert len(nodes) == sum(n + 3 for n in NODES.values())
    for cell, expected in EXPECTED_EDGES.items():
        p = f"{cell}_"
        labelled = {(s, d, a["label"].split("\\n")[0], a["color"]) for s, d, a in edges
                    if "label" in a and s.startswith(p)}
        assert labelled == {(p + s, p + d, op, c) for s, d, op, c in expected}
        assert all(d.startswith(p) for s, d, _ in edges if s.startswith(p) and "style" not in _)
    _, _, attrs = next(e for e in edges if e[:2] == ("seq_c_{k-2}", "seq_0"))
    assert attrs["label"] == f"lstm_2\\n{snapshot['seq'][0, SEQ_OPS.index('lstm_2')]:.2f}"
    assert "rank=same" in graph.source  # the three cells' inputs in one column: cells stacked vertically
    assert 'size="10.5,40"' in graph.source  # scaled to a notebook's output width
    plain = viz.genome_figure(GENOME_A)
    assert "\\n" not in plain.source


# --------------------------------------------------------------------------
# rendering
@needs_dot
def test_save_graph_svg_and_png(tmp_path):
    out = viz.save_graph(viz.cell_graph(GENOME_A, "seq", random_snapshot()["seq"], SEQ_OPS), tmp_path / "seq.svg")
    assert out == tmp_path / "seq.svg"
    text = out.read_text()
    assert "<svg" in text
    for op in ("lstm_2", "lstm_att_1", "rnn_1", "skip_connect", "c_{k}"):
        assert op in text
    png = viz.save_graph(viz.genome_figure(GENOME_A), tmp_path / "sub" / "genome.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["genome.png", "seq.svg"]
    assert viz.require_dot() == shutil.which("dot")


def _text_boxes(objects: list[dict]) -> list[tuple[str, float, float, float, float]]:
    """(text, x0, y0, x1, y1) of every text dot drew for these objects (its json output; points)."""
    boxes = []
    for obj in objects:
        size = 14.0
        for op in obj.get("_ldraw_", []):
            if op["op"] == "F":
                size = op["size"]
            elif op["op"] == "T":
                (x, y), width = op["pt"], op["width"]
                x0 = {"l": x, "c": x - width / 2, "r": x - width}[op["align"]]
                boxes.append((op["text"], x0, y - 0.25 * size, x0 + width, y + 0.8 * size))
    return boxes


@needs_dot
def test_no_cell_title_sits_on_an_edge_label():
    """Across random genomes, the clusters' titles ("reduce cell" ...) and the edges' op and weight labels
    never overlap (with centred titles 27 of 40 genomes of this space had one that did)."""
    from emokit.search.genotype import random_genome
    from emokit.search.supernet import SearchSpace

    space = SearchSpace(input_shape=(128, 48), cnn_nodes=2, seq_nodes=2)
    rng = np.random.default_rng(0)
    for seed in range(20):
        genome = random_genome(space, seed)
        ops = {cell: list(space.cnn_ops if cell != "seq" else space.seq_ops) for cell in ("normal", "reduce", "seq")}
        snapshot = {cell: rng.dirichlet(np.ones(len(names)), size=n_edges(2)) for cell, names in ops.items()}
        drawn = json.loads(viz.genome_figure(genome, snapshot, ops).pipe(format="json"))
        titles = [b for b in _text_boxes(drawn["objects"]) if b[0].endswith(" cell")]
        labels = _text_boxes(drawn["edges"])
        assert len(titles) == 3 and labels
        for title in titles:
            for label in labels:
                apart = title[3] <= label[1] or label[3] <= title[1] or title[4] <= label[2] or label[4] <= title[2]
                assert apart, (seed, title, label)


@needs_dot
def test_save_graph_normal_svg(tmp_path):
    out = viz.save_graph(viz.cell_graph(GENOME_A, "normal"), tmp_path / "normal.svg")
    text = out.read_text()
    assert text.lstrip().startswith("<?xml") and "</svg>" in text
    for op in GENOME_A.ops("normal"):
        assert op in text


def test_save_graph_unknown_suffix(tmp_path):
    with pytest.raises(ValueError, match="suffix"):
        viz.save_graph(viz.cell_graph(GENOME_A), tmp_path / "normal")


def _assert_install_hint(message: str) -> None:
    for hint in ("apt-get install graphviz", "conda install -c conda-forge graphviz", "brew install graphviz"):
        assert hint in message


def test_missing_dot_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    graph = viz.cell_graph(GENOME_A, "normal")  # drawing needs no dot
    assert "sep_conv_3x3" in graph.source
    with pytest.raises(RuntimeError) as err:
        viz.require_dot()
    _assert_install_hint(str(err.value))
    with pytest.raises(RuntimeError) as err:
        viz.save_graph(graph, tmp_path / "normal.svg")
    _assert_install_hint(str(err.value))
    assert not (tmp_path / "normal.svg").exists()
    with pytest.raises(RuntimeError, match="apt-get"):
        graph._repr_mimebundle_()


def test_dot_vanishing_during_render(tmp_path, monkeypatch):
    graph = viz.cell_graph(GENOME_A, "normal")
    monkeypatch.setattr(viz.cells.shutil, "which", lambda name: "/usr/bin/dot")

    def broken_pipe(*args, **kwargs):
        raise graphviz.ExecutableNotFound(["dot"])

    monkeypatch.setattr(graph, "pipe", broken_pipe)
    with pytest.raises(RuntimeError) as err:
        viz.save_graph(graph, tmp_path / "normal.pdf")
    _assert_install_hint(str(err.value))


def test_import_and_draw_without_dot(tmp_path):
    code = (
        "import sys; import emokit.viz as v; from emokit.search.genotype import Genome\n"
        f"g = Genome.from_json({GENOME_A.to_json()!r})\n"
        "src = v.genome_figure(g).source\n"
        "assert 'lstm_att_1' in src, src\n"
        "v.alpha_heatmap(__import__('numpy').full((2, 2), .5), ['a', 'b'], ['x', 'y'])\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n"
        "print('ok')\n"
    )
    env = {**os.environ, "PATH": str(tmp_path), "MPLBACKEND": "agg"}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120,
                            cwd=Path(__file__).resolve().parents[1])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


# --------------------------------------------------------------------------
# alpha figures
def _heatmap_axes(fig: Figure) -> list[Axes]:
    return [ax for ax in fig.axes if ax.images and ax.get_title()]


def test_alpha_heatmaps_three_panels_and_reuse():
    snapshot = random_snapshot()
    fig = viz.alpha_heatmaps(snapshot, OPS)
    assert isinstance(fig, Figure)
    heat = _heatmap_axes(fig)
    assert [ax.get_title() for ax in heat] == ["normal cell", "reduce cell", "seq cell"]
    assert 3 <= len(fig.axes) <= 6
    assert [len(ax.get_yticklabels()) for ax in heat] == [14, 14, 9]
    assert [t.get_text() for t in heat[2].get_xticklabels()] == SEQ_OPS
    np.testing.assert_allclose(heat[1].images[0].get_array(), snapshot["reduce"] * len(CNN_OPS))  # x uniform
    n_axes = len(fig.axes)
    again = viz.alpha_heatmaps(random_snapshot(2), OPS, fig=fig)
    assert again is fig and len(fig.axes) == n_axes
    np.testing.assert_allclose(_heatmap_axes(fig)[0].images[0].get_array(), random_snapshot(2)["normal"] * len(CNN_OPS))


def test_heatmap_colours_a_near_tie_as_a_tie_and_a_decision_as_a_decision():
    ops, labels = ["a", "b", "c", "d"], edge_labels(2)
    tie = np.full((5, 4), 0.25) + np.array([0.001, -0.001, 0.0, 0.0])  # 1.004x uniform at most
    decided = np.tile([0.85, 0.05, 0.05, 0.05], (5, 1))  # 3.4x uniform
    colours = []
    for weights in (tie, decided):
        image = viz.alpha_heatmap(weights, ops, labels).images[0]
        colours.append(image.to_rgba(image.get_array()))
    assert np.abs(colours[0][..., :3] - colours[0][0, 2, :3]).max() < 0.02  # all one pale colour
    assert colours[0][..., :3].min() > 0.9
    assert colours[1][0, 0, :3].min() < 0.6 and colours[1][0, 0, 0] > colours[1][0, 0, 2]  # a strong red


def test_alpha_heatmaps_redraw_one_figure_and_skip_values_of_large_spaces():
    # What keeps a live update cheap: the figure is reused at its size, and the
    # full search space's maps (over 300 cells) get no value texts.
    snapshot = random_snapshot()
    assert sum(w.size for w in snapshot.values()) > 300
    fig = viz.alpha_heatmaps(snapshot, OPS)
    size, n_axes = tuple(fig.get_size_inches()), len(fig.axes)
    again = viz.alpha_heatmaps(random_snapshot(seed=1), OPS, fig=fig)
    assert again is fig and tuple(fig.get_size_inches()) == size and len(fig.axes) == n_axes
    assert sum(len(ax.texts) for ax in fig.axes) == 0
    small = {cell: w[:2] for cell, w in snapshot.items()}
    assert sum(len(ax.texts) for ax in viz.alpha_heatmaps(small, OPS).axes) > 0


def test_alpha_heatmap_annotations():
    weights = softmax(np.random.default_rng(0).normal(size=(5, 4)))
    ops, labels = ["a", "b", "c", "none"], edge_labels(2)
    ax = viz.alpha_heatmap(weights, ops, labels, title="t")
    assert isinstance(ax, Axes) and ax.get_title() == "t"
    assert len(ax.texts) == weights.size
    assert f"{4 * weights[3, 1]:.1f}" in {t.get_text() for t in ax.texts}  # the ratio to uniform
    quiet = viz.alpha_heatmap(weights, ops, labels, annotate=False)
    assert not quiet.texts
    with pytest.raises(ValueError):
        viz.alpha_heatmap(weights, ops[:3], labels)


@pytest.mark.parametrize("cell", ["normal", "seq"])
def test_alpha_evolution_one_panel_per_edge(cell):
    rng = np.random.default_rng(0)
    history = {c: softmax(rng.normal(size=(6, n_edges(NODES[c]), len(OPS[c])))) for c in OPS}
    fig = viz.alpha_evolution(history, OPS, cell)
    assert isinstance(fig, Figure)
    assert len(fig.axes) == n_edges(NODES[cell])
    assert {ax.get_title() for ax in fig.axes} == set(edge_labels(NODES[cell]))
    assert all(len(ax.lines) == len(OPS[cell]) for ax in fig.axes)
    assert len(fig.legends) == 1
    with pytest.raises(KeyError, match="normal, reduce, seq"):
        viz.alpha_evolution(history, OPS, "cnn")


def test_load_alpha_history(tmp_path):
    with pytest.raises(FileNotFoundError, match="run a search"):
        viz.load_alpha_history(tmp_path)
    rng = np.random.default_rng(0)
    history = {c: softmax(rng.normal(size=(3, n_edges(NODES[c]), len(OPS[c])))) for c in OPS}
    np.savez(tmp_path / "alpha_history.npz", **history)
    (tmp_path / "search_space.json").write_text(json.dumps({"ops": OPS, "nodes": NODES}))
    loaded, ops = viz.load_alpha_history(tmp_path)
    assert list(loaded) == ["normal", "reduce", "seq"] and ops == OPS
    for cell in OPS:
        np.testing.assert_allclose(loaded[cell], history[cell])


# --------------------------------------------------------------------------
# stability across folds / seeds
def test_op_frequency_hand_count():
    freq = viz.op_frequency([GENOME_A, GENOME_B])
    assert list(freq.columns) == ["normal", "reduce", "seq"]
    assert freq.index.name == "op"
    assert freq.sum().to_dict() == {"normal": 16, "reduce": 16, "seq": 12}
    expected = {  # counted by hand from GENOME_A + GENOME_B
        ("sep_conv_3x3", "normal"): 2 + 3, ("skip_connect", "normal"): 2 + 2,
        ("max_pool_3x3", "normal"): 1 + 1, ("conv_7x1_1x7", "normal"): 0 + 1,
        ("max_pool_3x3", "reduce"): 3 + 4, ("skip_connect", "reduce"): 2 + 2,
        ("sep_conv_5x5", "reduce"): 0 + 1, ("sep_conv_3x3", "reduce"): 1 + 0,
        ("lstm_att_1", "seq"): 2 + 2, ("rnn_1", "seq"): 2 + 1, ("lstm_2", "seq"): 1 + 1,
        ("skip_connect", "seq"): 1 + 1, ("rnn_att_2", "seq"): 0 + 1, ("lstm_2", "normal"): 0,
    }
    for (op, cell), count in expected.items():
        assert freq.loc[op, cell] == count, (op, cell)
    assert freq.index[0] == "skip_connect"  # 4 + 4 + 2, the most chosen op overall
    one = viz.op_frequency(GENOME_A)
    assert one.loc["max_pool_3x3", "reduce"] == 3


def test_plot_op_frequency_from_genomes_or_frame():
    fig = viz.plot_op_frequency([GENOME_A, GENOME_B])
    assert isinstance(fig, Figure)
    assert [ax.get_title() for ax in fig.axes] == ["normal cell", "reduce cell", "seq cell"]
    seq_bars = {t.get_text() for t in fig.axes[2].get_yticklabels()}
    assert seq_bars == {"lstm_2", "lstm_att_1", "rnn_1", "skip_connect", "rnn_att_2"}
    fig2 = viz.plot_op_frequency(viz.op_frequency([GENOME_A]))
    assert len(fig2.axes) == 3


# --------------------------------------------------------------------------
# logs and results
def test_training_curves_split_losses_and_metrics():
    epochs = np.arange(1, 6)
    log = pd.DataFrame({"epoch": epochs, "train_loss": 1 / epochs, "val_loss": 1.2 / epochs,
                        "train_acc": epochs / 10, "val_ua": epochs / 11, "phase": ["search"] * 5})
    ax = viz.training_curves(log)
    assert isinstance(ax, Axes)
    assert {line.get_label() for line in ax.lines} == {"train_loss", "val_loss"}
    twins = [other for other in ax.figure.axes if other is not ax]
    assert len(twins) == 1
    assert {line.get_label() for line in twins[0].lines} == {"train_acc", "val_ua"}
    np.testing.assert_allclose(ax.lines[0].get_xdata(), epochs)
    only_acc = viz.training_curves(log[["epoch", "val_ua"]])
    assert len(only_acc.figure.axes) == 1 and len(only_acc.lines) == 1
    with pytest.raises(ValueError, match="numeric"):
        viz.training_curves(log[["epoch", "phase"]])


def test_curve_legends_sit_above_the_lines_of_both_axes():
    """One legend naming the lines of the axes and its twin, outside the plot, so it covers no line."""
    from emokit.viz.training import schedule_curves

    epochs = np.arange(1, 41)
    log = pd.DataFrame({"epoch": epochs, "train_loss": 1 / epochs, "val_loss": 1.2 / epochs, "train_acc": 1 - 1 / epochs,
                        "val_ua": 0.9 - 1 / epochs, "lr": 0.1 / epochs, "seconds": np.full(40, 2.0)})
    for ax, names in ((viz.training_curves(log), ["train_loss", "val_loss", "train_acc", "val_ua"]),
                      (schedule_curves(log), ["lr", "seconds"])):
        ax.figure.canvas.draw()
        legend = ax.get_legend()
        assert [text.get_text() for text in legend.get_texts()] == names
        assert legend.get_window_extent().y0 >= ax.get_window_extent().y1  # above the plotting area


def test_confusion_matrix_figure():
    matrix = np.array([[8, 2, 0], [1, 3, 0], [0, 0, 0]])
    fig = viz.confusion_matrix_figure(matrix, ["ang", "hap", "sad"])
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    shown = np.asarray(ax.images[0].get_array())
    np.testing.assert_allclose(shown, [[0.8, 0.2, 0], [0.25, 0.75, 0], [0, 0, 0]])
    assert "0.775" in ax.get_title()  # UA over the classes that occur: (0.8 + 0.75) / 2
    counts = viz.confusion_matrix_figure(matrix, ["ang", "hap", "sad"], normalize=False)
    assert "8" in {t.get_text() for t in counts.axes[0].texts}
    with pytest.raises(ValueError):
        viz.confusion_matrix_figure(matrix, ["ang", "hap"])


def _drawn_texts(fig: Figure) -> list:
    """(text, kind) of every text the figure draws: titles, labels, legends,
    annotations and the tick labels inside each axis's view."""
    import matplotlib.text

    found = [(t, "text") for t in fig.texts]
    for legend in fig.legends:
        found += [(t, "legend") for t in legend.get_texts()] + [(legend.get_title(), "legend")]
    for ax in fig.axes:
        found += [(t, "text") for t in (ax.title, ax._left_title, ax._right_title, ax.xaxis.label, ax.yaxis.label)]
        found += [(t, "text") for t in ax.texts if isinstance(t, matplotlib.text.Text)]
        if ax.get_legend() is not None:
            found += [(t, "legend") for t in ax.get_legend().get_texts()]
        for axis, kind in ((ax.xaxis, "xtick"), (ax.yaxis, "ytick")):
            low, high = sorted(axis.get_view_interval())
            for tick in axis.get_major_ticks():
                if low - 1e-9 <= tick.get_loc() <= high + 1e-9 and tick.label1.get_visible():
                    found.append((tick.label1, f"{kind}{id(ax)}"))
                if low - 1e-9 <= tick.get_loc() <= high + 1e-9 and tick.label2.get_visible():
                    found.append((tick.label2, f"{kind}2{id(ax)}"))
    unique = {id(t): (t, kind) for t, kind in found if t.get_visible() and t.get_text().strip()}
    return list(unique.values())


def text_overlaps(fig: Figure) -> list[str]:
    """Texts of a rendered figure that overlap another text or leave the figure
    (tick labels of one axis are not compared with each other)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    boxes = [(t.get_text(), kind, t.get_window_extent(renderer)) for t, kind in _drawn_texts(fig)]
    frame = fig.bbox
    problems = [f"{text!r} leaves the figure" for text, _, box in boxes
                if box.x0 < frame.x0 - 1 or box.x1 > frame.x1 + 1 or box.y0 < frame.y0 - 1 or box.y1 > frame.y1 + 1]
    for i, (a, kind_a, box_a) in enumerate(boxes):
        for b, kind_b, box_b in boxes[i + 1:]:
            if kind_a == kind_b and kind_a.startswith(("xtick", "ytick")):
                continue
            overlap = box_a.intersection(box_a, box_b)
            if overlap is not None and overlap.width > 1 and overlap.height > 1:
                problems.append(f"{a!r} overlaps {b!r}")
    return problems


def test_figure_7_and_the_live_heatmap_have_no_overlapping_or_cut_text(tmp_path):
    from emokit.viz.live import LiveMonitor
    from emokit.viz.results import ua_std_scatter

    table = pd.DataFrame({"corpus": ["emodb"] * 6 + ["emovo"] * 6,
                          "model": ["emodarts", "random", "classical", "cnn", "cnn_lstm", "cnn_lstm_att"] * 2,
                          "ua_mean": [80, 79.5, 81, 38, 63, 71, 52, 51.5, 51, 32, 57, 46],
                          "ua_std": [7, 7.2, 3.5, 18, 7.5, 2.4, 5, 5.1, 5, 8, 7.6, 10.5],
                          "parameters": [57000, 60000, 324, 35000, 285000, 351000] * 2})
    assert text_overlaps(ua_std_scatter(table)) == []
    monitor = LiveMonitor(frames_dir=tmp_path, live=False)
    monitor({"epoch": 3, "row": {"epoch": 3, "lr": 0.02, "seconds": 12.0, "weight_loss": 1.0, "alpha_acc": 0.5},
             "snapshot": random_snapshot(), "ops": OPS})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alphas_epoch003.png", "curves_epoch003.png"]
    assert monitor.alpha_fig.get_suptitle() == "softmax(alpha) after epoch 3"
    assert text_overlaps(monitor.alpha_fig) == []
    assert text_overlaps(monitor.curve_fig) == []


def test_a_monitor_nobody_sees_keeps_the_rows_and_draws_nothing():
    from emokit.viz.live import LiveMonitor

    monitor = LiveMonitor(live=False)
    for epoch in (1, 2):
        monitor({"epoch": epoch, "row": {"epoch": epoch, "lr": 0.02, "weight_loss": 1.0, "name": "x"},
                 "snapshot": random_snapshot(), "ops": OPS})
    assert monitor.rows == [{"epoch": 1, "lr": 0.02, "weight_loss": 1.0}, {"epoch": 2, "lr": 0.02, "weight_loss": 1.0}]
    assert monitor.alpha_fig is None and monitor.curve_fig.axes == []


def test_fold_and_epoch_axes_have_whole_number_ticks():
    from emokit.viz.results import ua_per_fold_figure

    results = pd.DataFrame({"corpus": "emodb", "name": ["emodarts"] * 3, "fold": [0, 1, 2], "ua": [0.7, 0.8, 0.75],
                            "status": "done"})
    ax = ua_per_fold_figure(results).axes[0]
    log = pd.DataFrame({"epoch": [1, 2, 3], "train_loss": [1.0, 0.8, 0.7], "val_ua": [0.5, 0.6, 0.7]})
    single = pd.DataFrame({"epoch": [3], "train_loss": [1.0], "lr": [0.02], "seconds": [3.0]})
    axes = [ax, viz.training_curves(log), viz.training_curves(single),
            viz.alpha_evolution({"normal": softmax(np.random.default_rng(0).normal(size=(3, n_edges(4), 9)))},
                                OPS, "normal").axes[0]]
    from emokit.viz.training import schedule_curves

    axes.append(schedule_curves(single))
    for axis in axes:
        axis.figure.canvas.draw() if hasattr(axis.figure.canvas, "draw") else None
        low, high = sorted(axis.get_xlim())
        ticks = [t for t in axis.get_xticks() if low <= t <= high]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks


def test_selection_heatmaps_outline_the_kept_ops_and_edges(tmp_path):
    from test_search import TINY, tiny_data

    from emokit.search.loop import SearchConfig, run_search
    from emokit.viz.selection import load_selection, selection_heatmaps

    x, y = tiny_data(n_per_class=3)
    with pytest.raises(FileNotFoundError, match="selection='perturbation'"):
        load_selection(run_search(x, y, tmp_path / "alphas", TINY, SearchConfig(epochs=1, batch_size=8),
                                  progress=False).run_dir)
    result = run_search(x, y, tmp_path, TINY, SearchConfig(epochs=1, batch_size=8, selection="perturbation"),
                        progress=False)
    scores, ops = load_selection(tmp_path)
    fig = selection_heatmaps(scores, ops, result.genome)
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == ["normal cell", "reduce cell", "seq cell"]
    for ax, cell in zip(panels, ("normal", "reduce", "seq")):
        assert [t.get_text() for t in ax.get_xticklabels()][-1] == "whole edge"
        assert len(ax.patches) == 2 * len(result.genome.ops(cell))  # each kept op and its edge
    assert text_overlaps(fig) == []


def test_genome_spread_figure_orders_genomes_by_mean_and_plots_every_run():
    from emokit.viz.results import genome_spread_figure

    rng = np.random.default_rng(0)
    names = ["searched-0", "searched-1"] + [f"random-{g}" for g in range(6)]
    retrained = pd.DataFrame([{"genome": n, "kind": n.split("-")[0], "seed": s, "ua": 0.6 + 0.03 * i + 0.01 * s,
                               "val_ua": rng.uniform(0.7, 0.9)} for i, n in enumerate(names) for s in (0, 1)])
    retrained = retrained.sample(frac=1, random_state=0)  # the order of the rows must not matter
    one_shot = pd.DataFrame([{"supernet": f"fold0-seed{k}", "genome": n, "loss": rng.uniform(1.2, 1.4)}
                             for k in (0, 1) for n in names + ["(supernet)"]])
    fig = genome_spread_figure(retrained, one_shot)
    left, right = fig.axes[:2]
    assert [t.get_text() for t in left.get_xticklabels()] == names  # made with rising means
    assert sum(len(c.get_offsets()) for c in left.collections) == len(retrained)
    assert sum(len(c.get_offsets()) for c in right.collections) == 2 * len(names)  # no "(supernet)" row
    assert text_overlaps(fig) == []
    assert len(genome_spread_figure(retrained).axes) == 1


def test_genome_fold_figure_draws_a_line_per_genome_through_every_fold():
    from emokit.viz.results import genome_fold_figure

    rng = np.random.default_rng(0)
    runs = pd.DataFrame([{"genome": g, "fold": f, "seed": s, "ua": rng.uniform(0.7, 0.9), "val_ua": rng.uniform(0.7, 0.9)}
                         for g in range(6) for f in range(5) for s in (0, 1)]).sample(frac=1, random_state=0)
    fig = genome_fold_figure(runs)
    test_axis, val_axis = fig.axes
    for ax, value in ((test_axis, "ua"), (val_axis, "val_ua")):
        assert len(ax.lines) == 6 and [t.get_text() for t in ax.get_xticklabels()] == [f"fold {f}" for f in range(5)]
        expected = runs[runs["genome"] == 2].groupby("fold")[value].mean().to_numpy() * 100
        np.testing.assert_allclose(ax.lines[2].get_ydata(), expected)
    assert text_overlaps(fig) == []

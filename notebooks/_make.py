"""Writes notebooks/02-05 from the cell lists below (outputs-free, one
`parameters` cell each). Edit here, then run: python notebooks/_make.py"""
import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent


def notebook(cells):
    nb = new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    for i, (kind, text, *tags) in enumerate(cells):
        cell = new_markdown_cell(text.strip()) if kind == "md" else new_code_cell(text.strip())
        cell.id = f"cell-{i:02d}"  # stable ids: regenerating changes no line that was not edited
        if tags:
            cell.metadata["tags"] = list(tags)
        nb.cells.append(cell)
    return nb


NOTEBOOKS = {}

NOTEBOOKS["02_search.ipynb"] = [
    ("md", r"""
# 02 · Searching an architecture with DARTS

Instead of designing a network by hand, **DARTS** (differentiable architecture
search) lets gradient descent choose it. The network is built from *cells*. A
cell is a small graph: it reads the outputs of the two previous cells,
$c_{k-2}$ and $c_{k-1}$, computes a few intermediate nodes, and outputs their
combination. Every edge $(i \to j)$ of the graph may carry one of many
candidate operations $o \in \mathcal{O}$ (a convolution, a pooling, an LSTM,
an identity, *none*...).

**Continuous relaxation.** During the search every edge carries *all*
candidates at once, mixed by a softmax over architecture weights
$\alpha^{(i,j)}$:

$$\bar o^{(i,j)}(x) = \sum_{o \in \mathcal{O}} \frac{\exp \alpha_o^{(i,j)}}{\sum_{o'} \exp \alpha_{o'}^{(i,j)}}\; o(x), \qquad x^{(j)} = \sum_{i<j} \bar o^{(i,j)}\big(x^{(i)}\big).$$

This big network is the **supernet**. emoDARTS builds it from a CNN component
(normal and reduction cells over the MFCC map) followed by a sequential
component (SeqNN cells of LSTM/RNN ops, with or without attention, running
along the time axis), then a dense classifier. Both are searched **jointly**.

**Bilevel optimisation.** The ordinary weights $w$ and the architecture
weights $\alpha$ are trained on two different halves of the fold's *search*
set:

$$\min_\alpha \; \mathcal{L}_{val}\big(w^*(\alpha), \alpha\big) \quad \text{s.t.} \quad w^*(\alpha) = \arg\min_w \mathcal{L}_{train}(w, \alpha).$$

Each step updates $\alpha$ with $\nabla_\alpha \mathcal{L}_{val}$ (first
order; second order approximates $w^*$ by one virtual SGD step
$w - \xi \nabla_w \mathcal{L}_{train}$), then $w$ with $\nabla_w
\mathcal{L}_{train}$.

**Discretisation.** At the end, each node keeps its two strongest incoming
edges, each with its strongest operation other than *none*:
$o^{(i,j)*} = \arg\max_{o \neq none} \alpha_o^{(i,j)}$. That discrete
architecture is the **genome**; notebook 04 retrains it from scratch.

The test speakers of the fold are never used here.
"""),
    ("code", """
# Parameters (papermill overrides these)
corpus = "emodb"
data_root = None            # folder holding the corpora; None: $EMOKIT_DATA
feature_dir = "results/features"   # feature cache of notebook 01
feature_config = {}         # FeatureConfig fields; {}: the paper's 128 x 128 MFCC maps
normalization = "train"     # or "speaker": each speaker standardised with their own statistics
fold = 0
scope = "emodarts"          # emodarts, lstm, lstm_att, rnn, rnn_att
epochs = 20
batch_size = 64
cnn_cells = 4
cnn_nodes = 4
seq_cells = 2
seq_nodes = 3
channels = 8
stem_stride = 1             # 2: the stem halves the map, every cell costs a quarter (not in the paper)
seq_hidden = 64
partial_channels = 1        # PC-DARTS: 4 sends a quarter of the channels through the mixed ops
order = "first"             # first or second order DARTS
recompute_edges = False     # recompute CNN edges in backward: a third of the memory, ~26 % more time
precision = "fp32"          # or "bf16": autocast, half the activation memory
warmup_epochs = 0
seed = 0
device = "auto"             # auto: CUDA when available, else CPU
run_dir = "results/runs/emodb/emodarts/fold0-seed0/search"
resume = True
live = True                 # redraw the pictures in the notebook every epoch
""", "parameters"),
    ("code", """
%matplotlib inline
from IPython.display import Markdown, display

from emokit.live import LiveMonitor, alpha_slider
from emokit.pipeline import prepare_fold, search_fold
from emokit.search.budget import estimate_cost, format_cost
from emokit.search.loop import SearchConfig
from emokit.search.supernet import SearchSpace
from emokit.viz import alpha_evolution, load_alpha_history
"""),
    ("md", """
## The fold's data

Features come from the cache of notebook 01. The normalisation statistics are
fitted on the training speakers only; the search uses only the `search` role
(70 % of the training speakers' utterances). With `normalization="speaker"`
each speaker's maps are first standardised with that speaker's own statistics
(no labels involved; for a test speaker, from their unlabelled audio), which
removes much of the difference between voices.
"""),
    ("code", """
data = prepare_fold(corpus, fold, data_root, feature_config, feature_dir, normalization=normalization)
print(f"fold {fold}: test speakers {data.fold.test_speakers}")
print({role: len(y) for role, y in data.y.items()})
"""),
    ("md", """
## Will it fit?

The supernet holds every candidate op on every edge, so it is far bigger and
slower than the network it will find. Before searching, one step is measured
on the chosen device and the search time is projected.
"""),
    ("code", """
space = SearchSpace(scope=scope, cnn_cells=cnn_cells, cnn_nodes=cnn_nodes, seq_cells=seq_cells,
                    seq_nodes=seq_nodes, channels=channels, stem_stride=stem_stride, seq_hidden=seq_hidden,
                    partial_channels=partial_channels, n_classes=len(data.classes),
                    input_shape=data.x["search"].shape[2:])
config = SearchConfig(epochs=epochs, batch_size=batch_size, order=order, warmup_epochs=warmup_epochs,
                      seed=seed, device=device, recompute_edges=recompute_edges, precision=precision)
cost = estimate_cost(space, min(batch_size, len(data.y["search"]) // 2), device, order,
                     n_search=len(data.y["search"]), epochs=epochs, recompute_edges=recompute_edges,
                     precision=precision, repeats=2)
print(format_cost(cost))
"""),
    ("md", """
## Search

Every epoch the heatmaps show $\\mathrm{softmax}(\\alpha)$ per cell type
(rows: edges "node k ← input i", columns: candidate ops; the strongest op of
each edge is outlined), with the losses and accuracies of the weight half and
the alpha half. A checkpoint is written every epoch: re-running this cell
after an interruption resumes where it stopped.
"""),
    ("code", """
monitor = LiveMonitor(frames_dir=f"{run_dir}/frames", live=live)
result = search_fold(data, run_dir, space, config, feature_config,
                     meta={"corpus": corpus, "scope": scope}, resume=resume, callback=monitor)
print(result.genome)
"""),
    ("md", """
## Did the search collapse?

With many cells or nodes the SeqNN cells of emoDARTS tended to become all
`skip_connect` (paper, section VI-B): the identity is easy to learn early and
then starves the recurrent ops. emokit checks every cell of the genome.
"""),
    ("code", """
if result.warnings:
    for message in result.warnings:
        display(Markdown(f"**Collapse:** {message}. Try fewer SeqNN nodes/cells, `warmup_epochs > 0`, "
                         "or a scope without `skip_connect`."))
else:
    display(Markdown("No cell collapsed: every cell keeps at least one op with weights."))
"""),
    ("md", "## Scrub the alpha history\n\nMove the slider to replay how the architecture weights evolved."),
    ("code", """
history, ops = load_alpha_history(run_dir)
if live:  # a widget needs a live front end; under papermill (live=False) nbclient can wait forever on its messages
    display(alpha_slider(history, ops))
"""),
    ("code", """
alpha_evolution(history, ops, cell="seq" if "seq" in history else "normal")
"""),
]

NOTEBOOKS["03_genome.ipynb"] = [
    ("md", r"""
# 03 · Looking at the genome

A search ends with a **genome**: for every cell type (normal CNN cell,
reduction CNN cell, SeqNN cell) a small graph in which each intermediate node
keeps its two strongest incoming edges, each with one operation.

How to read a cell graph:

- `c_{k-2}` and `c_{k-1}` are the cell's inputs, the outputs of the two
  previous cells; `0, 1, ...` are intermediate nodes; `c_{k}` is the cell's
  output (CNN cells concatenate their nodes, SeqNN cells average them);
- each edge is an operation, coloured by family (convolution, pooling,
  recurrent, attention, identity); the number under the name is the softmax
  weight that op had on that edge at the end of the search.

The heatmaps show every weight the search learnt, the line plots how they
moved epoch by epoch, and -- across several folds or seeds -- how often each
op was chosen: a stable search picks similar ops every time.
"""),
    ("code", """
# Parameters (papermill overrides these)
run_dirs = ["results/runs/emodb/emodarts/fold0-seed0/search"]
""", "parameters"),
    ("code", """
%matplotlib inline
from pathlib import Path
from IPython.display import Image, display

from emokit.search.genotype import Genome, collapse_report
from emokit.viz import (cell_graph, genome_figure, load_alpha_history, op_frequency,
                        plot_op_frequency, save_search_figures)
"""),
    ("md", "## The genome of the first run, as text and as cell graphs"),
    ("code", """
first = run_dirs[0]
genome = Genome.load(first)
print(genome)
for message in collapse_report(genome):
    print("collapse:", message)
history, ops = load_alpha_history(first)
final = {cell: h[-1] for cell, h in history.items()}
genome_figure(genome, final, ops)
"""),
    ("code", """
cell_graph(genome, "seq", final.get("seq"), ops.get("seq")) if genome.seq else cell_graph(genome, "normal")
"""),
    ("md", "## Every picture of every run, saved next to the run (`figures/`)"),
    ("code", """
for run_dir in run_dirs:
    saved = save_search_figures(run_dir)
    print(run_dir, "->", ", ".join(sorted(p.name for p in saved.values())))
display(Image(filename=str(Path(first) / "figures" / "alpha_heatmaps.png")))
for cell in history:
    display(Image(filename=str(Path(first) / "figures" / f"alpha_evolution_{cell}.png")))
"""),
    ("md", "## How stable is the search? Op frequency across runs"),
    ("code", """
genomes = [Genome.load(d) for d in run_dirs]
frequency = op_frequency(genomes)
display(frequency)
fig = plot_op_frequency(frequency)
for run_dir in run_dirs:
    fig.savefig(Path(run_dir) / "figures" / "op_frequency.png", dpi=90, bbox_inches="tight")
fig
"""),
]


NOTEBOOKS["04_retrain.ipynb"] = [
    ("md", r"""
# 04 · Retraining from scratch and testing on unseen speakers

The supernet's weights were shared by every candidate op, so they are thrown
away: the genome becomes an ordinary network (**GenomeNet**: CNN cells with
reductions at 1/3 and 2/3 of the depth, a bridge that turns each time column
of the CNN output into one step of a sequence, SeqNN cells along time, a mean
over time and a dense classifier) and is trained from scratch. The paper's
hand-designed baselines (`cnn`, `cnn_lstm`, `cnn_lstm_att`) go through the
same loop for a fair comparison.

Training uses the fold's training speakers only: the `train` role (paper) or
`search` + `train`. The `val` role (held-out utterances of the training
speakers) picks the best epoch. The **test speakers are scored once**, at the
end, with those weights, reporting

- **UA** (unweighted accuracy): the mean of the per-class recalls, so every
  emotion counts the same however rare;
- **WA** (weighted accuracy): the share of utterances classified correctly.

**Augmentation** (off by default, not in the paper) fights over-fitting on
small corpora: EmoDB gives about 270 training utterances per fold. Each batch
can be rolled along time (`time_shift`: where speech sits in the 8 s window
says nothing about emotion), have bands blanked (`freq_masks`, `time_masks`:
SpecAugment) and be blended pairwise with its labels (`mixup`).
"""),
    ("code", """
# Parameters (papermill overrides these)
corpus = "emodb"
data_root = None
feature_dir = "results/features"
feature_config = {}
normalization = "train"     # "train" (paper) or "speaker" (as in the search of a genome)
fold = 0
model = "genome"            # genome, or a baseline: cnn, cnn_lstm, cnn_lstm_att
search_dir = "results/runs/emodb/emodarts/fold0-seed0/search"
genome_json = None          # or a genome.json instead of a search folder
epochs = 30
batch_size = 64
lr = 0.025
lr_min = 0.001
train_roles = ["train"]     # paper: the 30 % "train" split; ["search", "train"]: all non-val data
class_weights = False
patience = None             # early stopping on val UA (None: off)
optimizer = "sgd"           # sgd (paper) or adam
label_smoothing = 0.0
time_shift = 0              # augmentation: roll maps along time by up to this many columns
freq_masks = 0              # augmentation: SpecAugment bands per map (rows, then columns)
time_masks = 0
mask_width = 12
mixup = 0.0                 # augmentation: Beta(mixup, mixup) blending of pairs (0: off)
cnn_cells = 4
seq_cells = 2
channels = 16
stem_stride = 1             # must match the search's stem_stride for a genome
seq_hidden = 64
dropout = 0.3
drop_path = 0.0
seed = 0
device = "auto"
run_dir = "results/runs/emodb/emodarts/fold0-seed0/retrain"
resume = True
live = True
""", "parameters"),
    ("code", """
%matplotlib inline
from pathlib import Path
from IPython.display import Image, display

from emokit.live import LiveMonitor
from emokit.pipeline import prepare_fold, retrain_fold
from emokit.train import TrainConfig
"""),
    ("code", """
data = prepare_fold(corpus, fold, data_root, feature_config, feature_dir, normalization=normalization)
print(f"fold {fold}: test speakers {data.fold.test_speakers}; rows per role", {r: len(y) for r, y in data.y.items()})
config = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, lr_min=lr_min, train_roles=tuple(train_roles),
                     class_weights=class_weights, patience=patience, optimizer=optimizer,
                     label_smoothing=label_smoothing, time_shift=time_shift, freq_masks=freq_masks,
                     time_masks=time_masks, mask_width=mask_width, mixup=mixup, seed=seed, device=device)
architecture = dict(cnn_cells=cnn_cells, seq_cells=seq_cells, channels=channels, stem_stride=stem_stride,
                    seq_hidden=seq_hidden, dropout=dropout, drop_path=drop_path)
"""),
    ("md", "## Training, with live curves (loss and validation UA every epoch)"),
    ("code", """
monitor = LiveMonitor(live=live)
metrics = retrain_fold(data, run_dir, model, search_dir, genome_json, config, architecture, feature_config,
                       meta={"corpus": corpus, "fold": fold, "seed": seed}, resume=resume, callback=monitor)
"""),
    ("md", "## On the test speakers"),
    ("code", """
print(f"{model}: UA {metrics['ua']:.2%}  WA {metrics['wa']:.2%}  parameters {metrics['parameters']:,}  "
      f"(best epoch {metrics['best_epoch']} by validation UA)")
print("recall per class:", {k: (round(v, 3) if v is not None else None) for k, v in metrics["per_class_recall"].items()})
display(Image(filename=str(Path(run_dir) / "confusion.png")))
display(Image(filename=str(Path(run_dir) / "curves.png")))
"""),
]

NOTEBOOKS["05_compare.ipynb"] = [
    ("md", r"""
# 05 · Comparing the found architectures with the baselines

Every run of an experiment grid (corpus x search scope or baseline x fold x
seed) left a folder with its metrics. Here they become the paper's tables:
UA and WA as **mean ± standard deviation over the speaker-independent
folds** (and seeds), with parameter counts. A large standard deviation means
the result depends strongly on which speakers were held out -- look at the
per-fold numbers before trusting a mean.
"""),
    ("code", """
# Parameters (papermill overrides these)
results_dir = "results"
baselines = ["cnn", "cnn_lstm", "cnn_lstm_att"]
scopes = ["emodarts", "lstm", "lstm_att", "rnn", "rnn_att"]
""", "parameters"),
    ("code", """
%matplotlib inline
from pathlib import Path
from IPython.display import Markdown, display

from emokit.results import (collect, confusion_grid, export_table, per_fold_table, summary_table,
                            ua_per_fold_figure, ua_std_scatter)
from emokit.search.genotype import Genome
from emokit.viz import plot_op_frequency

results = collect(results_dir)
display(results[["corpus", "name", "fold", "seed", "status", "ua", "wa", "parameters"]])
failed = results[results["status"] != "done"]
if len(failed):
    display(Markdown(f"**{len(failed)} runs not finished** (see their run.json):"))
    display(failed[["corpus", "name", "fold", "seed", "status", "error"]])
"""),
    ("md", "## emoDARTS vs the baselines (the paper's Table 4) and the restricted scopes (Table 7)"),
    ("code", """
tables = Path(results_dir) / "tables"
main = summary_table(results, names=["emodarts"] + baselines)
display(main.drop(columns=["ua_mean", "ua_std"]))
export_table(main, tables / "table4_emodarts_vs_baselines")
scoped = summary_table(results, names=scopes)
display(scoped.drop(columns=["ua_mean", "ua_std"]))
export_table(scoped, tables / "table7_scopes")
print("written:", sorted(p.name for p in tables.iterdir()))
"""),
    ("md", "## UA per fold"),
    ("code", """
display(per_fold_table(results))
ua_per_fold_figure(results)
"""),
    ("md", "## Mean UA against its spread over folds (the paper's Figure 7; marker area: parameters)"),
    ("code", """
ua_std_scatter(summary_table(results))
"""),
    ("md", "## Confusion matrices, summed over folds"),
    ("code", """
confusion_grid(results)
"""),
    ("md", "## Which ops did the searches choose?"),
    ("code", """
genomes = [Genome.from_json(g) for g in results["genome"].dropna()]
plot_op_frequency(genomes) if genomes else Markdown("No search runs in this results folder.")
"""),
]


if __name__ == "__main__":
    names = sys.argv[1:] or list(NOTEBOOKS)
    for name in names:
        tmp = HERE / f".{name}.tmp"
        nbformat.write(notebook(NOTEBOOKS[name]), tmp)
        tmp.replace(HERE / name)  # atomic: a running papermill never reads half a notebook
        print("wrote", HERE / name)

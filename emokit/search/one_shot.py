"""One-shot scores: a genome run alone with a trained supernet's weights.

Weight sharing assumes that the supernet's weights say how good each genome
of the space would be if trained on its own. Two checks of that assumption:

- the **discretisation gap**: the loss of the whole supernet against that of
  its genome alone (each kept op at weight 1, every other op and edge out);
  a DARTS supernet learns a mixture of every op, which no genome is;
- the **ranking**: whether the genomes' one-shot losses order them as
  training each on its own does (:func:`emokit.stats.ranking_agreement`,
  ``studies/space_signal.py``).

Losses are measured on the search's alpha half (held-out utterances of the
training speakers; never the test speakers), with batch statistics and
without dropout or DARTS-' auxiliary skip, as the perturbation selection
does (:mod:`emokit.search.selection`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from emokit.resume import CHECKPOINT, load_checkpoint
from emokit.search.genotype import Genome, edge_list
from emokit.search.loop import SearchConfig, search_halves
from emokit.search.selection import final_network, supernet_loss
from emokit.search.supernet import SearchSpace, Supernet
from emokit.utils import read_json, resolve_device


def genome_weights(genome: Genome, space: SearchSpace) -> dict[str, torch.Tensor]:
    """Edge weights (:meth:`Supernet.forward`) that run ``genome`` alone: on
    each edge it keeps, its op at weight 1; every other op and edge at 0.

    Returns
    -------
    dict
        cell type -> Tensor (n_edges, n_ops) of 0 / 1, for the cell types of ``space``
    """
    weights = {}
    for t in space.cell_types():
        ops, edges = space.ops(t), edge_list(space.nodes(t))
        w = torch.zeros(len(edges), len(ops))
        for node, genes in enumerate(genome.cell(t)):
            for op, source in genes:
                w[edges.index((node, source)), ops.index(op)] = 1.0
        weights[t] = w
    return weights


@torch.no_grad()
def one_shot_loss(model: Supernet, genome: Genome, x: torch.Tensor, y: torch.Tensor, batch_size: int = 64) -> float:
    """The one-shot estimate of ``genome``: the mean cross-entropy on ``x``,
    ``y`` of the genome's network made of the trained supernet's weights (its
    ops at weight 1, summed as in the retrained network; batch statistics, no
    dropout, no auxiliary skip). Weight sharing is worth something only if a
    lower loss here goes with a higher accuracy of the genome trained on its
    own (:func:`emokit.stats.ranking_agreement`)."""
    weights = {t: w.to(x.device) for t, w in genome_weights(genome, model.space).items()}
    with final_network(model):
        return supernet_loss(model, x, y, batch_size, weights=weights)


def load_supernet(run_dir: str | Path, device="cpu") -> tuple[Supernet, SearchConfig]:
    """The supernet of a search folder as its last checkpoint left it, in
    eval mode, and the search's settings (e.g. to split the same alpha half
    again with :func:`~emokit.search.loop.search_halves`). Torch's RNG is left
    as it was."""
    run_dir = Path(run_dir)
    if not (run_dir / CHECKPOINT).exists():
        raise FileNotFoundError(f"{run_dir} has no {CHECKPOINT}; run a search there first (notebook 02)")
    saved = read_json(run_dir / "config.json")
    # config.json holds the search's identity beside its meta (the data's fingerprint since it was recorded).
    identity = {key: saved[key] for key in ("search_space", "search", "data") if key in saved}
    config = SearchConfig.from_dict(saved["search"])
    with torch.random.fork_rng():  # building draws weights, and a checkpoint restores the search's RNG state
        model = Supernet(SearchSpace.from_dict(saved["search_space"])).to(resolve_device(device))
        if config.channels_last:
            model = model.to(memory_format=torch.channels_last)
        load_checkpoint(run_dir / CHECKPOINT, identity, {"model": model}, map_location=model.classifier.weight.device)
    return model.eval(), config


def one_shot_losses(run_dir: str | Path, x: np.ndarray, y: np.ndarray, genomes: dict[str, Genome],
                    speakers: np.ndarray | None = None) -> pd.DataFrame:
    """The one-shot loss of each of ``genomes`` and of the whole supernet of
    the search in ``run_dir``, on the search's alpha half.

    Parameters
    ----------
    x : ndarray, shape (n, 1, rows, columns); the ``search`` maps the search ran on
    y : ndarray, shape (n,), their class indices
    genomes : label -> Genome
    speakers : ndarray, shape (n,), optional; each row's speaker, needed
        when the search split its halves by speaker

    Returns
    -------
    DataFrame with ``genome`` (label; ``"(supernet)"`` for the whole supernet) and ``loss`` (nats)
    """
    model, config = load_supernet(run_dir)
    _, alpha_rows = search_halves(y, config, speakers)
    device = model.classifier.weight.device
    x_a = torch.as_tensor(x[alpha_rows]).to(device).contiguous(memory_format=torch.channels_last)
    y_a = torch.as_tensor(np.asarray(y)[alpha_rows], dtype=torch.long).to(device)
    with final_network(model):
        rows = [{"genome": "(supernet)", "loss": supernet_loss(model, x_a, y_a, config.batch_size)}]
    rows += [{"genome": label, "loss": one_shot_loss(model, genome, x_a, y_a, config.batch_size)}
             for label, genome in genomes.items()]
    return pd.DataFrame(rows)

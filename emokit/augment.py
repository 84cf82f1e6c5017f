"""Data augmentation of feature-map batches while training (not in the paper).

EmoDB has about 270 training utterances per fold; a network of 70 K weights
memorises them in a few dozen epochs. Three cheap, standard augmentations of
the map ``(N, 1, rows, columns)`` (columns are time) counter that:

- :func:`time_shift` rolls each map along time (where the speech sits in the
  8 s window carries no emotion);
- :func:`mask_bands` blanks random bands of rows or columns (SpecAugment);
- :func:`mixup` blends pairs of maps and their labels.

Every function draws from an explicit ``torch.Generator`` (on the CPU), so a
batch's augmentation is fixed by the seed and the epoch, and a resumed run
sees the same batches as an uninterrupted one.
"""
from __future__ import annotations

import torch

__all__ = ["time_shift", "mask_bands", "mixup", "augment_batch"]


def time_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Roll each map along time by an integer drawn from ``[-max_shift, max_shift]``.

    Parameters
    ----------
    x : Tensor, shape (N, 1, rows, columns)
    max_shift : int, columns

    Returns
    -------
    Tensor, same shape, a new tensor
    """
    if max_shift <= 0:
        return x
    n, columns = x.shape[0], x.shape[-1]
    shifts = torch.randint(-max_shift, max_shift + 1, (n,), generator=generator)
    index = (torch.arange(columns) - shifts[:, None]) % columns  # (N, columns)
    index = index.to(x.device)[:, None, None, :].expand(-1, x.shape[1], x.shape[2], -1)
    return torch.gather(x, 3, index)


def mask_bands(x: torch.Tensor, n_masks: int, max_width: int, dim: int, generator: torch.Generator) -> torch.Tensor:
    """Set ``n_masks`` random bands of up to ``max_width`` rows (``dim=2``) or
    columns (``dim=3``) of each map to 0, the normalised mean.

    Returns
    -------
    Tensor, same shape as ``x``, a new tensor
    """
    if n_masks <= 0 or max_width <= 0:
        return x
    n, size = x.shape[0], x.shape[dim]
    width = torch.randint(0, max_width + 1, (n, n_masks), generator=generator)
    start = (torch.rand(n, n_masks, generator=generator) * (size - width + 1)).long()
    position = torch.arange(size)
    masked = ((position >= start[..., None]) & (position < (start + width)[..., None])).any(dim=1)  # (N, size)
    shape = [n, 1, 1, 1]
    shape[dim] = size
    return x.masked_fill(masked.view(shape).to(x.device), 0.0)


def mixup(x: torch.Tensor, alpha: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Blend each map with another of the batch: ``lam * x + (1 - lam) * x[perm]``.

    Returns
    -------
    mixed : Tensor, shape of ``x``
    perm : LongTensor (N,), the partner of each row (mix the labels with it)
    lam : float in (0, 1], drawn from Beta(alpha, alpha)
    """
    perm = torch.randperm(x.shape[0], generator=generator)
    if alpha <= 0:
        return x, perm, 1.0
    # Beta(a, a) from two Gamma draws, so that the explicit generator is used
    # (torch's Beta distribution takes none; torch is pinned, so the private
    # sampler stays put).
    g1, g2 = (torch._standard_gamma(torch.full((1,), float(alpha)), generator=generator) for _ in range(2))
    lam = float(g1 / (g1 + g2))
    lam = max(lam, 1.0 - lam)  # the first map dominates: its label stays the main one
    return lam * x + (1.0 - lam) * x[perm.to(x.device)], perm, lam


def augment_batch(x: torch.Tensor, config, generator: torch.Generator) -> torch.Tensor:
    """Time shift, then frequency and time masks, as set in ``config`` (a
    :class:`emokit.train.TrainConfig`). Mixup is applied by the caller, which
    also mixes the loss."""
    x = time_shift(x, config.time_shift, generator)
    x = mask_bands(x, config.freq_masks, config.mask_width, 2, generator)
    return mask_bands(x, config.time_masks, config.mask_width, 3, generator)

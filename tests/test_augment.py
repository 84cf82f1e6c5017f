"""emokit.augment: each augmentation does what it says, and only that."""
from __future__ import annotations

import pytest
import torch

from emokit.augment import augment_batch, mask_bands, mixup, time_shift
from emokit.train import TrainConfig


def batch(n=6, rows=8, columns=20):
    return torch.arange(n * rows * columns, dtype=torch.float32).view(n, 1, rows, columns) + 1.0


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_time_shift_rolls_each_map_along_time():
    x = batch()
    shifted = time_shift(x, 5, gen())
    assert shifted.shape == x.shape
    rolls = []
    for i in range(len(x)):
        matches = [s for s in range(-5, 6) if torch.equal(shifted[i], torch.roll(x[i], s, dims=-1))]
        assert len(matches) == 1  # a pure roll of its own map, by at most 5 columns
        rolls.append(matches[0])
    assert len(set(rolls)) > 1  # maps get different shifts
    assert torch.equal(time_shift(x, 5, gen()), shifted)  # same generator state: same batch
    assert time_shift(x, 0, gen()) is x


@pytest.mark.parametrize("dim", [2, 3])
def test_mask_bands_blanks_at_most_the_asked_bands(dim):
    x = batch()
    masked = mask_bands(x, n_masks=2, max_width=3, dim=dim, generator=gen(1))
    other = 3 if dim == 2 else 2
    zero = (masked == 0).all(dim=other).squeeze(1)  # (N, size): whole rows / columns set to 0
    assert zero.sum(dim=1).max() <= 6 and zero.any()
    keep = ~(masked == 0)
    assert torch.equal(masked[keep], x[keep])  # the rest is untouched
    assert not (x == 0).any()


def test_mixup_blends_pairs_with_the_returned_weight():
    x = batch()
    mixed, partner, lam = mixup(x, 0.4, gen(2))
    assert 0.5 <= lam <= 1.0
    torch.testing.assert_close(mixed, lam * x + (1 - lam) * x[partner])
    assert sorted(partner.tolist()) == list(range(len(x)))
    same, _, one = mixup(x, 0.0, gen(2))
    assert one == 1.0 and same is x


def test_augment_batch_follows_the_config():
    x = batch()
    assert torch.equal(augment_batch(x, TrainConfig(), gen()), x)  # defaults: no augmentation
    changed = augment_batch(x, TrainConfig(time_shift=4, freq_masks=1, time_masks=1, mask_width=2), gen())
    assert changed.shape == x.shape and not torch.equal(changed, x)


def test_unknown_optimizer_names_the_known_ones():
    with pytest.raises(ValueError, match="sgd, adam"):
        TrainConfig(optimizer="rmsprop")

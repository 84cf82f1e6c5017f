"""The DARTS architect: updates the alphas on held-out data.

First order: ``grad_alpha L_val(w, alpha)``.
With ``beta_decay > 0`` (beta-DARTS, Ye et al. 2022) the alpha loss gets
``beta_decay * mean_edges logsumexp(alpha_edge)``, whose gradient
``softmax(alpha)`` shrinks the alphas and keeps one op from running away early.
Second order (DARTS eq. 7-8): ``grad_alpha L_val(w', alpha) - xi *
(grad_alpha L_train(w+, alpha) - grad_alpha L_train(w-, alpha)) / (2 eps)``
with ``w' = w - xi * grad_w L_train(w, alpha)`` (one virtual SGD step) and
``w+- = w +- eps * grad_w' L_val(w', alpha)`` (a finite-difference
Hessian-vector product, ``eps = hessian_r / ||grad_w' L_val||``; DARTS'
``hessian_r`` is 0.01). ReLU and max-pool kinks make that difference an
average over a neighbourhood rather than the Hessian at ``w``; a smaller
``hessian_r`` approaches the exact hypergradient (tests/test_hypergradient.py).
"""
from __future__ import annotations

import contextlib
import copy
import functools
import os
import warnings

import torch
from torch import nn


@contextlib.contextmanager
def frozen(parameters):
    """Parameters that need no gradient for a while: autograd then stores
    nothing for them (e.g. no conv inputs while only alphas are differentiated)."""
    parameters = [p for p in parameters if p.requires_grad]
    for p in parameters:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in parameters:
            p.requires_grad_(True)


def precision_context(device: torch.device, precision: str):
    """``"fp32"``: nothing; ``"bf16"``: autocast to bfloat16 (half the stored
    activations; convolutions run in bf16, their weights stay fp32) where
    :func:`bf16_runs` on ``device``, else fp32 (:func:`resolve_precision` warns)."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; known: {', '.join(PRECISIONS)}")
    enabled = precision == "bf16" and bf16_runs(device)[0]
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)


BF16_SWITCH = "EMOKIT_BF16"  # "0" / "1": take the probe's answer as no / yes (tests; a CPU the probe misjudges)


def bf16_runs(device: torch.device) -> tuple[bool, str]:
    """Whether ``device`` runs the search's ops under bf16 autocast, and why not.

    On the CPU a tiny convolution and LSTM run forward and backward under
    autocast, once per process: oneDNN has bf16 LSTM kernels only on CPUs
    with native bf16 (AVX512-BF16, AMX) and raises "could not create a
    primitive descriptor" elsewhere (AVX2-only CPUs, most laptops). On CUDA:
    ``torch.cuda.is_bf16_supported()``. ``$EMOKIT_BF16`` (``0`` or ``1``)
    overrides the probe.
    """
    switch = os.environ.get(BF16_SWITCH, "")
    if switch in ("0", "1"):
        return switch == "1", f"{BF16_SWITCH}={switch}"
    return _bf16_probe(device.type)


@functools.cache
def _bf16_probe(device_type: str) -> tuple[bool, str]:
    if device_type == "cuda":
        ok = torch.cuda.is_bf16_supported()
        return ok, "" if ok else "this GPU has no bf16 support"
    if device_type != "cpu":
        return False, f"bf16 is not probed on {device_type!r}"
    try:
        with torch.random.fork_rng(devices=[]):  # the probe's weights must not move a seeded run's random state
            conv, lstm = nn.Conv2d(1, 2, 3), nn.LSTM(8, 4, batch_first=True)
            x = torch.randn(2, 1, 4, 8, requires_grad=True)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                # An fp32 input, as the SeqNN cells get: AVX2-only CPUs fail on this one.
                h, _ = lstm(x.flatten(1, 2))
                loss = h.float().sum() + conv(x).float().sum()
            loss.backward()
        return True, ""
    except RuntimeError as exc:
        return False, f"this CPU cannot run bf16 convolutions and LSTMs ({str(exc).split('.')[0]})"


def resolve_precision(precision: str, device: torch.device) -> str:
    """The precision a run on ``device`` uses for ``precision``: bf16 where
    :func:`bf16_runs`, else fp32 with a ``UserWarning`` naming the cause and the fix."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; known: {', '.join(PRECISIONS)}")
    if precision == "bf16":
        ok, why = bf16_runs(device)
        if not ok:
            warnings.warn(f"precision 'bf16': {why}; running in fp32 instead (twice the activation memory). "
                          "Set precision='fp32' to silence this, or search on a GPU or a CPU with native "
                          "bf16 (AVX512-BF16 or AMX)", stacklevel=2)
            return "fp32"
    return precision


PRECISIONS = ("fp32", "bf16")


def beta_decay_loss(alphas) -> torch.Tensor:
    """Mean over every edge of ``logsumexp(alpha_edge)`` (beta-DARTS' regulariser)."""
    return torch.cat([torch.logsumexp(a, dim=-1) for a in alphas]).mean()


def at_least_fp32(logits: torch.Tensor) -> torch.Tensor:
    """bf16 logits (autocast) as float32 for the loss; float64 stays float64."""
    return logits.to(torch.promote_types(logits.dtype, torch.float32))


def loss_fn(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return nn.functional.cross_entropy(at_least_fp32(model(x)), y)


class Architect:
    """Computes alpha gradients and steps the alpha optimiser.

    Parameters
    ----------
    model : Supernet
    optimizer : torch optimiser over ``model.arch_parameters()``
    order : "first" or "second"
    w_momentum, w_weight_decay : of the weight optimiser (for the virtual step)
    hessian_r : second order: the finite difference's step is ``hessian_r / ||v||``
    """

    def __init__(self, model, optimizer, order: str = "first", w_momentum: float = 0.9, w_weight_decay: float = 3e-4,
                 hessian_r: float = 0.01):
        if order not in ("first", "second"):
            raise ValueError(f"unknown DARTS order {order!r}; known: first, second")
        self.model, self.optimizer, self.order = model, optimizer, order
        self.w_momentum, self.w_weight_decay, self.hessian_r = w_momentum, w_weight_decay, hessian_r
        self.beta_decay = 0.0  # weight of beta_decay_loss, set per epoch by the search loop
        self._virtual = None  # second order: a copy of the model for w'

    def step(self, x_w, y_w, x_a, y_a, xi: float, w_optimizer=None) -> tuple[torch.Tensor, torch.Tensor]:
        """One alpha update; returns the alpha-half loss and logits (before the update)."""
        self.optimizer.zero_grad(set_to_none=True)
        alphas = self.model.arch_parameters()
        if self.order == "first":
            # Only alpha gradients: with the weights frozen, the forward pass
            # stores no conv inputs and the backward runs no weight kernels.
            with frozen(self.model.weight_parameters()):
                logits = at_least_fp32(self.model(x_a))
                loss = nn.functional.cross_entropy(logits, y_a)
                grads = torch.autograd.grad(loss + self._regulariser(alphas), alphas)
        else:
            loss, logits, grads = self._unrolled(x_w, y_w, x_a, y_a, xi, w_optimizer)
        for a, g in zip(alphas, grads):
            a.grad = g
        self.optimizer.step()
        return loss.detach(), logits.detach()

    # --- second order ------------------------------------------------------
    def _unrolled(self, x_w, y_w, x_a, y_a, xi, w_optimizer):
        if self._virtual is None:
            self._virtual = copy.deepcopy(self.model)
        virtual = self._virtual
        weights = self.model.weight_parameters()
        v_weights = virtual.weight_parameters()
        grads = torch.autograd.grad(loss_fn(self.model, x_w, y_w), weights, allow_unused=True)
        with torch.no_grad():
            for w, vw, g in zip(weights, v_weights, grads):
                g = torch.zeros_like(w) if g is None else g
                state = w_optimizer.state.get(w, {}) if w_optimizer is not None else {}
                momentum = state.get("momentum_buffer")
                m = momentum * self.w_momentum if momentum is not None else 0.0
                vw.copy_(w - xi * (m + g + self.w_weight_decay * w))
            for a, va in zip(self.model.arch_parameters(), virtual.arch_parameters()):
                va.copy_(a)
            for b, vb in zip(self.model.buffers(), virtual.buffers()):
                vb.copy_(b)
        logits = at_least_fp32(virtual(x_a))
        loss = nn.functional.cross_entropy(logits, y_a)
        v_alphas = virtual.arch_parameters()
        v_grads = torch.autograd.grad(loss + self._regulariser(v_alphas), v_alphas + v_weights, allow_unused=True)
        d_alpha = v_grads[: len(v_alphas)]
        d_weights = [torch.zeros_like(w) if g is None else g for w, g in zip(v_weights, v_grads[len(v_alphas):])]
        hessian = self._hessian_vector(d_weights, x_w, y_w)
        return loss, logits, [da - xi * h for da, h in zip(d_alpha, hessian)]

    def _regulariser(self, alphas) -> torch.Tensor | float:
        return self.beta_decay * beta_decay_loss(alphas) if self.beta_decay else 0.0

    def _hessian_vector(self, vector, x, y):
        """(dalpha L_train(w+) - dalpha L_train(w-)) / (2 eps), eps = hessian_r / ||vector||."""
        weights = self.model.weight_parameters()
        eps = self.hessian_r / torch.cat([v.flatten() for v in vector]).norm().clamp_min(1e-12)
        alphas = self.model.arch_parameters()

        def shift(scale):
            with torch.no_grad():
                for w, v in zip(weights, vector):
                    w.add_(v, alpha=float(scale * eps))

        shift(1)
        plus = torch.autograd.grad(loss_fn(self.model, x, y), alphas)
        shift(-2)
        minus = torch.autograd.grad(loss_fn(self.model, x, y), alphas)
        shift(1)
        return [(p - m) / (2 * eps) for p, m in zip(plus, minus)]


def search_step(model, w_optimizer, architect, x_w, y_w, x_a, y_a, lr: float, grad_clip: float,
                precision: str = "fp32"):
    """One DARTS step: alphas on the alpha half, then weights on the weight
    half. Returns (weight loss, weight logits, alpha loss, alpha logits);
    ``architect=None`` skips the alpha update (warm-up epochs).
    ``precision``: "fp32" or "bf16" (see :func:`precision_context`)."""
    a_loss = a_logits = None
    with precision_context(x_w.device, precision):
        if architect is not None:
            a_loss, a_logits = architect.step(x_w, y_w, x_a, y_a, xi=lr, w_optimizer=w_optimizer)
        w_optimizer.zero_grad(set_to_none=True)
        with frozen(model.arch_parameters()):  # the weight step needs no alpha gradients
            logits = model(x_w)
            loss = nn.functional.cross_entropy(logits.float(), y_w)
            loss.backward()
    nn.utils.clip_grad_norm_(model.weight_parameters(), grad_clip)
    w_optimizer.step()
    return loss.detach(), logits.detach().float(), a_loss, a_logits

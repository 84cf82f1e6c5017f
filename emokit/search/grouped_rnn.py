"""Many small tanh RNNs run as one batched recurrence.

A SeqNN edge of the emodarts scope holds six bidirectional tanh RNNs (1-4
layers each) that all read the same sequence. On the CPU PyTorch runs each
time step of each as separate autograd nodes: hundreds of tiny loops per
step. Here every layer depth of all the RNNs, both directions included, is
one recurrence over stacked "streams", with a hand-written backward pass
(backpropagation through time) that computes the recurrent-weight gradients
in one product after the loop. (LSTMs are left to PyTorch's oneDNN kernel,
which measured faster than a grouped LSTM.)

Same parameters, outputs and gradients as the modules run one by one (tested);
the modules stay the owners of their weights.

    outputs = grouped_recurrence(x, [rnn_1.rnn, rnn_2.rnn, ...])
"""
from __future__ import annotations

import torch
from torch import nn


class _Recurrence(torch.autograd.Function):
    """Time loop of ``S`` independent tanh streams.

    forward(inputs (T, S, N, H), w_hh (S, H, H)) -> hidden states (T, S, N, H)

    ``inputs`` are the input projections with both biases added. All
    streams run forward in time (callers flip backward directions).
    """

    @staticmethod
    def forward(ctx, inputs, w_hh):
        steps, streams, batch, hidden = inputs.shape
        w_t = w_hh.transpose(1, 2)
        out = inputs.new_empty(steps, streams, batch, hidden)
        h = inputs.new_zeros(streams, batch, hidden)
        for t in range(steps):
            h = torch.tanh(torch.baddbmm(inputs[t], h, w_t), out=out[t])
        ctx.save_for_backward(w_hh, out)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        w_hh, out = ctx.saved_tensors
        steps, streams, batch, hidden = out.shape
        grad_out = grad_out.contiguous()
        d_inputs = out.new_empty(steps, streams, batch, hidden)
        dh = out.new_zeros(streams, batch, hidden)
        slope = 1 - out * out  # tanh'
        for t in reversed(range(steps)):
            dh += grad_out[t]
            torch.mul(dh, slope[t], out=d_inputs[t])
            dh = torch.bmm(d_inputs[t], w_hh)
        d_w = None
        if ctx.needs_input_grad[1]:
            # sum_t d_pre_t^T h_{t-1}, one product over all steps
            h_prev = torch.cat([torch.zeros_like(out[:1]), out[:-1]])
            d_w = torch.bmm(d_inputs.permute(1, 3, 0, 2).reshape(streams, hidden, steps * batch),
                            h_prev.permute(1, 0, 2, 3).reshape(streams, steps * batch, hidden))
        return d_inputs, d_w


def _weights(rnn: nn.RNN, layer: int, suffix: str):
    w_ih = getattr(rnn, f"weight_ih_l{layer}{suffix}")
    w_hh = getattr(rnn, f"weight_hh_l{layer}{suffix}")
    bias = getattr(rnn, f"bias_ih_l{layer}{suffix}") + getattr(rnn, f"bias_hh_l{layer}{suffix}")
    return w_ih, w_hh, bias


def groupable(rnn: nn.Module) -> bool:
    """Can :func:`grouped_recurrence` run this module? (a bidirectional,
    batch-first tanh ``nn.RNN`` with biases and no dropout)."""
    return (isinstance(rnn, nn.RNN) and rnn.nonlinearity == "tanh" and rnn.bidirectional and rnn.batch_first
            and rnn.bias and rnn.dropout == 0)


def grouped_recurrence(x: torch.Tensor, rnns: list[nn.RNN]) -> list[torch.Tensor]:
    """Run several bidirectional tanh RNNs on the same input.

    Parameters
    ----------
    x : (N, T, D) input sequence, shared by all modules.
    rnns : tanh ``nn.RNN`` modules, each bidirectional and batch-first with
        the same hidden size ``H`` and input size ``D``; layer counts may differ.

    Returns
    -------
    list of (N, T, 2H) outputs, one per module, equal to ``rnn(x)[0]``.
    """
    if not rnns:
        return []
    sizes = (rnns[0].input_size, rnns[0].hidden_size)
    for rnn in rnns:
        if not groupable(rnn) or (rnn.input_size, rnn.hidden_size) != sizes:
            raise ValueError(f"cannot group {rnn}: need bidirectional batch-first tanh RNNs of one input size "
                             f"and hidden size")
    batch, steps, _ = x.shape
    outputs: list[torch.Tensor | None] = [None] * len(rnns)
    layer_out = None  # (A, N, T, 2H): the previous layer's output of the still-active modules
    active = list(range(len(rnns)))
    for layer in range(max(r.num_layers for r in rnns)):
        keep = [k for k, m in enumerate(active) if rnns[m].num_layers > layer]
        if layer_out is not None and len(keep) < len(active):
            layer_out = layer_out[keep]
        active = [active[k] for k in keep]
        n = len(active)
        params = [_weights(rnns[m], layer, suffix) for suffix in ("", "_reverse") for m in active]
        w_ih = torch.stack([p[0] for p in params])  # (S, H, D_in), streams: forward ones, then backward ones
        w_hh = torch.stack([p[1] for p in params])  # (S, H, H)
        bias = torch.stack([p[2] for p in params])  # (S, H)
        hidden = w_ih.shape[1]
        if layer_out is None:  # first layer: one product for every stream
            proj = x.reshape(batch * steps, -1) @ w_ih.reshape(-1, w_ih.shape[2]).t()
            proj = proj.view(batch, steps, 2 * n, hidden).permute(1, 2, 0, 3)  # (T, S, N, H)
        else:  # module m reads its own previous layer, in both directions
            seq = layer_out.reshape(n, batch * steps, -1)
            proj = torch.bmm(torch.cat([seq, seq]), w_ih.transpose(1, 2))
            proj = proj.view(2 * n, batch, steps, hidden).permute(2, 0, 1, 3)
        proj = proj + bias[None, :, None, :]
        proj = torch.cat([proj[:, :n], proj[:, n:].flip(0)], dim=1)  # backward streams run reversed time
        with torch.autocast(x.device.type, enabled=False):
            h = _Recurrence.apply(proj.float().contiguous(), w_hh.float())  # (T, S, N, H)
        h = torch.cat([h[:, :n], h[:, n:].flip(0)], dim=-1)  # (T, A, N, 2H)
        layer_out = h.permute(1, 2, 0, 3)  # (A, N, T, 2H)
        for k, m in enumerate(active):
            if rnns[m].num_layers == layer + 1:
                outputs[m] = layer_out[k]
    return outputs

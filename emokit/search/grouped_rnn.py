"""Many small recurrent layers run as one batched recurrence.

A SeqNN edge holds a dozen bidirectional LSTMs and RNNs (1-4 layers each)
that all read the same sequence. Run one by one, that is hundreds of tiny
time loops per step; plain ``nn.RNN`` even runs each time step as separate
autograd nodes on the CPU. Here every layer depth of all LSTMs (or all RNNs)
of a group, both directions included, is one recurrence over stacked
"streams", with a hand-written backward pass (backpropagation through time)
that computes the recurrent-weight gradients in one product after the loop.

Same parameters, outputs and gradients as the modules run one by one (tested);
the modules stay the owners of their weights.

    outputs = grouped_recurrence(x, [lstm_1.rnn, lstm_2.rnn, ...])
"""
from __future__ import annotations

import torch
from torch import nn


class _Recurrence(torch.autograd.Function):
    """Time loop of ``S`` independent streams.

    forward(inputs (T, S, N, G), w_hh (S, G, H), lstm) -> hidden states (T, S, N, H)

    ``inputs`` are the input projections with both biases added, ``G`` is
    ``4H`` (LSTM gates i, f, g, o, PyTorch's order) or ``H`` (tanh RNN).
    All streams run forward in time (callers flip backward directions).
    """

    @staticmethod
    def forward(ctx, inputs, w_hh, lstm):
        steps, streams, batch, _ = inputs.shape
        hidden = w_hh.shape[2]
        w_t = w_hh.transpose(1, 2)
        out = inputs.new_empty(steps, streams, batch, hidden)
        h = inputs.new_zeros(streams, batch, hidden)
        if lstm:
            acts = torch.empty_like(inputs)  # activated gates
            cells = inputs.new_empty(steps, streams, batch, hidden)
            g_slice = slice(2 * hidden, 3 * hidden)
            for t in range(steps):
                gates = torch.baddbmm(inputs[t], h, w_t)
                a = acts[t]
                torch.sigmoid(gates, out=a)
                torch.tanh(gates[..., g_slice], out=a[..., g_slice])
                i, f, g, o = a.chunk(4, dim=-1)
                c = cells[t]
                if t:
                    torch.mul(f, cells[t - 1], out=c)
                    c.addcmul_(i, g)
                else:
                    torch.mul(i, g, out=c)
                h = out[t]
                torch.tanh(c, out=h)
                h.mul_(o)
            ctx.save_for_backward(w_hh, out, acts, cells)
        else:
            for t in range(steps):
                h = torch.tanh(torch.baddbmm(inputs[t], h, w_t), out=out[t])
            ctx.save_for_backward(w_hh, out)
        ctx.lstm = lstm
        return out

    @staticmethod
    def backward(ctx, grad_out):
        if ctx.lstm:
            w_hh, out, acts, cells = ctx.saved_tensors
        else:
            w_hh, out = ctx.saved_tensors
        steps, streams, batch, hidden = out.shape
        grad_out = grad_out.contiguous()
        d_inputs = out.new_empty(steps, streams, batch, w_hh.shape[1])
        dh = out.new_zeros(streams, batch, hidden)
        if ctx.lstm:
            # Everything that does not depend on the carried gradients, for all steps at once.
            i, f, g, o = acts.chunk(4, dim=-1)
            tanh_c = cells.tanh()
            slope = acts * (1 - acts)  # sigmoid'
            slope[..., 2 * hidden:3 * hidden] = 1 - g * g  # tanh' for the g gate
            c_prev = torch.cat([torch.zeros_like(cells[:1]), cells[:-1]])
            # d pre-activation = [dc*g, dc*c_prev, dc*i, dh*tanh(c)] * slope
            factors = torch.cat([g, c_prev, i, tanh_c], dim=-1).mul_(slope).view(steps, streams, batch, 4, hidden)
            dc_from_h = o * (1 - tanh_c * tanh_c)
            d_view = d_inputs.view(steps, streams, batch, 4, hidden)
            dc = out.new_zeros(streams, batch, hidden)
            for t in reversed(range(steps)):
                dh += grad_out[t]
                dc.addcmul_(dh, dc_from_h[t])
                torch.mul(dc.unsqueeze(2), factors[t, :, :, :3], out=d_view[t, :, :, :3])
                torch.mul(dh, factors[t, :, :, 3], out=d_view[t, :, :, 3])
                dc.mul_(f[t])
                dh = torch.bmm(d_inputs[t], w_hh)
        else:
            slope = 1 - out * out
            for t in reversed(range(steps)):
                dh += grad_out[t]
                torch.mul(dh, slope[t], out=d_inputs[t])
                dh = torch.bmm(d_inputs[t], w_hh)
        d_w = None
        if ctx.needs_input_grad[1]:
            # sum_t d_gates_t^T h_{t-1}, one product over all steps
            h_prev = torch.cat([torch.zeros_like(out[:1]), out[:-1]])
            d_w = torch.bmm(d_inputs.permute(1, 3, 0, 2).reshape(streams, -1, steps * batch),
                            h_prev.permute(1, 0, 2, 3).reshape(streams, steps * batch, hidden))
        return d_inputs, d_w, None


def _weights(rnn: nn.RNNBase, layer: int, suffix: str):
    w_ih = getattr(rnn, f"weight_ih_l{layer}{suffix}")
    w_hh = getattr(rnn, f"weight_hh_l{layer}{suffix}")
    bias = getattr(rnn, f"bias_ih_l{layer}{suffix}") + getattr(rnn, f"bias_hh_l{layer}{suffix}")
    return w_ih, w_hh, bias


def groupable(rnn: nn.Module) -> bool:
    """Can :func:`grouped_recurrence` run this module? (bidirectional,
    batch-first ``nn.LSTM`` or tanh ``nn.RNN`` with biases, no dropout or projections)."""
    kind_ok = isinstance(rnn, nn.LSTM) or (isinstance(rnn, nn.RNN) and rnn.nonlinearity == "tanh")
    return (kind_ok and rnn.bidirectional and rnn.batch_first and rnn.bias and rnn.dropout == 0
            and getattr(rnn, "proj_size", 0) == 0)


def grouped_recurrence(x: torch.Tensor, rnns: list[nn.RNNBase]) -> list[torch.Tensor]:
    """Run several bidirectional recurrent modules of one kind on the same input.

    Parameters
    ----------
    x : (N, T, D) input sequence, shared by all modules.
    rnns : ``nn.LSTM`` modules, or tanh ``nn.RNN`` modules (not mixed), each
        bidirectional and batch-first with the same hidden size ``H`` and
        input size ``D``; layer counts may differ.

    Returns
    -------
    list of (N, T, 2H) outputs, one per module, equal to ``rnn(x)[0]``.
    """
    if not rnns:
        return []
    lstm = isinstance(rnns[0], nn.LSTM)
    sizes = (rnns[0].input_size, rnns[0].hidden_size)
    for rnn in rnns:
        if not groupable(rnn) or isinstance(rnn, nn.LSTM) != lstm or (rnn.input_size, rnn.hidden_size) != sizes:
            raise ValueError(f"cannot group {rnn}: need bidirectional batch-first modules of one kind, "
                             f"input size and hidden size")
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
        w_ih = torch.stack([p[0] for p in params])  # (S, G, D_in), streams: forward ones, then backward ones
        w_hh = torch.stack([p[1] for p in params])  # (S, G, H)
        bias = torch.stack([p[2] for p in params])  # (S, G)
        gates = w_ih.shape[1]
        if layer_out is None:  # first layer: one product for every stream
            proj = x.reshape(batch * steps, -1) @ w_ih.reshape(-1, w_ih.shape[2]).t()
            proj = proj.view(batch, steps, 2 * n, gates).permute(1, 2, 0, 3)  # (T, S, N, G)
        else:  # module m reads its own previous layer, in both directions
            seq = layer_out.reshape(n, batch * steps, -1)
            proj = torch.bmm(torch.cat([seq, seq]), w_ih.transpose(1, 2))
            proj = proj.view(2 * n, batch, steps, gates).permute(2, 0, 1, 3)
        proj = proj + bias[None, :, None, :]
        proj = torch.cat([proj[:, :n], proj[:, n:].flip(0)], dim=1)  # backward streams run reversed time
        with torch.autocast(x.device.type, enabled=False):
            h = _Recurrence.apply(proj.float().contiguous(), w_hh.float(), lstm)  # (T, S, N, H)
        h = torch.cat([h[:, :n], h[:, n:].flip(0)], dim=-1)  # (T, A, N, 2H)
        layer_out = h.permute(1, 2, 0, 3)  # (A, N, T, 2H)
        for k, m in enumerate(active):
            if rnns[m].num_layers == layer + 1:
                outputs[m] = layer_out[k]
    return outputs

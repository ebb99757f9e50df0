"""A ReLU MLP over many pixels, evaluated in cache-sized chunks with recomputation.

On a busy CPU the fitting loop is bound by memory traffic, not arithmetic: autograd writes
every hidden activation of every pixel to memory, reads it back for ReLU's backward, copies
the bias into each output. Here forward keeps only the output; backward recomputes the
hidden layers chunk by chunk (CHUNK pixels, a few hundred KB, stays in cache) and
accumulates the weight gradients, so each big tensor is touched about once per pass.

Layouts: ``cols`` = activations (channels, pixels), weights (out, in) (the synthesis);
``rows`` = activations (pixels, channels), weights (in, out) (the entropy model).
"""

from __future__ import annotations

import torch

CHUNK = 8192


def _layers(x, ws, bs, cols: bool):
    """Hidden activations (after ReLU) and the final output of one chunk."""
    hs = []
    last = len(ws) - 1
    for i, (w, b) in enumerate(zip(ws, bs)):
        x = torch.addmm(b[:, None], w, x) if cols else torch.addmm(b, x, w)
        if i < last:
            x = x.relu_()
            hs.append(x)
    return hs, x


class _MLP(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, cols: bool, chunk: int, *wb):
        ws, bs = wb[0::2], wb[1::2]
        n = x.shape[1] if cols else x.shape[0]
        d_out = ws[-1].shape[0] if cols else ws[-1].shape[1]
        out = x.new_empty((d_out, n) if cols else (n, d_out))
        with torch.no_grad():
            for a in range(0, n, chunk):
                xc = x[:, a:a + chunk] if cols else x[a:a + chunk]
                _, y = _layers(xc, ws, bs, cols)
                if cols:
                    out[:, a:a + chunk] = y
                else:
                    out[a:a + chunk] = y
        ctx.cols = cols
        ctx.chunk = chunk
        ctx.save_for_backward(x, *wb)
        return out

    @staticmethod
    def backward(ctx, g_out):
        x, *wb = ctx.saved_tensors
        cols, chunk = ctx.cols, ctx.chunk
        ws, bs = wb[0::2], wb[1::2]
        dws = [torch.zeros_like(w) for w in ws]
        dbs = [torch.zeros_like(b) for b in bs]
        dx = torch.empty_like(x) if ctx.needs_input_grad[0] else None
        n = x.shape[1] if cols else x.shape[0]
        with torch.no_grad():
            for a in range(0, n, chunk):
                xc = x[:, a:a + chunk] if cols else x[a:a + chunk]
                hs, _ = _layers(xc, ws, bs, cols)
                g = g_out[:, a:a + chunk] if cols else g_out[a:a + chunk]
                for i in range(len(ws) - 1, -1, -1):
                    inp = hs[i - 1] if i else xc
                    if cols:
                        dws[i].addmm_(g, inp.t())
                        dbs[i].add_(g.sum(1))
                    else:
                        dws[i].addmm_(inp.t(), g)
                        dbs[i].add_(g.sum(0))
                    if i:
                        g = ws[i].t() @ g if cols else g @ ws[i].t()
                        g = torch.ops.aten.threshold_backward(g, hs[i - 1], 0.0)
                    elif dx is not None:
                        if cols:
                            dx[:, a:a + chunk] = ws[0].t() @ g
                        else:
                            dx[a:a + chunk] = g @ ws[0].t()
        grads = [None, None]
        for dw, db in zip(dws, dbs):
            grads += [dw, db]
        return (dx, *grads)


def mlp(x: torch.Tensor, weights: list[torch.Tensor], biases: list[torch.Tensor],
        cols: bool) -> torch.Tensor:
    """ReLU between layers, none after the last (see module docstring for the layouts)."""
    wb = [t for pair in zip(weights, biases) for t in pair]
    chunk = x.numel() if x.is_cuda else CHUNK  # a GPU wants few big kernels instead
    return _MLP.apply(x, cols, chunk, *wb)

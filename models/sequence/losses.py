"""The losses of :class:`~models.sequence.model.SequenceModel`'s two heads."""

from __future__ import annotations

import torch
import torch.nn.functional as F


class _ChunkedSoftmaxCE(torch.autograd.Function):
    """Mean cross-entropy of ``softmax(h @ weight.T + bias)`` computed ``chunk`` rows at a time;
    the logits are recomputed in backward instead of stored (no N × V tensor is ever kept)."""

    @staticmethod
    def forward(ctx, h, weight, bias, target, chunk: int):  # type: ignore[override]
        N = h.shape[0]
        lse = torch.empty(N, dtype=h.dtype, device=h.device)
        total = h.new_zeros(())
        for s in range(0, N, chunk):
            logits = torch.addmm(bias, h[s : s + chunk], weight.t())  # (c, V)
            lse[s : s + chunk] = torch.logsumexp(logits, dim=1)
            picked = logits.gather(1, target[s : s + chunk, None])[:, 0]
            total += (lse[s : s + chunk] - picked).sum()
        ctx.save_for_backward(h, weight, bias, target, lse)
        ctx.chunk = chunk
        return total / max(1, N)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        h, weight, bias, target, lse = ctx.saved_tensors
        N, chunk = h.shape[0], ctx.chunk
        dh = torch.empty_like(h)
        dw = torch.zeros_like(weight)
        db = torch.zeros_like(bias)
        scale = grad / max(1, N)
        for s in range(0, N, chunk):
            hc = h[s : s + chunk]
            p = torch.addmm(bias, hc, weight.t()).sub_(lse[s : s + chunk, None]).exp_()
            p[torch.arange(len(hc), device=h.device), target[s : s + chunk]] -= 1.0
            p.mul_(scale)  # d loss / d logits of this chunk
            dh[s : s + chunk] = p @ weight
            dw.addmm_(p.t(), hc)
            db += p.sum(0)
        return dh, dw, db, None, None


def softmax_cross_entropy(
    h: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    target: torch.Tensor,
    chunk: int = 1024,
) -> torch.Tensor:
    """``F.cross_entropy(h @ weight.T + bias, target)`` over a large output layer.

    On CPU in float32 it runs in chunks of rows with the logits recomputed in backward: the
    full ``(N, V)`` logits of a batch (hundreds of MB for a 200-event window batch over a few
    thousand items) are never materialised, which is what made a CPU step slow. Elsewhere
    (CUDA, bf16) the plain fused kernel.

    Examples
    --------
    >>> _ = torch.manual_seed(0)
    >>> h, w, b = torch.randn(5, 4), torch.randn(7, 4), torch.randn(7)
    >>> t = torch.tensor([0, 3, 6, 2, 2])
    >>> plain = F.cross_entropy(h @ w.T + b, t)
    >>> bool(torch.allclose(softmax_cross_entropy(h, w, b, t, chunk=2), plain))
    True
    """
    if h.device.type != "cpu" or h.dtype != torch.float32 or weight.dtype != torch.float32:
        return F.cross_entropy(F.linear(h, weight, bias).float(), target)
    return _ChunkedSoftmaxCE.apply(h, weight, bias, target, chunk)


def category_loss(
    logits: torch.Tensor, target_categories: torch.Tensor, label_smoothing: float = 0.0
) -> torch.Tensor:
    """Soft cross-entropy, target uniform over each row's categories (``0`` = padding).

    ``logits`` ``(N, V)`` (column 0, padding, is ignored), ``target_categories`` ``(N, K)``.

    Examples
    --------
    >>> logits = torch.tensor([[0.0, 0.0, 0.0, 0.0]])
    >>> round(category_loss(logits, torch.tensor([[2, 3]])).item(), 4)  # log 3
    1.0986
    """
    if len(logits) == 0:
        return logits.sum() * 0.0
    V = logits.shape[-1]
    q = F.one_hot(target_categories, V)[..., 1:].float().sum(1)  # (N, V-1)
    q = q / q.sum(-1, keepdim=True).clamp(min=1.0)
    if label_smoothing:
        q = (1.0 - label_smoothing) * q + label_smoothing / q.shape[-1]
    logp = F.log_softmax(logits[:, 1:].float(), dim=-1)
    return -(q * logp).sum(-1).mean()

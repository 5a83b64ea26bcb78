"""The losses of :class:`~models.sequence.model.SequenceModel`'s two heads."""

from __future__ import annotations

import torch
import torch.nn.functional as F


class _ChunkedSoftmaxCE(torch.autograd.Function):
    """Mean cross-entropy of ``softmax(h @ weight.T + bias)`` computed ``chunk`` rows at a time;
    the logits are recomputed in backward instead of stored (no N × V tensor is ever kept).
    The products run in ``dtype`` (fp32 or bf16); log-sum-exp, softmax and the gradients'
    accumulation stay in fp32."""

    @staticmethod
    def forward(ctx, h, weight, bias, target, chunk: int, dtype: torch.dtype):  # type: ignore[override]
        N = h.shape[0]
        hd, w, b = h.to(dtype), weight.to(dtype), bias.to(dtype)
        lse = torch.empty(N, dtype=torch.float32, device=h.device)
        total = torch.zeros((), dtype=torch.float32, device=h.device)
        for s in range(0, N, chunk):
            logits = torch.addmm(b, hd[s : s + chunk], w.t()).float()  # (c, V)
            lse[s : s + chunk] = torch.logsumexp(logits, dim=1)
            picked = logits.gather(1, target[s : s + chunk, None])[:, 0]
            total += (lse[s : s + chunk] - picked).sum()
        ctx.save_for_backward(hd, w, b, target, lse)
        ctx.chunk = chunk
        ctx.dtypes = (h.dtype, weight.dtype, bias.dtype)
        return (total / max(1, N)).to(h.dtype)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        h, w, b, target, lse = ctx.saved_tensors
        N, chunk = h.shape[0], ctx.chunk
        dh = torch.empty(h.shape, dtype=torch.float32, device=h.device)
        dw = torch.zeros(w.shape, dtype=torch.float32, device=h.device)
        db = torch.zeros(b.shape, dtype=torch.float32, device=h.device)
        scale = grad.float() / max(1, N)
        for s in range(0, N, chunk):
            hc = h[s : s + chunk]
            p = torch.addmm(b, hc, w.t()).float().sub_(lse[s : s + chunk, None]).exp_()
            p[torch.arange(len(hc), device=h.device), target[s : s + chunk]] -= 1.0
            p.mul_(scale)  # d loss / d logits of this chunk
            db += p.sum(0)
            pc = p.to(h.dtype)
            dh[s : s + chunk] = pc @ w
            if h.dtype == torch.float32:
                dw.addmm_(pc.t(), hc)
            else:  # bf16 product, fp32 accumulation across chunks
                dw += pc.t() @ hc
        h_dtype, w_dtype, b_dtype = ctx.dtypes
        return dh.to(h_dtype), dw.to(w_dtype), db.to(b_dtype), None, None, None


def softmax_cross_entropy(
    h: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    target: torch.Tensor,
    chunk: int = 1024,
) -> torch.Tensor:
    """``F.cross_entropy(h @ weight.T + bias, target)`` over a large output layer.

    On the CPU it runs in chunks of rows with the logits recomputed in backward: the full
    ``(N, V)`` logits of a batch (hundreds of MB for a 200-event window batch over a few
    thousand items) are never materialised, which is what made a CPU step slow. Under the
    CPU's bf16 autocast the chunks' products run in bf16 (1.5x faster where the CPU has bf16
    units). Elsewhere (CUDA) the plain fused kernel.

    Examples
    --------
    >>> _ = torch.manual_seed(0)
    >>> h, w, b = torch.randn(5, 4), torch.randn(7, 4), torch.randn(7)
    >>> t = torch.tensor([0, 3, 6, 2, 2])
    >>> plain = F.cross_entropy(h @ w.T + b, t)
    >>> bool(torch.allclose(softmax_cross_entropy(h, w, b, t, chunk=2), plain))
    True
    >>> with torch.autocast("cpu", dtype=torch.bfloat16):
    ...     bf16 = softmax_cross_entropy(h, w, b, t, chunk=2)
    >>> bool(torch.allclose(bf16, plain, rtol=0.02))
    True
    """
    if h.device.type != "cpu":
        return F.cross_entropy(F.linear(h, weight, bias).float(), target)
    bf16 = torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
    with torch.autocast("cpu", enabled=False):  # the function casts what it multiplies itself
        return _ChunkedSoftmaxCE.apply(
            h, weight, bias, target, chunk, torch.bfloat16 if bf16 else torch.float32
        )


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

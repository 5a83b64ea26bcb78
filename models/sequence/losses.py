"""The losses of :class:`~models.sequence.model.SequenceModel`'s two heads."""

from __future__ import annotations

import torch
import torch.nn.functional as F


class _ChunkedSoftmaxCE(torch.autograd.Function):
    """Mean cross-entropy of ``softmax(h @ weight.T + bias)`` computed ``chunk`` rows at a time,
    with its gradients computed in the same pass (as Liger's fused linear cross-entropy does):
    each chunk's logits are made once, turned into ``softmax - onehot`` (one fused softmax, so
    left-out ``-inf`` logits never reach a slow ``exp``) and multiplied out, so no ``N x V``
    tensor is kept and backward only scales the stored gradients by the mean's ``1 / N``. Chunks
    small enough to stay in the CPU's cache make it memory-light as well as fast. The products
    run in ``dtype`` (fp32 or bf16); log-sum-exp, softmax and the gradients' sums stay in fp32."""

    @staticmethod
    def forward(ctx, h, weight, bias, target, chunk, dtype, need_grad, excluded):  # type: ignore[override]
        N = h.shape[0]
        hd, w, b = h.to(dtype), weight.to(dtype), bias.to(dtype)
        total = torch.zeros((), dtype=torch.float32, device=h.device)
        dh = dw = db = None
        if need_grad:
            dh = torch.empty(h.shape, dtype=torch.float32, device=h.device)
            dw = torch.zeros(w.shape, dtype=torch.float32, device=h.device)
            db = torch.zeros(b.shape, dtype=torch.float32, device=h.device)
        left_out = None if excluded is None else _seen_columns(*excluded, target)  # (N, P)
        for s in range(0, N, chunk):
            hc, tc = hd[s : s + chunk], target[s : s + chunk, None]
            logits = torch.addmm(b, hc, w.t()).float()  # (c, V)
            picked = logits.gather(1, tc)
            if left_out is not None:
                logits.scatter_(1, left_out[s : s + chunk], float("-inf"))
                logits.scatter_(1, tc, picked)  # the target is never left out
            p = torch.softmax(logits, 1)  # one fused pass; exact zeros where left out
            p_target = p.gather(1, tc)
            total += _row_losses(logits, picked, p_target).sum()
            if need_grad:
                p.scatter_(1, tc, p_target - 1.0)  # d loss / d logits, each row's
                db += p.sum(0)
                pc = p.to(dtype)
                if dtype == torch.float32:
                    torch.mm(pc, w, out=dh[s : s + chunk])
                    dw.addmm_(pc.t(), hc)
                else:  # bf16 products, fp32 accumulation across chunks
                    dh[s : s + chunk] = pc @ w
                    dw += pc.t() @ hc
        ctx.save_for_backward(dh, dw, db)
        ctx.dtypes = (h.dtype, weight.dtype, bias.dtype)
        ctx.inv = 1.0 / max(1, N)  # the mean's factor, applied to the gradients in backward
        return (total * ctx.inv).to(h.dtype)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        dh, dw, db = ctx.saved_tensors
        if dh is None:
            raise RuntimeError("softmax_cross_entropy ran without gradients and cannot backward")
        g = grad.float() * ctx.inv
        h_dtype, w_dtype, b_dtype = ctx.dtypes
        return (
            (dh * g).to(h_dtype),
            (dw * g).to(w_dtype),
            (db * g).to(b_dtype),
            None,
            None,
            None,
            None,
            None,
        )


def _row_losses(logits: torch.Tensor, picked: torch.Tensor, p_target: torch.Tensor) -> torch.Tensor:
    """Each row's ``-log softmax`` at its target, from the softmax's value there; where that
    value is too small for its log to be exact (a loss past ~69), from the row's logits."""
    loss = -p_target.log()
    tiny = p_target < 1e-30
    if bool(tiny.any()):
        rows = tiny[:, 0].nonzero()[:, 0]
        loss[rows] = torch.logsumexp(logits[rows], 1, keepdim=True) - picked[rows]
    return loss


def _chunk_rows(n_classes: int) -> int:
    """Rows per chunk: about 2^18 logits (1 MiB in fp32, a core's cache), 32 to 1,024 rows.

    >>> _chunk_rows(3_416), _chunk_rows(100), _chunk_rows(1_000_000)
    (76, 1024, 32)
    """
    return max(32, min(1024, (1 << 18) // max(1, n_classes)))


def softmax_cross_entropy(
    h: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    target: torch.Tensor,
    chunk: int | None = None,
    excluded: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """``F.cross_entropy(h @ weight.T + bias, target)`` over a large output layer.

    On the CPU it runs in chunks of rows (``chunk``; by default sized to the cache) with the
    gradients computed in the same pass: the full ``(N, V)`` logits of a batch (hundreds of MB
    for a 200-event window batch over a few thousand items) are never materialised, which is
    what made a CPU step slow, and each chunk's logits are made once, not again in backward.
    Under the CPU's bf16 autocast the chunks' products run in bf16 (1.5x faster where the CPU
    has bf16 units). Elsewhere (CUDA) the plain fused kernel.

    ``excluded = (seen, row, pos)`` leaves classes out of row ``i``'s softmax: the classes
    ``seen[row[i], j]`` for ``j <= pos[i]`` (``seen`` ``(B, T)``: the class at each position of
    each window, ``-1`` where there is none to leave out; the items a user had up to that
    position), never the row's target.

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
        return dense_cross_entropy(h, weight, bias, target, excluded)
    bf16 = torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
    with torch.autocast("cpu", enabled=False):  # the function casts what it multiplies itself
        need_grad = torch.is_grad_enabled() and (
            h.requires_grad or weight.requires_grad or bias.requires_grad
        )
        return _ChunkedSoftmaxCE.apply(
            h,
            weight,
            bias,
            target,
            chunk or _chunk_rows(weight.shape[0]),
            torch.bfloat16 if bf16 else torch.float32,
            need_grad,
            excluded,
        )


def dense_cross_entropy(
    h: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    target: torch.Tensor,
    excluded: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """:func:`softmax_cross_entropy` on an accelerator: the whole ``(N, V)`` logits and the
    fused kernel, with no value read back to the host (so ``torch.compile`` traces it whole).
    A row whose target is ``-1`` counts for nothing: the mean is over the others (0.0 when
    there are none), so a batch's rows can keep their shape whatever they hold.

    >>> h, w, b = torch.randn(3, 4), torch.randn(5, 4), torch.randn(5)
    >>> t = torch.tensor([2, -1, 4])
    >>> kept = F.cross_entropy(h[[0, 2]] @ w.T + b, t[[0, 2]])
    >>> bool(torch.allclose(dense_cross_entropy(h, w, b, t), kept))
    True
    >>> float(dense_cross_entropy(h, w, b, torch.tensor([-1, -1, -1])))
    0.0
    """
    safe = target.clamp(min=0)  # an index for the rows without a target; ignored below
    logits = F.linear(h, weight, bias).float()
    if excluded is not None:
        picked = logits.gather(1, safe[:, None])
        logits = logits.scatter(1, _seen_columns(*excluded, safe, True), float("-inf"))
        logits.scatter_(1, safe[:, None], picked)
    total = F.cross_entropy(logits, target, ignore_index=-1, reduction="sum")
    return total / (target >= 0).sum().clamp(min=1)


def _seen_columns(
    seen: torch.Tensor,
    row: torch.Tensor,
    pos: torch.Tensor,
    target: torch.Tensor,
    all_columns: bool = False,
) -> torch.Tensor:
    """``(N, P)``: the classes to leave out of each of ``N`` rows, those of its window up to its
    position; the row's ``target`` stands in for the rest (later positions, ``-1``), so the
    caller, which restores the target's logit, leaves out nothing else. A scatter of these is
    ``T`` writes a row where a comparison against every class was ``V``.

    ``P`` is the last position plus one, which the host reads from the device; with
    ``all_columns`` it is ``T`` (no read: under ``torch.compile`` that read breaks the graph,
    and recompiles as the positions change), the extra columns holding the target alike.

    >>> seen, row, pos = torch.tensor([[4, -1, 2, 4]]), torch.tensor([0, 0]), torch.tensor([1, 2])
    >>> _seen_columns(seen, row, pos, target=torch.tensor([7, 8])).tolist()
    [[4, 7, 7], [4, 8, 2]]
    >>> _seen_columns(seen, row, pos, torch.tensor([7, 8]), all_columns=True).tolist()
    [[4, 7, 7, 7], [4, 8, 2, 8]]
    """
    width = seen.shape[1] if all_columns else int(pos.max()) + 1
    cols = seen[row, :width]  # (N, P)
    later = torch.arange(width, device=seen.device)[None, :] > pos[:, None]
    return torch.where(later | (cols < 0), target[:, None], cols)


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

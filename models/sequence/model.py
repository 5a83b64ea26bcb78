"""SASRec-style causal Transformer over a user's last ``L`` events: only the model.

:class:`SequenceModel` (config: :class:`~models.sequence.config.SequenceConfig`) embeds each
position as item + mean(categories) + event type + log time-gap bucket + learned position, runs
causal pre-LayerNorm blocks (``F.scaled_dot_product_attention``, causal + key-padding masks), and
has two heads tied to the input embeddings: the next-category distribution (softmax over the
vocabulary incl. the OOV bucket) and the next item over the item table. ``objective`` picks what
is trained: ``category``, ``item`` (full-softmax cross-entropy over the catalog, or sampled
softmax with log-Q correction) or ``joint`` (both, weighted).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from models.sequence.config import OOV, PAD, SequenceConfig
from models.sequence.losses import category_loss, dense_cross_entropy, softmax_cross_entropy


def _tracing() -> bool:
    """Whether ``torch.compile`` is tracing the model: the shortcuts that read the batch's
    values (no padding, the rows with a target) give way to their general paths, which
    compute the same and keep the graph whole."""
    return torch.compiler.is_compiling()


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention (``F.scaled_dot_product_attention``).

    ``attn_mask`` ``None`` means no padding (SDPA's causal fast path); otherwise a boolean
    ``(B, 1, T, T)`` mask (True = may attend). ``last_only`` computes the last query only.

    Examples
    --------
    >>> _ = torch.manual_seed(0)
    >>> attn = CausalSelfAttention(SequenceConfig.tiny()).eval()
    >>> x = torch.randn(2, 5, 16)
    >>> full, last = attn(x, None), attn(x, None, last_only=True)
    >>> tuple(full.shape), tuple(last.shape), torch.allclose(full[:, -1:], last, atol=1e-6)
    ((2, 5, 16), (2, 1, 16), True)
    """

    def __init__(self, config: SequenceConfig) -> None:
        super().__init__()
        self.n_head = config.n_head
        self.n_embd = config.n_embd
        self.q = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.kv = nn.Linear(config.n_embd, 2 * config.n_embd, bias=config.bias)
        self.proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = config.dropout if config.attn_dropout is None else config.attn_dropout
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(
        self, x: torch.Tensor, attn_mask: torch.Tensor | None, last_only: bool = False
    ) -> torch.Tensor:
        B, T, C = x.shape  # batch, time, channels
        H = self.n_head
        Tq = 1 if last_only else T
        q = self.q(x[:, -1:] if last_only else x)  # (B, Tq, C): last query only when serving
        k, v = self.kv(x).split(C, dim=2)  # (B, T, C) each
        q = q.view(B, Tq, H, C // H).transpose(1, 2)  # (B, H, Tq, hs)
        k = k.view(B, T, H, C // H).transpose(1, 2)  # (B, H, T, hs)
        v = v.view(B, T, H, C // H).transpose(1, 2)
        p = self.dropout if self.training else 0.0
        if attn_mask is None:
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=not last_only)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=p)
        y = y.transpose(1, 2).contiguous().view(B, Tq, C)
        return self.resid_dropout(self.proj(y))


class Block(nn.Module):
    """Pre-LayerNorm Transformer block: ``x + attn(ln(x))``, then ``x + mlp(ln(x))``.

    Examples
    --------
    >>> _ = torch.manual_seed(0)
    >>> block = Block(SequenceConfig.tiny()).eval()
    >>> block(torch.randn(1, 4, 16), None).shape
    torch.Size([1, 4, 16])
    """

    def __init__(self, config: SequenceConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        hidden = config.ffn_mult * config.n_embd
        self.mlp = nn.Sequential(
            nn.Linear(config.n_embd, hidden, bias=config.bias),
            nn.ReLU() if config.activation == "relu" else nn.GELU(approximate="tanh"),
            nn.Linear(hidden, config.n_embd, bias=config.bias),
            nn.Dropout(config.dropout),
        )

    def forward(
        self, x: torch.Tensor, attn_mask: torch.Tensor | None, last_only: bool = False
    ) -> torch.Tensor:
        if last_only:
            x = x[:, -1:] + self.attn(self.ln_1(x), attn_mask, last_only=True)
        else:
            x = x + self.attn(self.ln_1(x), attn_mask)
        return x + self.mlp(self.ln_2(x))


class SequenceModel(nn.Module):
    """Causal Transformer: next-category distribution and next item for every position.

    ``forward(inputs, targets=None) -> (logits, loss)``: without targets ``logits`` is a dict
    with ``category`` ``(B, T, n_categories)`` and ``item`` ``(B, T, n_item_buckets)`` (index 0,
    padding, is ``-inf``) and ``loss`` is ``None``; with targets, ``logits`` has ``category``
    only (the item head runs just where there is a target, see :meth:`losses`) and ``loss`` =
    soft cross-entropy of the next event's categories (uniform over an item's categories) +
    ``item_loss_weight`` × cross-entropy of its item bucket (sampled softmax in training).
    With ``copy_head`` the category "logits" are log-probabilities of the mixture
    ``g·softmax(generative) + (1 - g)·copy`` (a softmax over them is the same distribution);
    the copy part is an attention over the events so far, spread over their categories, so a
    rare or OOV-bucket category the user just saw can be predicted again.
    A padded position never changes an output at a real position.
    :meth:`predict_last` runs only what the last real position needs (serving).

    Examples
    --------
    >>> _ = torch.manual_seed(0)
    >>> from models.sequence.encoding import SequenceEncoder, collate
    >>> enc = SequenceEncoder(["a", "b", "c"], n_item_buckets=64, max_len=8)
    >>> model = SequenceModel(SequenceConfig.tiny(n_item_buckets=64, max_len=8).with_vocab(5))
    >>> ev = [{"item_id": i, "categories": ["abc"[i % 3]], "event_type": "view", "ts": 10.0 * i}
    ...       for i in range(6)]
    >>> x, y = collate([enc.encode(ev, targets=True)])
    >>> logits, loss = model(x)
    >>> tuple(logits["category"].shape), tuple(logits["item"].shape), loss
    ((1, 6, 5), (1, 6, 64), None)
    >>> _, loss = model(x, y)
    >>> loss.item() > 0
    True
    >>> model.eval().predict_last(x)["category"].shape
    torch.Size([1, 5])
    """

    def __init__(self, config: SequenceConfig) -> None:
        super().__init__()
        self.config = config
        D = config.n_embd
        self.item_emb = nn.Embedding(config.n_item_buckets, D, padding_idx=PAD)
        self.cat_emb = nn.Embedding(config.n_categories, D, padding_idx=PAD)
        self.type_emb = nn.Embedding(config.n_event_types, D, padding_idx=PAD)
        self.gap_emb = nn.Embedding(config.n_gap_buckets, D, padding_idx=PAD)
        self.pos_emb = nn.Embedding(config.max_len, D)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(D)
        # heads are tied to the input embeddings (SASRec); a bias per output
        self.cat_bias = nn.Parameter(torch.zeros(config.n_categories))
        self.item_bias = nn.Parameter(torch.zeros(config.n_item_buckets))
        # log of the sampling distribution of sampled-softmax negatives (log-Q correction);
        # set by the trainer from item frequencies, uniform until then
        self.register_buffer("item_log_q", torch.zeros(config.n_item_buckets), persistent=False)
        if config.copy_head:  # pointer over the history: query = h_t, keys = last block's input
            self.ln_copy = nn.LayerNorm(D)
            self.copy_q = nn.Linear(D, D)
            self.copy_k = nn.Linear(D, D)
            self.copy_gate = nn.Linear(D, 1)
        self.apply(self._init_weights)
        for name, p in self.named_parameters():  # GPT-2 scaled init of residual projections
            if name.endswith("proj.weight") or name.endswith("mlp.2.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.padding_idx is not None:
                with torch.no_grad():
                    module.weight[module.padding_idx].zero_()

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # ------------------------------------------------------------------ pieces
    def _embed(self, inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        mask = inputs["mask"]  # (B, T) bool
        cats = inputs["categories"]  # (B, T, K)
        items = inputs["items"]
        if self.training and self.config.item_dropout > 0:  # most items are rare: regularise
            items = items * (
                torch.rand(items.shape, device=items.device) >= self.config.item_dropout
            )
        item_table = self.item_emb.weight
        if self.config.detach_item_input:
            item_table = item_table.detach()
        x = F.embedding(items, item_table, padding_idx=PAD)  # (B, T, D), a fresh tensor
        if self.config.side_features:
            if cats.shape[-1] == 1:  # one category per event: no mean to take
                x += self.cat_emb(cats[..., 0])
            else:
                n_cats = (cats != PAD).sum(-1, keepdim=True).clamp(min=1)  # (B, T, 1)
                x += self.cat_emb(cats).sum(-2) / n_cats  # padding rows of cat_emb are zero
            x += self.type_emb(inputs["event_types"])
            x += self.gap_emb(inputs["gaps"])
        # positions count real events from the first one: left/right padding agree
        if not _tracing() and mask.shape[1] <= self.config.max_len and bool(mask.all()):
            x += self.pos_emb.weight[: mask.shape[1]]
        else:
            pos = (mask.long().cumsum(1) - 1).clamp(min=0, max=self.config.max_len - 1)
            x += self.pos_emb(pos)
        return self.drop(x)  # (B, T, D)

    @staticmethod
    def _attn_mask(mask: torch.Tensor) -> torch.Tensor | None:
        """``None`` when nothing is padded (SDPA's causal fast path), else (B, 1, T, T) bool."""
        if not _tracing() and bool(mask.all()):
            return None
        T = mask.shape[1]
        causal = torch.ones(T, T, dtype=torch.bool, device=mask.device).tril()
        allowed = causal & mask[:, None, None, :]
        # a padded query sees only itself (no all-masked row, no NaN); real rows never see pads
        eye = torch.eye(T, dtype=torch.bool, device=mask.device)
        return allowed | (eye & ~mask[:, None, :, None])

    def heads(self, h: torch.Tensor, which: Iterable[str]) -> dict[str, torch.Tensor]:
        """Generative logits (tied output embeddings) of the named heads; padding = -inf."""
        out = {}
        for name in which:
            emb, bias = (
                (self.cat_emb, self.cat_bias)
                if name == "category"
                else (self.item_emb, self.item_bias)
            )
            logits = F.linear(h, emb.weight.to(h.dtype), bias.to(h.dtype))
            logits[..., PAD] = float("-inf")
            out[name] = logits
        return out

    def _trunk(
        self, inputs: Mapping[str, torch.Tensor], last_only: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(h, ctx)``: final hidden states ``(B, T or 1, D)`` and the last block's input
        ``(B, T, D)`` (the copy head's keys)."""
        x = self._embed(inputs)
        attn_mask = self._attn_mask(inputs["mask"])
        for block in self.blocks[:-1]:
            x = block(x, attn_mask)
        ctx = x
        if last_only:
            m = None if attn_mask is None else attn_mask[:, :, -1:, :]
            x = self.blocks[-1](x, m, last_only=True)
        else:
            x = self.blocks[-1](x, attn_mask)
        return self.ln_f(x), ctx

    def _copy(
        self, h: torch.Tensor, ctx: torch.Tensor, inputs: Mapping[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Copy attention ``(B, Tq, T)`` of each query over the events up to it, and the gate
        ``(B, Tq, 1)`` (weight of the generative softmax). ``Tq`` is ``T`` or 1 (last only)."""
        mask = inputs["mask"]  # (B, T)
        B, T = mask.shape
        Tq = h.shape[1]
        q = self.copy_q(h).float()  # (B, Tq, D)
        if Tq == 1 and isinstance(self.copy_k, nn.Linear):
            # one query: fold the key projection into it, q·(W c + b) = (Wᵀq)·c + const
            q_k = q @ self.copy_k.weight.float()  # (B, 1, D)
            scores = q_k @ self.ln_copy(ctx).float().transpose(1, 2) / math.sqrt(q.shape[-1])
        else:
            k = self.copy_k(self.ln_copy(ctx)).float()  # (B, T, D)
            scores = q @ k.transpose(1, 2) / math.sqrt(q.shape[-1])  # (B, Tq, T)
        if Tq == 1:
            if not bool(mask.all()):  # the last query may see every real event
                scores = scores.masked_fill(~mask[:, None, :], float("-inf"))
        else:
            causal = torch.ones(T, T, dtype=torch.bool, device=mask.device).tril()
            eye = torch.eye(T, dtype=torch.bool, device=mask.device)
            allowed = (causal & mask[:, None, :]) | (eye & ~mask[:, :, None])
            scores = scores.masked_fill(~allowed, float("-inf"))
        attn = torch.softmax(scores, dim=-1)
        gate = torch.sigmoid(self.copy_gate(h).float())
        return attn, gate

    def _category_probs(
        self, h: torch.Tensor, ctx: torch.Tensor, inputs: Mapping[str, torch.Tensor]
    ) -> torch.Tensor:
        """Next-category probabilities ``(B, Tq, V)`` of the copy-head mixture: gate ×
        softmax(generative logits) + (1 - gate) × copy attention spread over each attended
        event's categories (float32)."""
        gen = self.heads(h, ("category",))["category"]
        attn, gate = self._copy(h, ctx, inputs)  # (B, Tq, T), (B, Tq, 1)
        cats = inputs["categories"]  # (B, T, K)
        B, T, K = cats.shape
        Tq = h.shape[1]
        V = gen.shape[-1]
        if K == 1 and Tq == 1:  # serving, one category per event: a plain scatter
            copy = torch.zeros(B, V, device=h.device).scatter_add_(1, cats[..., 0], attn[:, 0])
            copy = copy[:, None]
        else:
            share = (cats != PAD).float() / (cats != PAD).sum(-1, keepdim=True).clamp(min=1)
            w = (attn[..., None] * share[:, None]).reshape(B, Tq, T * K)  # (B, Tq, T*K)
            idx = cats.reshape(B, 1, T * K).expand(B, Tq, T * K)
            copy = torch.zeros(B, Tq, V, device=h.device).scatter_add_(2, idx, w)
        p = gate * torch.softmax(gen.float(), dim=-1) + (1.0 - gate) * copy
        p[..., PAD] = 0.0
        return p

    def _category_logprobs(
        self, h: torch.Tensor, ctx: torch.Tensor, inputs: Mapping[str, torch.Tensor]
    ) -> torch.Tensor:
        """Next-category log-probabilities ``(B, Tq, V)`` (raw logits without a copy head)."""
        if not self.config.copy_head:
            return self.heads(h, ("category",))["category"]
        logp = torch.log(self._category_probs(h, ctx, inputs).clamp(min=1e-30))
        logp[..., PAD] = float("-inf")
        return logp

    # ------------------------------------------------------------------ API
    def forward(
        self,
        inputs: Mapping[str, torch.Tensor],
        targets: Mapping[str, torch.Tensor] | None = None,
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        h, ctx = self._trunk(inputs)  # (B, T, D)
        if targets is not None and self.config.objective == "item":  # no category head to run
            return {}, self._losses(h, None, targets, inputs)["total"]
        logits = {"category": self._category_logprobs(h, ctx, inputs)}
        if targets is None:
            logits.update(self.heads(h, ("item",)))
            return logits, None
        losses = self._losses(h, logits["category"], targets, inputs)
        return logits, losses["total"]

    def losses(
        self, inputs: Mapping[str, torch.Tensor], targets: Mapping[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """``category``, ``item`` and ``total`` losses, means over positions with a target.

        The item head runs only at those positions: a full softmax over the hash table in eval
        mode (or with ``item_negatives = 0``), a sampled softmax in training otherwise.
        """
        h, ctx = self._trunk(inputs)
        cat_logits = None
        if self.config.objective != "item":
            cat_logits = self._category_logprobs(h, ctx, inputs)
        return self._losses(h, cat_logits, targets, inputs)

    def _losses(
        self,
        h: torch.Tensor,
        cat_logits: torch.Tensor | None,
        targets: Mapping[str, torch.Tensor],
        inputs: Mapping[str, torch.Tensor],
    ) -> dict[str, torch.Tensor]:
        cfg = self.config
        if cat_logits is None and _tracing() and not (self.training and cfg.item_negatives > 0):
            return self._dense_item_losses(h, targets, inputs)
        t_cats = targets["categories"]  # (B, T, K)
        t_all = targets["items"]
        valid = (t_cats != PAD).any(-1) | (t_all != PAD)  # (B, T)
        if cat_logits is None:  # item objective: the category head is not trained
            cat = h.sum() * 0.0
        else:
            cat = category_loss(cat_logits[valid], t_cats[valid], cfg.label_smoothing)
        t_items = t_all[valid]  # (N,)
        has_item = t_items != PAD
        hv = h[valid][has_item]  # (N', D)
        t_items = t_items[has_item]
        w_cat, w_item = (0.0, 1.0) if cfg.objective == "item" else (1.0, cfg.item_loss_weight)
        if len(t_items) == 0 or w_item == 0:
            item = cat * 0.0
        elif self.training and cfg.item_negatives > 0:
            item = self._sampled_item_loss(hv, t_items)
        else:  # full softmax over the item rows (padding excluded)
            w, b = self.item_emb.weight[1:], self.item_bias[1:]
            excluded = (
                self._seen_before(inputs["items"], valid, has_item) if cfg.exclude_seen else None
            )
            item = softmax_cross_entropy(
                hv, w.to(hv.dtype), b.to(hv.dtype), t_items - 1, excluded=excluded
            )
        return {"category": cat, "item": item, "total": w_cat * cat + w_item * item}

    def _dense_item_losses(
        self,
        h: torch.Tensor,
        targets: Mapping[str, torch.Tensor],
        inputs: Mapping[str, torch.Tensor],
    ) -> dict[str, torch.Tensor]:
        """:meth:`_losses` of the item objective's full softmax, with every position's row
        kept (those without a target count for nothing) instead of the rows selected: shapes
        that do not depend on the batch's values, which ``torch.compile`` traces whole."""
        B, T = targets["items"].shape
        hv = h.reshape(B * T, -1)  # (B*T, D)
        t_items = targets["items"].reshape(-1) - 1  # item rows without padding; -1: no target
        excluded = None
        if self.config.exclude_seen:
            seen = self._item_columns(inputs["items"])  # (B, T)
            row = torch.arange(B, device=h.device).repeat_interleave(T)
            excluded = (seen, row, torch.arange(T, device=h.device).repeat(B))
        w, b = self.item_emb.weight[1:], self.item_bias[1:]
        item = dense_cross_entropy(hv, w.to(hv.dtype), b.to(hv.dtype), t_items, excluded)
        cat = h.sum() * 0.0  # the category head is not trained
        return {"category": cat, "item": item, "total": cat + item}

    @staticmethod
    def _item_columns(items: torch.Tensor) -> torch.Tensor:
        """Each input item's column of the item softmax (its rows without padding); -1 for
        padding and the OOV row, which are never left out."""
        return torch.where((items == PAD) | (items == OOV), -1, items - 1)

    def _seen_before(
        self, items: torch.Tensor, valid: torch.Tensor, has_item: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """What :func:`softmax_cross_entropy` leaves out of each target row's softmax: the
        items at or before the row's position in its window (never padding or the OOV row).
        Columns follow the item rows without padding."""
        seen = self._item_columns(items)  # (B, T)
        where = valid.nonzero()[has_item]  # (N', 2): window, position of each target row
        return seen, where[:, 0], where[:, 1]

    def _sampled_item_loss(self, h: torch.Tensor, t_items: torch.Tensor) -> torch.Tensor:
        """Sampled softmax with log-Q correction: the target against ``item_negatives``
        shared negatives drawn from ``exp(item_log_q)``; every logit minus ``log Q`` of its
        item, negatives equal to the row's target masked (accidental hits)."""
        n_neg = self.config.item_negatives
        q = self.item_log_q.float().exp()
        q[PAD] = 0.0
        negs = torch.multinomial(q, n_neg, replacement=True)  # (M,)
        log_q = (self.item_log_q - torch.logsumexp(self.item_log_q[1:], 0)).to(h.dtype)
        w, b = self.item_emb.weight.to(h.dtype), self.item_bias.to(h.dtype)
        pos = (h * w[t_items]).sum(-1) + b[t_items] - log_q[t_items]  # (N,)
        neg = F.linear(h, w[negs], b[negs] - log_q[negs])  # (N, M)
        neg = neg.masked_fill(negs[None, :] == t_items[:, None], float("-inf"))
        logits = torch.cat([pos[:, None], neg], dim=1).float()
        return F.cross_entropy(logits, torch.zeros(len(h), dtype=torch.long, device=h.device))

    def predict_last(
        self,
        inputs: Mapping[str, torch.Tensor],
        heads: Iterable[str] = ("category",),
        copy_weights: bool = False,
        probs: bool = False,
    ) -> dict[str, torch.Tensor]:
        """Logits ``(B, V)`` at each row's LAST position; the last block runs only there.

        Rows must be left-padded (or unpadded): the tensor's last position is the last event.
        ``probs``: the category head as probabilities instead (no log/softmax round trip).
        With ``copy_weights`` (and a copy head) also ``copy`` ``(B, T)``: the probability mass
        the copy head put on each event (split evenly over its categories).
        With ``config.exclude_seen`` the item logits of the row's own items are ``-inf``.
        """
        h, ctx = self._trunk(inputs, last_only=True)  # (B, 1, D), (B, T, D)
        out = {}
        if "category" in heads:
            if probs and self.config.copy_head:
                out["category"] = self._category_probs(h, ctx, inputs)[:, 0]
            elif probs:
                cat = self.heads(h[:, 0], ("category",))["category"]
                out["category"] = torch.softmax(cat.float(), dim=-1)
            else:
                out["category"] = self._category_logprobs(h, ctx, inputs)[:, 0]
        if copy_weights and self.config.copy_head:
            attn, gate = self._copy(h, ctx, inputs)
            out["copy"] = ((1.0 - gate) * attn)[:, 0]
        if "item" in heads:
            logits = self.heads(h[:, 0], ("item",))["item"]
            if self.config.exclude_seen:  # the next item is one the user has not had yet
                seen = inputs["items"].masked_fill(inputs["items"] == OOV, PAD)
                logits = logits.scatter(1, seen, float("-inf"))
            out["item"] = logits
        return out

"""Micro-batch scoring with the sequence model: device, threads, int8/bf16, hot reload.

:class:`SequenceScorer` is what the stream's executor thread calls with a micro-batch of dirty
users' histories; :func:`evaluation_predictor` wraps it in the offline harness's predictor
protocol (``models.evaluation.evaluate``).
"""

from __future__ import annotations

import dataclasses
import os
import threading
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from models.schema import OTHER
from models.sequence.checkpoint import load_checkpoint
from models.sequence.config import OOV, PAD
from models.sequence.device import autocast, pick_device
from models.sequence.encoding import EncodedEvent, EncodedSequence, SequenceEncoder, collate
from models.sequence.model import SequenceModel


def quantize_int8(model: nn.Module) -> nn.Module:
    """Dynamic int8 quantisation of the ``nn.Linear`` layers (CPU inference only)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization deprecation notices
        return torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)


def item_category_probs(item_logits: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Next-category distribution implied by the item head: ``softmax(item_logits) @ weights``.

    ``item_logits`` ``(N, n_items)`` (padding column ``-inf``), ``weights`` the sparse
    ``(n_items, n_categories)`` item → category matrix of
    :meth:`~models.sequence.SequenceEncoder.item_category_weights` (rows sum to 1), so each
    output row sums to 1.

    Examples
    --------
    >>> from models.sequence import SequenceEncoder
    >>> enc = SequenceEncoder(["a", "b"], 0, 4, items=["x", "y"], item_categories=[[2], [3]])
    >>> logits = torch.tensor([[float("-inf"), -50.0, 0.0, 0.0]])
    >>> item_category_probs(logits, enc.item_category_weights()).round(decimals=3).tolist()
    [[0.0, 0.0, 0.5, 0.5]]
    """
    p = torch.softmax(item_logits.float(), dim=-1)  # (N, n_items)
    idx, vals = weights._indices(), weights._values()  # (2, nnz), (nnz,): duplicates add up
    out = torch.zeros(len(p), weights.shape[1], device=p.device, dtype=p.dtype)
    return out.index_add_(1, idx[1], p[:, idx[0]] * vals)  # (N, V)


@dataclass(frozen=True)
class _Loaded:
    """One immutable generation of the scorer's state: swapped as a whole on reload."""

    model: SequenceModel
    encoder: SequenceEncoder
    version: str
    prior: np.ndarray | None  # category prior over the model vocabulary (empty histories)
    extra: Mapping[str, Any]
    file_key: tuple[int, int] | None  # (mtime_ns, size) of the checkpoint it came from
    item_weights: torch.Tensor | None = None  # sparse item -> category matrix (item vocab)
    mix: float = 0.0  # weight of the item-implied category distribution


class SequenceScorer:
    """Next-category distributions for micro-batches of user histories.

    Parameters
    ----------
    model, encoder
        A :class:`~models.sequence.SequenceModel` and its :class:`~models.sequence.SequenceEncoder`.
    device
        Where to run; default ``cuda`` if available, else ``cpu``.
    quantize
        Dynamic int8 quantisation of the Linear layers (CPU only; ignored on GPU).
    top_k
        :meth:`score` keeps the ``top_k`` most probable categories plus an ``_other`` mass.
    batch_size
        Largest micro-batch run at once (longer inputs are split, sorted by length).
    num_threads
        CPU threads for torch (process-wide); default ``os.cpu_count()``.
    version, path, prior, extra
        Usually set by :meth:`from_checkpoint`; ``path`` enables :meth:`reload_if_changed`.

    Examples
    --------
    >>> import torch
    >>> from models.sequence import SequenceConfig, SequenceEncoder, SequenceModel
    >>> _ = torch.manual_seed(0)
    >>> enc = SequenceEncoder(["a", "b", "c"], n_item_buckets=64, max_len=8)
    >>> model = SequenceModel(SequenceConfig.tiny(n_item_buckets=64, max_len=8).with_vocab(5))
    >>> scorer = SequenceScorer(model, enc, device="cpu", top_k=2, num_threads=1)
    >>> hist = [{"item_id": 1, "categories": ["a"], "event_type": "view", "ts": 0.0}]
    >>> dist = scorer.score([hist, []])
    >>> "_other" in dist[0], round(sum(dist[0].values()), 6), len(dist[0]), len(dist[1])
    (True, 1.0, 3, 3)
    >>> scorer.predict_proba([hist], ["a", "b", "c", "zz"]).shape
    (1, 4)
    """

    def __init__(
        self,
        model: SequenceModel,
        encoder: SequenceEncoder,
        *,
        device: torch.device | str | None = None,
        quantize: bool = False,
        top_k: int = 20,
        batch_size: int = 256,
        num_threads: int | None = None,
        version: str = "unversioned",
        path: str | Path | None = None,
        prior: Sequence[float] | np.ndarray | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        self.device = pick_device(device)
        self.quantize = bool(quantize) and self.device.type == "cpu"
        self.top_k = int(top_k)
        self.batch_size = int(batch_size)
        self.path = None if path is None else Path(path)
        if self.device.type == "cpu":
            torch.set_num_threads(int(num_threads or os.cpu_count() or 1))
        self._lock = threading.Lock()  # one reload at a time; scoring never waits for it
        self._item_buckets: dict[tuple, torch.Tensor] = {}
        self._vocab_maps: dict[tuple, tuple[np.ndarray, np.ndarray, dict[str, int]]] = {}
        self._state = self._prepare(model, encoder, version, prior, extra or {}, None)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_checkpoint(cls, path: str | Path, **kwargs: Any) -> SequenceScorer:
        """A scorer over the checkpoint at ``path`` (keyword arguments as the constructor's)."""
        path = Path(path)
        key = _file_key(path)
        ck = load_checkpoint(path, map_location="cpu")
        scorer = cls(
            ck.model,
            ck.encoder,
            version=ck.version,
            path=path,
            prior=ck.extra.get("category_prior"),
            extra=ck.extra,
            **kwargs,
        )
        scorer._state = _replace_key(scorer._state, key)
        return scorer

    def _prepare(
        self,
        model: SequenceModel,
        encoder: SequenceEncoder,
        version: str,
        prior: Sequence[float] | np.ndarray | None,
        extra: Mapping[str, Any],
        file_key: tuple[int, int] | None,
    ) -> _Loaded:
        model = model.to(self.device).eval()
        if self.quantize:
            model = quantize_int8(model)
        p = None
        if prior is not None:
            p = np.asarray(prior, dtype=np.float64)
            p = p / p.sum() if p.sum() > 0 else None
        weights, mix = None, 0.0
        if not encoder.hashed_items:
            item_objective = model.config.objective == "item"
            mix = float(extra.get("item_category_mix", 1.0 if item_objective else 0.0))
            if mix > 0:
                oov_row = p if p is not None and len(p) == encoder.n_categories else None
                weights = encoder.item_category_weights(oov_row).to(self.device)
        if weights is None:
            mix = 0.0
        return _Loaded(model, encoder, version, p, dict(extra), file_key, weights, mix)

    # ------------------------------------------------------------------ state
    @property
    def version(self) -> str:
        """Version string of the checkpoint in use (safe to read from any thread)."""
        return self._state.version

    @property
    def encoder(self) -> SequenceEncoder:
        return self._state.encoder

    @property
    def model(self) -> SequenceModel:
        return self._state.model

    @property
    def extra(self) -> Mapping[str, Any]:
        """The checkpoint's ``extra`` dict (e.g. ``fusion`` parameters, ``category_prior``)."""
        return self._state.extra

    @property
    def vocab(self) -> list[str]:
        """Column names of :meth:`score_array` (``<pad>``, ``<oov>``, then the categories)."""
        return self._state.encoder.vocab

    def reload_if_changed(self) -> bool:
        """Reload the checkpoint file if its mtime/size changed and its version differs.

        The new model is built aside and swapped in with one assignment, so a concurrent
        :meth:`score` finishes on the old one. Returns True when a new version was swapped in.
        A file that cannot be loaded raises, and the current model stays. Pre-encoded
        histories must be re-encoded when ``encoder.fingerprint`` changed.
        """
        if self.path is None:
            return False
        with self._lock:
            try:
                key = _file_key(self.path)
            except FileNotFoundError:
                return False
            if key == self._state.file_key:
                return False
            ck = load_checkpoint(self.path, map_location="cpu")
            if ck.version == self._state.version:
                self._state = _replace_key(self._state, key)
                return False
            new = self._prepare(
                ck.model, ck.encoder, ck.version, ck.extra.get("category_prior"), ck.extra, key
            )
            self._state = new
            return True

    # ------------------------------------------------------------------ scoring
    def encode(self, history: Sequence[Mapping[str, Any] | EncodedEvent]) -> EncodedSequence:
        """A history (event dicts or pre-encoded events, oldest first) → encoded last L."""
        return self._state.encoder.encode(history)

    def score_array(
        self, histories: Sequence[Sequence[Mapping[str, Any] | EncodedEvent]]
    ) -> np.ndarray:
        """Next-category probabilities ``(N, len(vocab))`` over the model vocabulary.

        Column 0 (padding) is 0; column 1 is the OOV bucket. An empty history gets the
        checkpoint's category prior (uniform without one).
        """
        return self._score(histories, named=False)[0]

    def _score(
        self, histories: Sequence[Sequence[Mapping[str, Any] | EncodedEvent]], named: bool
    ) -> tuple[np.ndarray, list[dict[str, float]]]:
        state = self._state  # one generation for the whole call
        enc = state.encoder
        V = enc.n_categories
        out = np.zeros((len(histories), V), dtype=np.float64)
        extras: list[dict[str, float]] = [{} for _ in histories]
        encoded = [enc.encode(h) if len(h) else None for h in histories]
        rows = [i for i, s in enumerate(encoded) if s is not None]
        empty = [i for i, s in enumerate(encoded) if s is None]
        if empty:
            if state.prior is not None and len(state.prior) == V:
                out[empty] = state.prior
            else:
                out[empty, 1:] = 1.0 / (V - 1)
        rows.sort(key=lambda i: len(encoded[i]))  # similar lengths together: less padding
        for start in range(0, len(rows), self.batch_size):
            chunk = rows[start : start + self.batch_size]
            seqs = [encoded[i] for i in chunk]
            want_copy = named and any(any(o) for s in seqs for o in s.oov)
            probs, copy = self._run(state, seqs, want_copy)
            out[chunk] = probs
            if copy is not None:
                T = copy.shape[1]
                for r, (i, s) in enumerate(zip(chunk, seqs, strict=True)):
                    names = extras[i]
                    offset = T - len(s)  # left padding
                    for j, oov in enumerate(s.oov):
                        if not oov:
                            continue
                        share = float(copy[r, offset + j]) / len(s.categories[j])
                        for name in oov:
                            names[name] = names.get(name, 0.0) + share
                    moved = sum(names.values())
                    out[i, OOV] = max(0.0, out[i, OOV] - moved)
        return out, extras

    def _run(
        self, state: _Loaded, seqs: list, copy_weights: bool = False
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Category probabilities: the category head (with its copy weights), mixed with the
        item head's implied distribution by the checkpoint's ``item_category_mix``."""
        inputs, _ = collate(seqs, device=self.device, pad_side="left")
        mix = state.mix
        heads = ("item",) if mix >= 1.0 else ("category", "item") if mix > 0 else ("category",)
        with torch.inference_mode(), autocast(self.device):
            out = state.model.predict_last(
                inputs, heads, copy_weights=copy_weights and mix < 1.0, probs=True
            )
            if mix > 0:
                implied = item_category_probs(out["item"], state.item_weights)
                probs = implied if mix >= 1.0 else (1 - mix) * out["category"].float()
                if mix < 1.0:
                    probs = probs + mix * implied
            else:
                probs = out["category"].float()
        copy = out.get("copy")
        if copy is not None and mix > 0:
            copy = copy * (1 - mix)
        return (
            probs.cpu().numpy().astype(np.float64),
            None if copy is None else copy.float().cpu().numpy(),
        )

    def score(
        self, histories: Sequence[Sequence[Mapping[str, Any] | EncodedEvent]]
    ) -> list[dict[str, float]]:
        """Per history: the ``top_k`` categories → probability, plus ``_other`` (sums to 1).

        Out-of-vocabulary categories the copy head points at compete by name; the rest of the
        OOV bucket's mass goes to ``_other``.
        """
        probs, extras = self._score(histories, named=True)
        vocab = self._state.encoder.vocab
        out: list[dict[str, float]] = []
        if len(probs) == 0:
            return out
        k = min(self.top_k, probs.shape[1] - 2)
        top_p, top = torch.topk(torch.from_numpy(probs[:, 2:]), k, dim=1)  # 5x argpartition
        for idx, ps, extra in zip(top.tolist(), top_p.tolist(), extras, strict=True):
            pairs = [(vocab[j + 2], p) for j, p in zip(idx, ps, strict=True)]
            if extra:
                pairs += list(extra.items())
            pairs.sort(key=lambda kv: (-kv[1], kv[0]))
            dist = dict(pairs[: self.top_k])
            dist[OTHER] = max(0.0, 1.0 - sum(dist.values()))
            out.append(dist)
        return out

    def item_scores(
        self,
        histories: Sequence[Sequence[Mapping[str, Any] | EncodedEvent]],
        items: Sequence[Any],
    ) -> np.ndarray:
        """Next-item logits ``(N, len(items))`` from the item head. Items outside the item
        vocabulary share the OOV row's logit (hashed items: items sharing a bucket tie). An
        empty history gets the item biases."""
        state = self._state
        enc = state.encoder
        key = ("items", enc.fingerprint, tuple(str(i) for i in items))
        buckets = self._item_buckets.get(key)
        if buckets is None:
            buckets = torch.tensor([enc.item_index(i) for i in key[2]], dtype=torch.long)
            self._item_buckets = {key: buckets}
        out = np.zeros((len(histories), len(items)), dtype=np.float32)
        encoded = [enc.encode(h) if len(h) else None for h in histories]
        model = state.model
        empty = [i for i, e in enumerate(encoded) if e is None]
        if empty:
            bias = model.item_bias.detach().float().cpu()[buckets].numpy()
            out[empty] = bias
        rows = sorted(
            (i for i, e in enumerate(encoded) if e is not None), key=lambda i: len(encoded[i])
        )
        idx = buckets.to(self.device)
        for start in range(0, len(rows), self.batch_size):
            chunk = rows[start : start + self.batch_size]
            inputs, _ = collate([encoded[i] for i in chunk], device=self.device, pad_side="left")
            with torch.inference_mode(), autocast(self.device):
                logits = model.predict_last(inputs, ("item",))["item"]
                out[chunk] = logits.float()[:, idx].cpu().numpy()
        return out

    def top_items(
        self,
        histories: Sequence[Sequence[Mapping[str, Any] | EncodedEvent]],
        n: int,
    ) -> list[list[tuple[str, float]]]:
        """Per history: the ``n`` most probable next items ``(item_id, probability)`` of the
        item head (vocabulary items only: none for hashed items or an empty history). Items
        already in the (encoded) history are left out, as the item-level evaluation does."""
        state = self._state
        enc = state.encoder
        out: list[list[tuple[str, float]]] = [[] for _ in histories]
        if n <= 0 or enc.hashed_items or not enc.items:
            return out
        encoded = [enc.encode(h) if len(h) else None for h in histories]
        rows = sorted(
            (i for i, e in enumerate(encoded) if e is not None), key=lambda i: len(encoded[i])
        )
        k = min(n, len(enc.items))
        for start in range(0, len(rows), self.batch_size):
            chunk = rows[start : start + self.batch_size]
            inputs, _ = collate([encoded[i] for i in chunk], device=self.device, pad_side="left")
            with torch.inference_mode(), autocast(self.device):
                logits = state.model.predict_last(inputs, ("item",))["item"].float()
            p = torch.softmax(logits, dim=-1).scatter(1, inputs["items"], 0.0)
            top_p, top = torch.topk(p[:, 2:], k, dim=1)  # vocabulary items: no padding, OOV
            for i, idx, ps in zip(chunk, top.tolist(), top_p.tolist(), strict=True):
                out[i] = [(enc.items[j], float(q)) for j, q in zip(idx, ps, strict=True)]
        return out

    def _vocab_map(
        self, state: _Loaded, categories: Sequence[str]
    ) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
        key = (id(state.encoder), tuple(categories))
        cached = self._vocab_maps.get(key)
        if cached is not None:
            return cached
        idx = np.fromiter(
            (state.encoder.category_index(c) for c in categories),
            dtype=np.int64,
            count=len(categories),
        )
        n_oov = int((idx == OOV).sum())
        share = np.where(idx == OOV, 1.0 / max(1, n_oov), 1.0)
        pos = {c: j for j, c in enumerate(categories)}
        self._vocab_maps = {key: (idx, share, pos)}  # one list at a time (the harness's)
        return idx, share, pos

    def predict_proba(
        self,
        histories: Sequence[Sequence[Mapping[str, Any] | EncodedEvent]],
        categories: Sequence[str],
    ) -> np.ndarray:
        """Probabilities ``(N, len(categories))`` over a caller's category list (evaluation).

        Out-of-vocabulary categories get the copy mass pointed at them by name, and share the
        rest of the OOV bucket equally; each row is renormalised over the list.
        """
        state = self._state
        probs, extras = self._score(histories, named=True)
        idx, share, pos = self._vocab_map(state, categories)
        p = probs[:, idx] * share
        p[:, idx == PAD] = 0.0
        if any(extras):
            for r, extra in enumerate(extras):
                for name, mass in extra.items():
                    j = pos.get(name)
                    if j is not None:
                        p[r, j] += mass
        total = p.sum(axis=1, keepdims=True)
        return np.divide(p, total, out=np.full_like(p, 1.0 / max(1, p.shape[1])), where=total > 0)


def _file_key(path: Path) -> tuple[int, int]:
    st = os.stat(path)
    return (st.st_mtime_ns, st.st_size)


def _replace_key(state: _Loaded, key: tuple[int, int] | None) -> _Loaded:
    return dataclasses.replace(state, file_key=key)


class SequencePredictor:
    """The Transformer behind the evaluation harness's predictor protocol.

    Keeps each user's encoded events (the last ``L``); ``predict`` scores the user's history
    strictly before the event, over ``categories``. ``learn`` appends the event.

    Examples
    --------
    >>> import torch
    >>> from models.sequence import SequenceConfig, SequenceEncoder, SequenceModel
    >>> _ = torch.manual_seed(0)
    >>> enc = SequenceEncoder(["a", "b"], n_item_buckets=64, max_len=4)
    >>> model = SequenceModel(SequenceConfig.tiny(n_item_buckets=64, max_len=4).with_vocab(4))
    >>> scorer = SequenceScorer(model, enc, device="cpu", num_threads=1)
    >>> pred = SequencePredictor(scorer, ["a", "b"])
    >>> ev = {"user_id": "u", "item_id": 1, "categories": ["a"], "event_type": "view", "ts": 0.0}
    >>> pred.learn(ev)
    >>> p = pred.predict({"user_id": "u", "ts": 1.0})
    >>> p.shape, round(float(p.sum()), 6)
    ((2,), 1.0)
    """

    name = "transformer"

    def __init__(self, scorer: SequenceScorer, categories: Sequence[str]) -> None:
        self.scorer = scorer
        self.categories = list(categories)
        self._max_len = scorer.encoder.max_len
        self._histories: dict[Any, list[EncodedEvent]] = {}

    @property
    def checkpoint_extra(self) -> Mapping[str, Any]:
        """The checkpoint's ``extra`` dict: its fitted fusion weights among others."""
        return self.scorer.extra

    def history(self, user_id: Any) -> list[EncodedEvent]:
        return self._histories.get(user_id, [])

    def predict(self, event: Mapping[str, Any]) -> np.ndarray:
        return self.predict_many([event])[0]

    def predict_many(self, events: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Several users' next-event predictions in one micro-batch."""
        hists = [self.history(e["user_id"]) for e in events]
        return self.scorer.predict_proba(hists, self.categories)

    def learn(self, event: Mapping[str, Any]) -> None:
        hist = self._histories.setdefault(event["user_id"], [])
        hist.append(self.scorer.encoder.encode_event(event, hist[-1] if hist else None))
        if len(hist) > self._max_len:  # each event carries its own time gap
            del hist[0]


def evaluation_predictor(
    checkpoint: str | Path,
    categories: Sequence[str],
    device: torch.device | str | None = None,
    quantize: bool = False,
) -> SequencePredictor:
    """Hook for ``models.evaluation.evaluate``: the Transformer row's predictor over
    ``categories``."""
    scorer = SequenceScorer.from_checkpoint(checkpoint, device=device, quantize=quantize)
    return SequencePredictor(scorer, categories)


def item_scorer(
    checkpoint: str | Path,
    items: Sequence[Any],
    device: torch.device | str | None = None,
) -> Callable[[Sequence[Sequence[Mapping[str, Any]]]], np.ndarray]:
    """Hook for ``models.evaluation.item_eval``: ``score(histories) -> (batch, len(items))``
    logits; ``score.note`` says what the ranking stands for when the checkpoint was not
    trained for items (None otherwise)."""
    scorer = SequenceScorer.from_checkpoint(checkpoint, device=device)
    items = list(items)

    def score(histories: Sequence[Sequence[Mapping[str, Any]]]) -> np.ndarray:
        return scorer.item_scores(histories, items)

    config = scorer._state.model.config
    score.note = None  # type: ignore[attr-defined]
    if config.objective == "category":
        buckets = "hashed item buckets" if scorer.encoder.hashed_items else "its item vocabulary"
        score.note = (  # type: ignore[attr-defined]
            f"transformer: a category checkpoint, whose item head was trained as an auxiliary "
            f"loss (weight {config.item_loss_weight:g}) over {buckets}; train with "
            "--objective item to rank items"
        )
    return score

"""SASRec-style causal Transformer over a user's last ``L`` events.

Three pieces, kept apart on purpose:

* :class:`SequenceEncoder` turns event dicts (``item_id``, ``categories``, ``event_type``,
  ``ts``) into plain integer lists: no tensors, no devices. It owns the category vocabulary
  (``0`` = padding, ``1`` = out-of-vocabulary) and the item vocabulary: real item ids
  (``0`` = padding, ``1`` = the shared OOV row, ``2..`` the items), or, for catalogs too large
  for a table, the stable item hash (``zlib.crc32`` of the id string into ``n_item_buckets``).
* :func:`collate` pads a batch of encoded sequences to the longest one *in the batch* and
  returns tensors on the device the caller chooses.
* :class:`SequenceModel` (config: :class:`SequenceConfig`) embeds each position as
  item + mean(categories) + event type + log time-gap bucket + learned position, runs causal
  pre-LayerNorm blocks (``F.scaled_dot_product_attention``, causal + key-padding masks), and has
  two heads tied to the input embeddings: the next-category distribution (softmax over the
  vocabulary incl. the OOV bucket) and the next item over the item table. ``objective``
  picks what is trained: ``category``, ``item`` (full-softmax cross-entropy over the catalog,
  or sampled softmax with log-Q correction) or ``joint`` (both, weighted).

Checkpoints are one ``torch.save`` file of plain containers (loadable with
``weights_only=True``): config, vocabulary, item-hash parameters, weights, metadata, version.
"""

from __future__ import annotations

import hashlib
import math
import os
import tempfile
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models.schema import EVENT_TYPES, canonical_event_type

CHECKPOINT_FORMAT = "interest-tracker/sequence"
CHECKPOINT_FORMAT_VERSION = 2  # 2: item vocabulary, objectives, side-feature switch

PAD = 0  # padding index of every vocabulary (items, categories, event types, gaps)
OOV = 1  # category (and item) index of anything outside the vocabulary
OBJECTIVES = ("category", "item", "joint")
PAD_TOKEN = "<pad>"
OOV_TOKEN = "<oov>"

# 0 = padding, 1 = unknown event type, 2.. = EVENT_TYPES
EVENT_TYPE_INDEX = {name: i + 2 for i, name in enumerate(EVENT_TYPES)}
N_EVENT_TYPES = len(EVENT_TYPES) + 2

# time-gap buckets: 0 = padding, 1 = no previous event, 2 + floor(log2(1 + gap_seconds)) capped
N_GAP_BUCKETS = 32


# --------------------------------------------------------------------------- config


@dataclass(frozen=True)
class SequenceConfig:
    """Hyper-parameters of :class:`SequenceModel` (frozen; stored in every checkpoint).

    ``n_categories`` is the size of the category vocabulary *including* padding (0) and the
    OOV bucket (1); it is set from the data with :meth:`with_vocab`.

    Examples
    --------
    >>> cfg = SequenceConfig.tiny().with_vocab(n_categories=10)
    >>> cfg.n_layer, cfg.n_embd, cfg.n_categories
    (1, 16, 10)
    >>> SequenceConfig.from_dict(cfg.to_dict()) == cfg
    True
    """

    max_len: int = 50  # L: events of history the model sees
    n_categories: int = 2  # vocabulary size incl. <pad> and <oov>
    n_item_buckets: int = 32768  # item hash table (bucket 0 = padding)
    n_event_types: int = N_EVENT_TYPES
    n_gap_buckets: int = N_GAP_BUCKETS
    n_layer: int = 2
    n_head: int = 2
    n_embd: int = 64
    ffn_mult: int = 1  # feed-forward width = ffn_mult * n_embd (SASRec: 1)
    activation: str = "relu"  # of the feed-forward block: "relu" or "gelu" (tanh approximation)
    bias: bool = False  # biases in the blocks' Linear and LayerNorm layers (False: faster)
    dropout: float = 0.3
    item_loss_weight: float = 0.1  # total loss = category loss + w * item loss
    item_negatives: int = 1024  # sampled-softmax negatives in training (0 = full softmax)
    label_smoothing: float = 0.0  # category targets mixed with uniform(vocab) by this much
    item_dropout: float = 0.0  # training: share of events whose item embedding is zeroed
    # the input side reads the item table without gradient: only the item head trains it, so
    # the trunk cannot memorise rare items' next categories through their embeddings
    detach_item_input: bool = True
    copy_head: bool = True  # mix the category softmax with a pointer over the history's events
    # what the loss trains: "category" (+ item_loss_weight x item), "item" only, "joint" (both)
    objective: str = "category"
    # category, event-type and time-gap embeddings beside the item's (off: pure SASRec input)
    side_features: bool = True

    def __post_init__(self) -> None:
        if self.activation not in ("gelu", "relu"):
            raise ValueError("activation must be 'gelu' or 'relu'")
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}")
        if self.n_embd % self.n_head:
            raise ValueError("n_embd must be a multiple of n_head")
        if self.n_categories < 2 or self.n_item_buckets < 2 or self.max_len < 1:
            raise ValueError("n_categories >= 2, n_item_buckets >= 2 and max_len >= 1 needed")

    @classmethod
    def tiny(cls, **overrides: Any) -> SequenceConfig:
        """1 layer, 16 dimensions, 1,024 item buckets: the CPU config for tests."""
        base = dict(max_len=50, n_item_buckets=1024, n_layer=1, n_head=2, n_embd=16, dropout=0.0)
        return cls(**{**base, **overrides})

    @classmethod
    def small(cls, **overrides: Any) -> SequenceConfig:
        """2 layers, 64 dimensions, FFN width 64, ReLU: the CPU serving config (benchmarks,
        taobao-head)."""
        base = dict(n_layer=2, n_head=2, n_embd=64, n_item_buckets=32768)
        return cls(**{**base, **overrides})

    @classmethod
    def base(cls, **overrides: Any) -> SequenceConfig:
        """4 layers, 128 dimensions, FFN 4x with GELU, 2^17 item buckets: for a GPU."""
        base = dict(
            n_layer=4,
            n_head=4,
            n_embd=128,
            ffn_mult=4,
            activation="gelu",
            bias=True,
            n_item_buckets=131072,
            dropout=0.2,
        )
        return cls(**{**base, **overrides})

    @classmethod
    def large(cls, **overrides: Any) -> SequenceConfig:
        """``base`` at 256 dimensions: for a GPU."""
        return cls.base(**{"n_embd": 256, **overrides})

    @classmethod
    def named(cls, name: str, **overrides: Any) -> SequenceConfig:
        """``tiny``, ``small``, ``base`` or ``large``."""
        if name not in CONFIG_NAMES:
            raise ValueError(f"unknown config {name!r}: expected {', '.join(CONFIG_NAMES)}")
        return getattr(cls, name)(**overrides)

    @classmethod
    def for_objective(cls, name: str, objective: str, **overrides: Any) -> SequenceConfig:
        """The named size set up for ``objective``.

        ``item`` is the SASRec recipe of the full-softmax replications: item embeddings only
        (no side features, trained on the input side too), no copy head, full softmax.
        ``joint`` keeps the side features and the copy head and weighs both losses equally.

        Examples
        --------
        >>> cfg = SequenceConfig.for_objective("small", "item")
        >>> cfg.objective, cfg.side_features, cfg.copy_head, cfg.item_negatives
        ('item', False, False, 0)
        """
        if objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}")
        preset: dict[str, Any] = {"objective": objective}
        if objective == "item":
            preset.update(
                side_features=False,
                copy_head=False,
                detach_item_input=False,
                item_negatives=0,
                dropout=0.2,
                n_head=1,
            )
        elif objective == "joint":
            preset.update(item_loss_weight=1.0, detach_item_input=False, item_negatives=0)
        if name == "tiny":
            preset.pop("n_head", None)
        return cls.named(name, **{**preset, **overrides})

    def with_vocab(self, n_categories: int) -> SequenceConfig:
        return replace(self, n_categories=n_categories)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SequenceConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


CONFIG_NAMES = ("tiny", "small", "base", "large")

# --------------------------------------------------------------------------- encoding


def item_bucket(item_id: Any, n_buckets: int, salt: str = "") -> int:
    """Stable hash of an item id into ``1 .. n_buckets - 1`` (``0`` is padding).

    ``zlib.crc32`` of the id's string form: the same in every process, unlike ``hash()``.

    Examples
    --------
    >>> item_bucket("42", 1024) == item_bucket(42, 1024)
    True
    >>> 1 <= item_bucket("never-seen", 1024) < 1024
    True
    """
    return 1 + zlib.crc32((salt + str(item_id)).encode("utf-8")) % (n_buckets - 1)


def gap_bucket(gap_s: float | None, n_buckets: int = N_GAP_BUCKETS) -> int:
    """Log2 bucket of the seconds since the previous event (``1`` = no previous event).

    Examples
    --------
    >>> [gap_bucket(g) for g in (None, 0, 1, 60, 3600, 1e12)]
    [1, 2, 3, 7, 13, 31]
    """
    if gap_s is None:
        return 1
    g = max(0.0, float(gap_s))
    return min(n_buckets - 1, 2 + int(math.log2(1.0 + g)))


def event_type_index(event_type: Any) -> int:
    """``0`` padding, ``1`` unknown, ``2..`` the event types of the schema (aliases resolved)."""
    name = str(event_type)
    return EVENT_TYPE_INDEX.get(canonical_event_type(name), 1)


def event_categories(event: Mapping[str, Any]) -> list[str]:
    """The event's categories as strings (``categories`` list, or a single ``category``)."""
    cats = event.get("categories")
    if cats is None:
        cat = event.get("category")
        return [] if cat is None else [str(cat)]
    if isinstance(cats, str | bytes):
        return [str(cats)]
    return [str(c) for c in cats]


class EncodedEvent(NamedTuple):
    """One event as integers; ``ts`` kept for the time-gap feature, ``oov`` the names of the
    categories that fell in the OOV bucket (the scorer gives copied mass back to them),
    ``gap`` the time-gap bucket when known at encoding time (``0``: computed later).

    A named tuple: a ring buffer of them transposes into columns at C speed.
    """

    item: int
    categories: tuple[int, ...]
    event_type: int
    ts: float
    oov: tuple[str, ...] = ()
    gap: int = 0


@dataclass
class EncodedSequence:
    """Parallel integer lists for one user's (window of) events, oldest first.

    ``target_categories[t]`` / ``target_item[t]`` are the next event's (``()`` / ``0`` where there
    is no next event); empty lists when the sequence was encoded without targets.

    Examples
    --------
    >>> enc = SequenceEncoder(["a"], n_item_buckets=8, max_len=4)
    >>> ev = [{"item_id": i, "categories": ["a"], "event_type": "view", "ts": i} for i in range(3)]
    >>> s = enc.encode(ev, targets=True)
    >>> len(s), s.target_categories, s.window(1, 3).target_items == s.target_items[1:3]
    (3, [(2,), (2,), ()], True)
    """

    items: list[int]
    categories: list[tuple[int, ...]]
    event_types: list[int]
    gaps: list[int]
    target_categories: list[tuple[int, ...]]
    target_items: list[int]
    oov: list[tuple[str, ...]] = field(default_factory=list)  # per position: OOV names

    def __len__(self) -> int:
        return len(self.items)

    def window(self, start: int, stop: int) -> EncodedSequence:
        """Positions ``start:stop`` (targets sliced alike)."""
        return EncodedSequence(
            self.items[start:stop],
            self.categories[start:stop],
            self.event_types[start:stop],
            self.gaps[start:stop],
            self.target_categories[start:stop],
            self.target_items[start:stop],
            self.oov[start:stop],
        )


class SequenceEncoder:
    """Event dicts → integer lists: category vocabulary, item hash, event types, time gaps.

    Parameters
    ----------
    categories
        The category vocabulary (names, without padding/OOV; index ``i`` of this list is
        model index ``i + 2``).
    n_item_buckets
        Size of the item hash table (``SequenceConfig.n_item_buckets``).
    max_len
        ``L``: :meth:`encode` keeps the last ``max_len`` events.
    max_categories
        At most this many categories of an event are embedded (the first ones).
    hash_salt
        Prefix of the hashed item id string (part of the checkpoint).

    Examples
    --------
    >>> enc = SequenceEncoder(["shoes", "books"], n_item_buckets=64, max_len=3)
    >>> enc.category_index("books"), enc.category_index("never-seen")
    (3, 1)
    >>> events = [
    ...     {"item_id": "a", "categories": ["shoes"], "event_type": "view", "ts": 0.0},
    ...     {"item_id": "b", "categories": ["books", "x"], "event_type": "buy", "ts": 60.0},
    ... ]
    >>> s = enc.encode(events)
    >>> s.categories, s.event_types, s.gaps
    ([(2,), (3, 1)], [2, 6], [1, 7])
    """

    def __init__(
        self,
        categories: Sequence[str],
        n_item_buckets: int,
        max_len: int,
        max_categories: int = 8,
        hash_salt: str = "",
        items: Sequence[Any] | None = None,
        item_categories: Sequence[Sequence[int]] | None = None,
    ) -> None:
        self.categories = [str(c) for c in categories]
        self.max_len = int(max_len)
        self.max_categories = int(max_categories)
        self.hash_salt = str(hash_salt)
        self._index = {c: i + 2 for i, c in enumerate(self.categories)}
        if len(self._index) != len(self.categories):
            raise ValueError("duplicate category names in the vocabulary")
        self.items = None if items is None else [str(i) for i in items]
        self._fingerprint: str | None = None
        self._item_index: dict[str, int] = {}
        self.item_categories: list[tuple[int, ...]] = []
        if self.items is None:
            self.n_item_buckets = int(n_item_buckets)
        else:
            self._item_index = {it: i + 2 for i, it in enumerate(self.items)}
            if len(self._item_index) != len(self.items):
                raise ValueError("duplicate item ids in the item vocabulary")
            self.n_item_buckets = len(self.items) + 2
            cats = item_categories if item_categories is not None else [()] * len(self.items)
            if len(cats) != len(self.items):
                raise ValueError("item_categories must have one entry per item")
            self.item_categories = [tuple(int(c) for c in cs) for cs in cats]

    # vocabulary ------------------------------------------------------------
    @property
    def vocab(self) -> list[str]:
        """Model index → name, ``<pad>`` and ``<oov>`` included."""
        return [PAD_TOKEN, OOV_TOKEN, *self.categories]

    @property
    def n_categories(self) -> int:
        """Vocabulary size incl. padding and OOV (``SequenceConfig.n_categories``)."""
        return len(self.categories) + 2

    @property
    def fingerprint(self) -> str:
        """Digest of vocabulary and hash parameters: :class:`EncodedEvent` objects made by an
        encoder are valid only for encoders with the same fingerprint (check after a reload)."""
        if self._fingerprint is None:  # the vocabularies never change after construction
            h = hashlib.blake2b(digest_size=8)
            h.update(repr(self.state()).encode())
            self._fingerprint = h.hexdigest()
        return self._fingerprint

    def category_index(self, name: Any) -> int:
        return self._index.get(str(name), OOV)

    @property
    def hashed_items(self) -> bool:
        """True when item ids are hashed into buckets (no item vocabulary)."""
        return self.items is None

    def item_index(self, item_id: Any) -> int:
        """Row of the item table: ``2..`` for vocabulary items, ``OOV`` (1) for the rest; the
        hash bucket when the encoder hashes items."""
        if self.items is None:
            return item_bucket(item_id, self.n_item_buckets, self.hash_salt)
        return self._item_index.get(str(item_id), OOV)

    @classmethod
    def from_events(
        cls,
        events: Iterable[Mapping[str, Any]],
        config: SequenceConfig,
        min_count: int = 1,
        max_categories: int = 8,
        hash_salt: str = "",
        min_item_count: int | None = None,
        max_item_vocab: int = 1_000_000,
    ) -> SequenceEncoder:
        """Vocabularies from ``events``: categories seen at least ``min_count`` times and,
        with ``min_item_count``, the items seen at least that often (first-seen order; the
        rest share the OOV row). Above ``max_item_vocab`` such items, or without
        ``min_item_count``, items are hashed into ``config.n_item_buckets`` buckets.

        Examples
        --------
        >>> evs = [{"item_id": i, "categories": [c]} for i, c in [(1, "a"), (2, "b"), (1, "a")]]
        >>> enc = SequenceEncoder.from_events(evs, SequenceConfig.tiny(), min_item_count=2)
        >>> enc.items, enc.item_index(1), enc.item_index(2), enc.n_item_buckets
        (['1'], 2, 1, 3)
        """
        counts: dict[str, int] = {}
        item_counts: dict[str, int] = {}
        item_cats: dict[str, list[str]] = {}
        for e in events:
            cats = event_categories(e)
            for c in cats:
                counts[c] = counts.get(c, 0) + 1
            it = str(e["item_id"])
            item_counts[it] = item_counts.get(it, 0) + 1
            item_cats.setdefault(it, cats[:max_categories])
        vocab = [c for c, n in counts.items() if n >= min_count]
        items = None
        if min_item_count is not None:
            items = [it for it, n in item_counts.items() if n >= min_item_count]
            if len(items) > max_item_vocab:
                items = None
        enc = cls(vocab, config.n_item_buckets, config.max_len, max_categories, hash_salt)
        if items is None:
            return enc
        item_categories = [tuple(enc.category_index(c) for c in item_cats[it]) for it in items]
        return cls(
            vocab,
            config.n_item_buckets,
            config.max_len,
            max_categories,
            hash_salt,
            items,
            item_categories,
        )

    # events ----------------------------------------------------------------
    def encode_event(
        self, event: Mapping[str, Any], previous: EncodedEvent | None = None
    ) -> EncodedEvent:
        """One event, to keep in a ring buffer and pass to :meth:`encode` later.

        With the user's ``previous`` encoded event its time gap is computed now (and survives
        the predecessor's eviction from the buffer).
        """
        cats = event_categories(event)[: self.max_categories]
        cat_ids = tuple(self._index.get(c, OOV) for c in cats) or (OOV,)
        oov = tuple(c for c, i in zip(cats, cat_ids, strict=False) if i == OOV)
        ts = float(event["ts"])
        return EncodedEvent(
            self.item_index(event["item_id"]),
            cat_ids,
            event_type_index(event.get("event_type")),
            ts,
            oov,
            0 if previous is None else gap_bucket(ts - previous.ts),
        )

    def encode(
        self,
        events: Sequence[Mapping[str, Any] | EncodedEvent],
        targets: bool = False,
        max_len: int | None = None,
    ) -> EncodedSequence:
        """A user's events (oldest first) → integer lists of the last ``max_len`` of them.

        The time gap of the first kept event uses the event before it when there is one.
        With ``targets=True`` every position gets the next event as target (the last one none),
        and nothing is truncated: slice windows with :meth:`EncodedSequence.window`.
        """
        limit = self.max_len if max_len is None else max_len
        start = 0 if targets else max(0, len(events) - limit)
        first = max(0, start - 1)
        enc = [e if isinstance(e, EncodedEvent) else self.encode_event(e) for e in events[first:]]
        kept = enc[start - first :]
        if not kept:
            items, cats, etypes, ts, oov, gaps = [], [], [], [], [], []
        else:
            items, cats, etypes, ts, oov, gaps = map(list, zip(*kept, strict=True))
        if not all(gaps):
            prev_ts: float | None = None if first == start else enc[0].ts
            for t, e in enumerate(kept):
                if not gaps[t]:
                    gaps[t] = gap_bucket(None if prev_ts is None else e.ts - prev_ts)
                prev_ts = e.ts
        if targets:
            tcats = [*cats[1:], ()]
            titems = [*items[1:], PAD]
        else:
            tcats, titems = [], []
        return EncodedSequence(items, cats, etypes, gaps, tcats, titems, oov)

    # persistence -------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """Plain-container state for checkpoints."""
        state: dict[str, Any] = {
            "categories": list(self.categories),
            "max_len": self.max_len,
            "max_categories": self.max_categories,
            "item_hash": {
                "algorithm": "crc32",
                "n_buckets": self.n_item_buckets,
                "salt": self.hash_salt,
            },
        }
        if self.items is not None:
            state["items"] = list(self.items)
            state["item_categories"] = [list(c) for c in self.item_categories]
        return state

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> SequenceEncoder:
        h = state["item_hash"]
        if h.get("algorithm", "crc32") != "crc32":
            raise ValueError(f"unsupported item hash {h.get('algorithm')!r}")
        return cls(
            state["categories"],
            h["n_buckets"],
            state["max_len"],
            state.get("max_categories", 8),
            h.get("salt", ""),
            state.get("items"),
            state.get("item_categories"),
        )

    def item_category_weights(self, oov_row: Sequence[float] | None = None) -> torch.Tensor:
        """Sparse ``(n_item_buckets, n_categories)`` matrix: row ``i`` is item ``i``'s
        categories, each ``1 / k`` (a row sums to 1). The OOV row is ``oov_row`` (default:
        uniform over the known categories); the padding row is empty.

        Examples
        --------
        >>> enc = SequenceEncoder(["a", "b"], 0, 4, items=["x", "y"], item_categories=[[2], [2, 3]])
        >>> enc.item_category_weights().to_dense().tolist()
        [[0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.5, 0.5], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.5, 0.5]]
        """
        if self.items is None:
            raise ValueError("hashed items have no item -> category mapping")
        V = self.n_categories
        oov = np.zeros(V) if oov_row is None else np.asarray(oov_row, dtype=np.float64)
        if oov_row is None:
            oov[2:] = 1.0 / max(1, V - 2)
        oov = oov / oov.sum() if oov.sum() > 0 else oov
        rows, cols, vals = [], [], []
        for c in np.flatnonzero(oov):
            rows.append(OOV)
            cols.append(int(c))
            vals.append(float(oov[c]))
        for i, cats in enumerate(self.item_categories):
            cats = cats or (OOV,)
            for c in cats:
                rows.append(i + 2)
                cols.append(c)
                vals.append(1.0 / len(cats))
        idx = torch.tensor([rows, cols], dtype=torch.int64)
        m = torch.sparse_coo_tensor(
            idx, torch.tensor(vals), (self.n_item_buckets, V), check_invariants=False
        )
        return m.coalesce().to(torch.float32)


def collate(
    sequences: Sequence[EncodedSequence],
    device: torch.device | str | None = None,
    pad_side: str = "right",
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor] | None]:
    """Pad a batch to its LONGEST sequence; tensors on ``device``.

    Returns ``(inputs, targets)``: ``inputs`` has ``items``, ``event_types``, ``gaps``
    ``(B, T)``, ``categories`` ``(B, T, K)`` and the boolean ``mask`` ``(B, T)`` (True = real
    event); ``targets`` (``None`` when the sequences carry none) has ``categories``
    ``(B, T, K')`` and ``items`` ``(B, T)``, ``0`` = no target.

    Examples
    --------
    >>> enc = SequenceEncoder(["a", "b"], n_item_buckets=16, max_len=10)
    >>> ev = lambda i, c: {"item_id": i, "categories": c, "event_type": "view", "ts": float(i)}
    >>> s1 = enc.encode([ev(1, ["a"]), ev(2, ["b", "a"]), ev(3, ["a"])])
    >>> s2 = enc.encode([ev(4, ["b"])])
    >>> x, y = collate([s1, s2], pad_side="left")
    >>> tuple(x["items"].shape), tuple(x["categories"].shape), y is None
    ((2, 3), (2, 3, 2), True)
    >>> x["mask"].tolist()
    [[True, True, True], [False, False, True]]
    """
    if pad_side not in ("left", "right"):
        raise ValueError("pad_side must be 'left' or 'right'")
    if not sequences:
        raise ValueError("empty batch")
    B = len(sequences)
    T = max(1, max(len(s) for s in sequences))
    K = max(max(map(len, s.categories), default=1) for s in sequences) or 1
    has_targets = all(len(s.target_items) == len(s) for s in sequences) and any(
        len(s.target_items) for s in sequences
    )
    Kt = 1
    if has_targets:
        Kt = max(max(map(len, s.target_categories), default=1) for s in sequences) or 1

    # one flat scatter per field: the padded (row, column) of every real position
    lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=B)
    total = int(lengths.sum())
    rows = np.repeat(np.arange(B), lengths)
    starts = (T - lengths) if pad_side == "left" else np.zeros(B, dtype=np.int64)
    cols = np.arange(total) - np.repeat(np.cumsum(lengths) - lengths - starts, lengths)

    def field_(values: Iterable[int]) -> torch.Tensor:
        out = np.zeros((B, T), dtype=np.int64)
        out[rows, cols] = np.fromiter(values, dtype=np.int64, count=total)
        return torch.from_numpy(out)

    def cats_(per_seq: Iterable[Sequence[tuple[int, ...]]], k: int) -> torch.Tensor:
        out = np.zeros((B, T, k), dtype=np.int64)
        if k == 1:  # the common case: one category per event
            out[rows, cols, 0] = np.fromiter(
                (c[0] if c else PAD for r in per_seq for c in r), dtype=np.int64, count=total
            )
        elif total:
            out[rows, cols] = np.array([c + (PAD,) * (k - len(c)) for r in per_seq for c in r])
        return torch.from_numpy(out)

    mask = np.zeros((B, T), dtype=bool)
    mask[rows, cols] = True
    inputs = {
        "items": field_(x for s in sequences for x in s.items),
        "categories": cats_([s.categories for s in sequences], K),
        "event_types": field_(x for s in sequences for x in s.event_types),
        "gaps": field_(x for s in sequences for x in s.gaps),
        "mask": torch.from_numpy(mask),
    }
    if device is not None:
        inputs = {k: v.to(device) for k, v in inputs.items()}
    if not has_targets:
        return inputs, None
    targets = {
        "categories": cats_([s.target_categories for s in sequences], Kt),
        "items": field_(x for s in sequences for x in s.target_items),
    }
    if device is not None:
        targets = {k: v.to(device) for k, v in targets.items()}
    return inputs, targets


# --------------------------------------------------------------------------- model


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
        self.dropout = config.dropout
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
        if mask.shape[1] <= self.config.max_len and bool(mask.all()):
            x += self.pos_emb.weight[: mask.shape[1]]
        else:
            pos = (mask.long().cumsum(1) - 1).clamp(min=0, max=self.config.max_len - 1)
            x += self.pos_emb(pos)
        return self.drop(x)  # (B, T, D)

    @staticmethod
    def _attn_mask(mask: torch.Tensor) -> torch.Tensor | None:
        """``None`` when nothing is padded (SDPA's causal fast path), else (B, 1, T, T) bool."""
        if bool(mask.all()):
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
            return {}, self._losses(h, None, targets)["total"]
        logits = {"category": self._category_logprobs(h, ctx, inputs)}
        if targets is None:
            logits.update(self.heads(h, ("item",)))
            return logits, None
        losses = self._losses(h, logits["category"], targets)
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
        return self._losses(h, cat_logits, targets)

    def _losses(
        self,
        h: torch.Tensor,
        cat_logits: torch.Tensor | None,
        targets: Mapping[str, torch.Tensor],
    ) -> dict[str, torch.Tensor]:
        cfg = self.config
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
            item = softmax_cross_entropy(hv, w.to(hv.dtype), b.to(hv.dtype), t_items - 1)
        return {"category": cat, "item": item, "total": w_cat * cat + w_item * item}

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
            out["item"] = self.heads(h[:, 0], ("item",))["item"]
        return out


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


# --------------------------------------------------------------------------- checkpoints


@dataclass
class LoadedCheckpoint:
    """What :func:`load_checkpoint` rebuilds from one file.

    Examples
    --------
    >>> import tempfile, os
    >>> _ = torch.manual_seed(0)
    >>> enc = SequenceEncoder(["a", "b"], n_item_buckets=16, max_len=4)
    >>> model = SequenceModel(SequenceConfig.tiny(n_item_buckets=16, max_len=4).with_vocab(4))
    >>> path = os.path.join(tempfile.mkdtemp(), "seq.pt")
    >>> version = save_checkpoint(path, model, enc, metadata={"epochs": 0})
    >>> ck = load_checkpoint(path)
    >>> ck.version == version, ck.encoder.vocab, ck.metadata
    (True, ['<pad>', '<oov>', 'a', 'b'], {'epochs': 0})
    """

    model: SequenceModel
    encoder: SequenceEncoder
    version: str
    metadata: dict[str, Any]
    extra: dict[str, Any]


def _weights_digest(config: SequenceConfig, state: Mapping[str, Any], sd: Mapping) -> str:
    h = hashlib.blake2b(digest_size=8)
    h.update(repr(sorted(config.to_dict().items())).encode())
    h.update(repr(state).encode())
    for k in sorted(sd):
        h.update(k.encode())
        h.update(sd[k].detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()


def save_checkpoint(
    path: str | Path,
    model: SequenceModel,
    encoder: SequenceEncoder,
    metadata: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> str:
    """Write one checkpoint file atomically (temp file + rename); returns its version string.

    The version is ``seq-`` + a digest of config, vocabulary and weights.
    """
    config = model.config
    if encoder.n_categories != config.n_categories:
        raise ValueError("encoder vocabulary and model config disagree on n_categories")
    sd = {k: v.detach().to("cpu").clone() for k, v in model.state_dict().items()}
    state = encoder.state()
    version = "seq-" + _weights_digest(config, state, sd)
    ckpt = {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_FORMAT_VERSION,
        "version": version,
        "config": config.to_dict(),
        "encoder": state,
        "state_dict": sd,
        "metadata": dict(metadata or {}),
        "extra": dict(extra or {}),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(ckpt, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return version


def load_checkpoint(
    path: str | Path, map_location: torch.device | str | None = "cpu"
) -> LoadedCheckpoint:
    """Rebuild model (eval mode) and encoder from one file alone (``weights_only=True``)."""
    ckpt = torch.load(path, map_location=map_location, weights_only=True)
    if ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not a sequence-model checkpoint")
    found = ckpt.get("format_version", 0)
    if found > CHECKPOINT_FORMAT_VERSION:
        raise ValueError(f"{path}: checkpoint format {found} is newer than this code")
    if found < CHECKPOINT_FORMAT_VERSION:
        raise ValueError(
            f"{path}: checkpoint format {found} is older than this code's "
            f"{CHECKPOINT_FORMAT_VERSION} (item vocabulary and objectives): retrain it with "
            "`interest-tracker train`"
        )
    config = SequenceConfig.from_dict(ckpt["config"])
    model = SequenceModel(config)
    model.load_state_dict(ckpt["state_dict"])
    if map_location is not None:
        model.to(map_location)
    model.eval()
    encoder = SequenceEncoder.from_state(ckpt["encoder"])
    return LoadedCheckpoint(
        model, encoder, ckpt["version"], dict(ckpt.get("metadata", {})), dict(ckpt.get("extra", {}))
    )


def evaluation_predictor(checkpoint: str | Path, categories: Sequence[str]) -> Any:
    """Hook for ``models.evaluate``: the ``transformer`` row (see ``models.scorer``)."""
    from models.scorer import evaluation_predictor as make

    return make(checkpoint, categories)


def item_scorer(checkpoint: str | Path, items: Sequence[Any]) -> Any:
    """Hook for ``models.item_eval``: the item head as ``score(histories) -> (B, len(items))``."""
    from models.scorer import item_scorer as make

    return make(checkpoint, items)

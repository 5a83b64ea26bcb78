"""Event dicts to integer sequences and padded batches: no model, no weights.

* :class:`SequenceEncoder` turns event dicts (``item_id``, ``categories``, ``event_type``,
  ``ts``) into plain integer lists: no tensors, no devices. It owns the category vocabulary
  (``0`` = padding, ``1`` = out-of-vocabulary) and the item vocabulary: real item ids
  (``0`` = padding, ``1`` = the shared OOV row, ``2..`` the items), or, for catalogs too large
  for a table, the stable item hash (``zlib.crc32`` of the id string into ``n_item_buckets``).
* :func:`collate` pads a batch of encoded sequences to the longest one *in the batch* and
  returns tensors on the device the caller chooses.
"""

from __future__ import annotations

import hashlib
import math
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import torch

from models.schema import canonical_event_type
from models.sequence.config import (
    EVENT_TYPE_INDEX,
    N_GAP_BUCKETS,
    OOV,
    OOV_TOKEN,
    PAD,
    PAD_TOKEN,
    SequenceConfig,
)


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

    Examples
    --------
    >>> enc = SequenceEncoder(["a"], n_item_buckets=8, max_len=4)
    >>> ev = {"item_id": 3, "categories": ["a", "z"], "event_type": "view", "ts": 0.0}
    >>> first = enc.encode_event(ev)
    >>> first  # z is out of the vocabulary: the OOV index 1, its name kept
    EncodedEvent(item=7, categories=(2, 1), event_type=2, ts=0.0, oov=('z',), gap=0)
    >>> enc.encode_event({**ev, "ts": 60.0}, previous=first).gap  # log2 bucket of 60 s
    7
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

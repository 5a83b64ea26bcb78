"""The Transformer's hyper-parameters (one frozen dataclass, stored in every checkpoint) and
the fixed sizes of its input vocabularies."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from models.schema import EVENT_TYPES

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
    # of the attention weights; None: ``dropout``. On the CPU any attention dropout sends
    # attention to the slower unfused kernel (a third of an item-recipe step)
    attn_dropout: float | None = None
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
    # the item head predicts the next item among those not yet in the window (the full softmax
    # in training and every prediction), as the item-level evaluation ranks; for logs where a
    # user never repeats an item (ratings), where the trainer turns it on (full softmax only)
    exclude_seen: bool = False

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
        (no side features, trained on the input side too), no copy head, full softmax; dropout on
        the residual stream only, not on the attention weights.
        ``joint`` keeps the side features and the copy head and weighs both losses equally.

        Examples
        --------
        >>> cfg = SequenceConfig.for_objective("small", "item")
        >>> cfg.objective, cfg.side_features, cfg.copy_head, cfg.item_negatives, cfg.attn_dropout
        ('item', False, False, 0, 0.0)
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
                attn_dropout=0.0,
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

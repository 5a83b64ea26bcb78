"""The one definition of the event vocabulary and the reserved keys, shared by every module.

The stream's codec, the offline loaders, the online estimators, the sequence model's encoder
and the dashboard all import these names, so the same event means the same thing online and
offline.

>>> canonical_event_type("favourite"), canonical_event_type("pv"), canonical_event_type("x")
('fav', 'view', 'x')
>>> sorted(DEFAULT_EVENT_WEIGHTS) == sorted(EVENT_TYPES)
True
"""

from __future__ import annotations

EVENT_TYPES: tuple[str, ...] = ("view", "click", "cart", "fav", "purchase", "rate")
EVENT_TYPE_ALIASES: dict[str, str] = {
    "pv": "view",
    "buy": "purchase",
    "favorite": "fav",
    "favourite": "fav",
}
DEFAULT_EVENT_WEIGHTS: dict[str, float] = {
    "view": 1.0,
    "click": 1.0,
    "cart": 2.0,
    "fav": 2.0,
    "purchase": 2.0,
    "rate": 1.0,
}

# The key of the mass a distribution does not name (its tail, or the prior's share).
OTHER = "_other"
# The population of partition N is stored under population_key(N) and its snapshots are
# published under POPULATION_PREFIX + population_key(N).
POPULATION_KEY = "__population__"
POPULATION_PREFIX = POPULATION_KEY + "/"

# What a valid event may look like beyond its schema, by default (INTEREST_MAX_PAYLOAD,
# INTEREST_MAX_FUTURE_S): a larger message is "oversized", a later ts is "future".
MAX_PAYLOAD_BYTES = 65536
MAX_FUTURE_S = 300.0
# The largest event weight: decayed masses add up weights scaled by up to 2**REBASE_EXPONENT,
# and two weights near float's maximum made a population's total infinite ("oversized-field").
MAX_WEIGHT = 1e6


def population_key(partition: int) -> str:
    """The population table's key of ``partition``.

    >>> population_key(3), population_partition(population_key(3))
    ('p3', 3)
    """
    return f"p{partition}"


def population_partition(key: str) -> int:
    """The partition whose population is stored under ``key``."""
    return int(key.removeprefix("p"))


# Why an event went to the dead-letter topic (the DLQ record's ``reason``).
DLQ_REASONS: tuple[str, ...] = (
    "oversized",
    "malformed",
    "json-unmarked",
    "not-a-map",
    "missing-field",
    "wrong-type",
    "empty-categories",
    "oversized-field",
    "unknown-event-type",
    "bad-timestamp",
    "future",
    "late",
    "unknown-item",
    "reserved-id",
    "internal-error",
)


def canonical_event_type(name: str) -> str:
    """The schema's name for an event type: aliases resolved, anything else unchanged."""
    return EVENT_TYPE_ALIASES.get(name, name)

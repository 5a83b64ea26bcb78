"""The layout of what the stream stores per user and per partition, in one table.

A tracked user's record (:class:`~models.tracker.UserRecord`) goes to the Faust table and its
changelog as ``to_state()``: a flat msgpack list whose position ``i`` holds
``RecordField(i)``. Version 1, still read from old changelogs, was a dict with the letter keys
of :data:`V1_KEYS`; version 2 had the same list, but its TIMES held a float for each time with
a fraction and whole-second deltas between whole ones (read, and rewritten as version 3).
The population table holds one :class:`~models.online.PopulationInterest` state per input
partition, a dict with the keys of :class:`PopulationField`.

==============  ===  ====  ===========================================================
field           pos  v1    what it holds
==============  ===  ====  ===========================================================
VERSION         0    –     ``RECORD_VERSION``
PARTITION       1    p     input partition of the last event applied
OFFSET          2    o     its offset (``-1``: none yet), for exactly-once replays
INTEREST        3    u     ``UserInterest.compact_state()`` (v1: ``state()``), or None
ITEMS           4    h     history: item ids, oldest first
CATEGORY_TABLE  5    h     history: the distinct category names the history uses
CATEGORIES      6    h     history: per event an index into the table, or a list of them
EVENT_TYPES     7    h     history: index into ``schema.EVENT_TYPES`` (or the raw name)
TIMES           8    h     history: the first time absolute, ``[ts]`` in seconds, or
                           ``[ms, -3]`` in milliseconds once any time had a fraction
                           (kept to the millisecond); then integer deltas in that unit
MOVED           9    h     history: how far each event moved the distribution, in
                           millionths
TOPICS          10   t     ``compact_state()`` of the estimator over content topics
==============  ===  ====  ===========================================================

In memory, and in version 1's ``h``, a history entry is the tuple of :class:`HistoryField`.
The TIMES column is written by :func:`stored_times` and read by :func:`read_times` (version 2:
:func:`read_v2_times`).

>>> RecordField.TOPICS, len(RecordField), HistoryField.TS
(<RecordField.TOPICS: 10>, 11, <HistoryField.TS: 3>)
>>> V1_KEYS == tuple(v for k, v in vars(V1Key).items() if k.isupper())
True
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from enum import IntEnum

RECORD_VERSION = 3


class RecordField(IntEnum):
    """Positions in a record list, versions 2 and 3 (see the module's table).

    Examples
    --------
    >>> from models.tracker import TrackerConfig, replay
    >>> evs = [{"item_id": f"i{t}", "categories": [c], "event_type": "view", "ts": float(t)}
    ...        for t, c in enumerate("abb")]
    >>> state = replay(evs, TrackerConfig()).to_state()
    >>> state[RecordField.VERSION], state[RecordField.ITEMS], state[RecordField.OFFSET]
    (3, ['i0', 'i1', 'i2'], -1)
    >>> state[RecordField.CATEGORY_TABLE], state[RecordField.CATEGORIES], state[RecordField.TIMES]
    (['a', 'b'], [0, 1, 1], [[0], 1, 1])
    """

    VERSION = 0
    PARTITION = 1
    OFFSET = 2
    INTEREST = 3
    ITEMS = 4
    CATEGORY_TABLE = 5
    CATEGORIES = 6
    EVENT_TYPES = 7
    TIMES = 8
    MOVED = 9
    TOPICS = 10


class HistoryField(IntEnum):
    """Positions in one history entry ``(item_id, categories, event_type, ts, moved)``.

    Examples
    --------
    >>> from models.tracker import TrackerConfig, UserRecord
    >>> r = UserRecord(TrackerConfig())
    >>> _ = r.apply({"item_id": "i", "categories": ["a", "b"], "event_type": "cart", "ts": 2.5})
    >>> entry = r.history[-1]
    >>> entry[HistoryField.CATEGORIES], entry[HistoryField.EVENT_TYPE], entry[HistoryField.TS]
    (('a', 'b'), 'cart', 2.5)
    """

    ITEM_ID = 0
    CATEGORIES = 1
    EVENT_TYPE = 2
    TS = 3
    MOVED = 4


class V1Key:
    """Keys of a version-1 record (a dict); read, never written.

    Examples
    --------
    >>> from models.tracker import UserRecord
    >>> v1 = {V1Key.HISTORY: [("i", ["a"], "view", 5.0, 0.5)], V1Key.PARTITION: 2,
    ...       V1Key.OFFSET: 41}
    >>> state = UserRecord.from_state(v1).to_state()  # rewritten as the current list
    >>> state[RecordField.PARTITION], state[RecordField.OFFSET], state[RecordField.TIMES]
    (2, 41, [[5]])
    """

    INTEREST = "u"
    TOPICS = "t"
    HISTORY = "h"
    PARTITION = "p"
    OFFSET = "o"


V1_KEYS = ("u", "t", "h", "p", "o")


class PopulationField:
    """Keys of ``PopulationInterest.state()``, one per input partition in the population table.

    Masses are stored relative to the reference time ``REFERENCE``: the mass at time ``T`` is
    the stored one times ``2 ** (-(T - REFERENCE) / population_half_life)``; the short
    horizon's likewise with ``SHORT_REFERENCE`` and ``population_short_half_life``. States
    from before the short horizon lack its keys.

    Examples
    --------
    >>> from models.online import InterestConfig, PopulationInterest
    >>> pop = PopulationInterest(InterestConfig(population_half_life=10.0))
    >>> for c, t in [("x", 0.0), ("y", 10.0)]:
    ...     pop.learn_one({"categories": [c], "event_type": "view", "ts": t})
    >>> s = pop.state()  # y, one half-life after REFERENCE, is stored at twice its weight
    >>> s[PopulationField.REFERENCE], s[PopulationField.MASSES], s[PopulationField.N_EVENTS]
    (0.0, {'x': 1.0, 'y': 2.0}, 2)
    """

    LAST_TS = "t"
    REFERENCE = "ref"
    MASSES = "m"
    RESIDUAL = "r"
    N_EVENTS = "n"
    SHORT_REFERENCE = "sref"  # the short horizon, as the long one above
    SHORT_MASSES = "sm"
    SHORT_RESIDUAL = "sr"
    SCORES = "ls"  # the horizons' decayed log-loss, long then short


# -- the TIMES column ----------------------------------------------------------------------
MS = -3  # the unit mark of a millisecond time column: its first entry is [t, MS]


def stored_times(ts: Sequence[float], ms: bool) -> list:
    """The TIMES column of event times ``ts``: the first absolute (``[t]`` in seconds, or
    ``[t, MS]`` in milliseconds), then integer deltas in that unit.

    >>> stored_times([100.0, 130.0, 131.0], ms=False)
    [[100], 30, 1]
    >>> stored_times([100.0, 100.25, 101.5], ms=True)
    [[100000, -3], 250, 1250]
    """
    if not ts:
        return []
    ticks = [time_tick(t, ms) for t in ts]
    return [time_head(ts[0], ms), *(b - a for a, b in itertools.pairwise(ticks))]


def time_tick(ts: float, ms: bool) -> int:
    """A history time in its column's unit."""
    return round(ts * 1000) if ms else int(ts)


def time_head(ts: float, ms: bool) -> list[int]:
    """The first entry of a TIMES column: the time, absolute, and the unit's mark."""
    return [round(ts * 1000), MS] if ms else [int(ts)]


def read_times(times: Sequence) -> list[float]:
    """Event times from a version-3 TIMES column (the inverse of :func:`stored_times`)."""
    if not times:
        return []
    scale = 1000 if len(times[0]) == 2 else 1
    return [t / scale for t in itertools.accumulate(times[1:], initial=times[0][0])]


def read_v2_times(times: Sequence) -> list[float]:
    """Event times from a version-2 TIMES column: ``[t]`` starts a run of whole-second
    deltas, a float stands alone."""
    ts: list[float] = []
    prev = None
    for t in times:
        if isinstance(t, list):
            prev = t[0]
            ts.append(float(prev))
        elif isinstance(t, int) and prev is not None:
            prev += t
            ts.append(float(prev))
        else:
            ts.append(float(t))
            prev = None
    return ts

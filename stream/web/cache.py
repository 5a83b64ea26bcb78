"""Bounded bookkeeping of what the snapshot feed brought: each user's latest and recent
snapshots, and how far each user's distribution moved lately."""

from __future__ import annotations

import time
from collections import Counter, OrderedDict, deque
from collections.abc import Mapping


def compact(snapshot: Mapping) -> dict:
    """The part of a snapshot the heatmap needs (what the cache keeps per past snapshot).

    >>> compact({"version": 3, "ts": 1.0, "distribution": {"a": 1.0}, "drift": True, "x": 0})
    {'version': 3, 'ts': 1.0, 'emitted_at': None, 'distribution': {'a': 1.0}, 'drift': True}
    """
    return {
        "version": snapshot.get("version"),
        "ts": snapshot.get("ts"),
        "emitted_at": snapshot.get("emitted_at"),
        "distribution": dict(snapshot.get("distribution") or {}),
        "drift": bool(snapshot.get("drift")),
    }


class SnapshotCache:
    """The latest snapshot and the last ``per_user`` compact ones of the last ``max_users``
    users seen (least recently used users are dropped).

    Parameters
    ----------
    max_users
        Users kept; adding one more drops the least recently added or read.
    per_user
        Past snapshots kept per user (for the heatmap).

    Examples
    --------
    >>> cache = SnapshotCache(max_users=2, per_user=3)
    >>> for v in range(1, 6):
    ...     _ = cache.add({"user_id": "a", "version": v, "distribution": {"x": 1.0}})
    >>> [h["version"] for h in cache.history("a")], cache.latest("a")["version"]
    ([3, 4, 5], 5)
    >>> _ = cache.add({"user_id": "b", "version": 1, "distribution": {}})
    >>> _ = cache.add({"user_id": "c", "version": 1, "distribution": {}})
    >>> sorted(cache), cache.latest("a") is None
    (['b', 'c'], True)
    """

    def __init__(self, max_users: int = 2000, per_user: int = 40):
        self.max_users = max_users
        self.per_user = per_user
        self._users: OrderedDict[str, tuple[dict, deque]] = OrderedDict()

    def add(self, snapshot: Mapping) -> dict | None:
        """Keep ``snapshot`` as its user's latest; return the previous latest (or None)."""
        uid = str(snapshot["user_id"])
        entry = self._users.get(uid)
        previous = entry[0] if entry else None
        history = entry[1] if entry else deque(maxlen=self.per_user)
        item = compact(snapshot)
        if history and history[-1]["version"] == item["version"]:
            history[-1] = item  # the same state published again (trailing emit, rebalance)
        else:
            history.append(item)
        self._users[uid] = (dict(snapshot), history)
        self._users.move_to_end(uid)
        while len(self._users) > self.max_users:
            self._users.popitem(last=False)
        return previous

    def latest(self, uid: str) -> dict | None:
        entry = self._users.get(uid)
        if entry is None:
            return None
        self._users.move_to_end(uid)
        return entry[0]

    def history(self, uid: str) -> list[dict]:
        entry = self._users.get(uid)
        return list(entry[1]) if entry else []

    def forget(self, uid: str) -> None:
        self._users.pop(uid, None)

    def __len__(self) -> int:
        return len(self._users)

    def __iter__(self):
        return iter(list(self._users))


class ChangeLog:
    """How much each user's distribution moved (total variation) over the last ``window_s``.

    Examples
    --------
    >>> changes = ChangeLog(window_s=60.0)
    >>> changes.record("a", 0.1, now=0.0); changes.record("b", 0.5, now=1.0)
    >>> changes.record("a", 0.2, now=2.0)
    >>> [(c["user_id"], round(c["moved"], 2), c["snapshots"]) for c in changes.top(2, now=3.0)]
    [('b', 0.5, 1), ('a', 0.3, 2)]
    >>> changes.active(now=61.5)
    1
    """

    def __init__(self, window_s: float = 60.0, max_entries: int = 50_000):
        self.window_s = window_s
        self._entries: deque[tuple[float, str, float]] = deque(maxlen=max_entries)

    def record(self, uid: str, moved: float, now: float | None = None) -> None:
        self._entries.append((time.monotonic() if now is None else now, uid, moved))

    def _prune(self, now: float) -> None:
        while self._entries and self._entries[0][0] < now - self.window_s:
            self._entries.popleft()

    def top(self, n: int = 10, now: float | None = None) -> list[dict]:
        """The ``n`` users who moved most (summed total variation, > 0), largest first."""
        self._prune(time.monotonic() if now is None else now)
        moved: Counter = Counter()
        count: Counter = Counter()
        for _, uid, tv in self._entries:
            moved[uid] += tv
            count[uid] += 1
        ranked = sorted((u for u in moved if moved[u] > 0), key=lambda u: (-moved[u], u))[:n]
        return [{"user_id": u, "moved": moved[u], "snapshots": count[u]} for u in ranked]

    def active(self, now: float | None = None) -> int:
        """Distinct users with a snapshot in the window."""
        self._prune(time.monotonic() if now is None else now)
        return len({uid for _, uid, _ in self._entries})

"""Snapshots published later: trailing ones under the emission policy, held ones after a
recovery.

Under the emission policy (``INTEREST_MIN_INTERVAL_S``) a user whose snapshot was published
less than min-interval ago is owed one at ``last publish + min-interval``. The worker checks
what is due after every batch and on a short timer, so the check must not scan every owed
user: a heap keyed by the due time, with entries of users published (or forgotten) since left
in place and skipped when they come up.

After a recovery the changelog lags what the partition's previous owner published by up to a
commit window, and the input is replayed from the committed offsets: publishing then would
take users back in time. So every snapshot is held until the replay has caught up.
"""

from __future__ import annotations

import heapq
import logging
import math
import time
from collections.abc import Callable, Iterable

log = logging.getLogger(__name__)

CATCH_UP_TIMEOUT_S = 15.0  # held snapshots go out after this long even if not caught up


class TrailingSnapshots:
    """Users owed a snapshot, each at the time it was first owed.

    >>> t = TrailingSnapshots()
    >>> t.owe("u", 2.0); t.owe("v", 1.0); t.owe("u", 3.0)  # u stays owed at 2.0, the earlier
    >>> t.due(1.5), len(t)
    (['v'], 1)
    >>> t.settle("u")  # published with a batch before it fell due
    >>> t.due(9.0), len(t)
    ([], 0)
    >>> t.owe("u", 4.0); t.owe("w", 4.0); t.due(3.9), t.due(4.0)  # due at 4.0: out at 4.0
    ([], ['u', 'w'])
    """

    def __init__(self) -> None:
        self._at: dict[str, float] = {}
        self._queue: list[tuple[float, str]] = []  # (due, user); stale once settled

    def owe(self, uid: str, at: float) -> None:
        """``uid`` is owed a snapshot at ``at``, unless it is owed one earlier already."""
        if at < self._at.get(uid, math.inf):
            self._at[uid] = at
            heapq.heappush(self._queue, (at, uid))

    def settle(self, uid: str) -> None:
        """``uid``'s snapshot went out (or the user is gone): nothing is owed."""
        self._at.pop(uid, None)

    def due(self, now: float) -> list[str]:
        """The users whose snapshot is due at ``now``, earliest first; they are settled."""
        out: list[str] = []
        queue, at = self._queue, self._at
        while queue and queue[0][0] <= now:
            when, uid = heapq.heappop(queue)
            if at.get(uid) == when:
                del at[uid]
                out.append(uid)
        return out

    def __len__(self) -> int:
        return len(self._at)


class HeldSnapshots:
    """Users whose snapshots are held while a recovery's replay catches up with the input.

    >>> held = HeldSnapshots()
    >>> held.hold(["u", "v"]); held.active, held.release(lambda: False)  # still behind
    (True, [])
    >>> held.add(["w"]); held.discard("v")  # touched by the replay; forgotten
    >>> sorted(held.release(lambda: True)), held.active
    (['u', 'w'], False)
    """

    def __init__(self) -> None:
        self._users: set[str] = set()
        self._since: float | None = None

    @property
    def active(self) -> bool:
        """Whether snapshots are being held (a replay is catching up)."""
        return self._since is not None

    def hold(self, users: Iterable[str]) -> None:
        """A recovery: hold ``users``' snapshots (the recovered ones), from now."""
        users = list(users)
        if users:
            self._users.update(users)
            self._since = time.monotonic()

    def add(self, users: Iterable[str]) -> None:
        """Hold these too (the users the replay touches)."""
        self._users.update(users)

    def discard(self, uid: str) -> None:
        self._users.discard(uid)

    def release(self, caught_up: Callable[[], bool]) -> list[str]:
        """The held users, once ``caught_up()`` or after ``CATCH_UP_TIMEOUT_S``; else none."""
        if self._since is None:
            return []
        waited = time.monotonic() - self._since
        done = caught_up()
        if waited < CATCH_UP_TIMEOUT_S and not done:
            return []
        log.info(
            "publishing %d held snapshots %.1f s after recovery (%s)",
            len(self._users),
            waited,
            "caught up" if done else "catch-up timeout",
        )
        users, self._users, self._since = list(self._users), set(), None
        return users

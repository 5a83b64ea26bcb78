"""What ``make stream-demo`` shows: the demo's state and its live terminal view (``rich``).

``DemoState`` gathers what the demo sees (replay progress, the latest snapshot of each user,
the interest shifts, the worker's counters); ``render`` draws it. Neither touches Kafka.
"""

from __future__ import annotations

import time
import zlib
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from models.schema import OTHER, POPULATION_PREFIX

# Okabe-Ito, as on the web dashboard: distinguishable with every kind of colour blindness.
PALETTE = ("#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7")


def colour(category: str) -> str:
    """A stable colour per category (the same in every run)."""
    return PALETTE[zlib.crc32(category.encode()) % len(PALETTE)]


def top_interests(snapshot: Mapping, n: int = 3) -> list[tuple[str, float]]:
    """The ``n`` most probable named categories of a snapshot, most probable first."""
    dist = snapshot.get("distribution") or {}
    named = [(c, p) for c, p in dist.items() if c != OTHER]
    return sorted(named, key=lambda cp: (-cp[1], cp[0]))[:n]


@dataclass
class Shift:
    """A user whose snapshot reported drift: the interest that rose most since their previous
    snapshot and the one that fell most, each as (category, before, after).

    Examples
    --------
    >>> shift = Shift(0.0, "u1", *biggest_moves({"Drama": 0.6, "Comedy": 0.3},
    ...                                        {"Drama": 0.2, "Comedy": 0.7}))
    >>> shift.rose, shift.fell
    (('Comedy', 0.3, 0.7), ('Drama', 0.6, 0.2))
    >>> # ``_other`` is no interest: its fall is not reported, so nothing fell here
    >>> Shift(0.0, "u2", *biggest_moves({"Drama": 0.5, "_other": 0.5},
    ...                                 {"Drama": 0.5, "_other": 0.1, "Comedy": 0.4}))
    Shift(at=0.0, user_id='u2', rose=('Comedy', 0.0, 0.4), fell=None)
    """

    at: float
    user_id: str
    rose: tuple[str, float, float] | None
    fell: tuple[str, float, float] | None


def biggest_moves(before: Mapping, after: Mapping) -> tuple[tuple | None, tuple | None]:
    """(category that rose most, category that fell most) between two distributions.

    >>> biggest_moves({"a": 0.6, "b": 0.3}, {"a": 0.2, "b": 0.3, "c": 0.4})
    (('c', 0.0, 0.4), ('a', 0.6, 0.2))
    """
    moves = sorted(
        (after.get(c, 0.0) - before.get(c, 0.0), c) for c in set(before) | set(after) if c != OTHER
    )
    if not moves:
        return None, None
    (down, fell), (up, rose) = moves[0], moves[-1]
    as_move = lambda c: (c, before.get(c, 0.0), after.get(c, 0.0))  # noqa: E731
    return (as_move(rose) if up > 0 else None), (as_move(fell) if down < 0 else None)


@dataclass
class DemoState:
    """Everything the view draws, fed by the demo's producer, subscriber and metrics poller.

    Examples
    --------
    >>> state = DemoState(total=3, label="example")
    >>> state.add({"user_id": "u1", "n_events": 2, "drift": False,
    ...            "distribution": {"Drama": 0.6, "Comedy": 0.3, "_other": 0.1}})
    >>> state.add({"user_id": "u1", "n_events": 3, "drift": True,
    ...            "distribution": {"Comedy": 0.7, "Drama": 0.2, "_other": 0.1}})
    >>> [(s.user_id, s.rose, s.fell) for s in state.shifts]
    [('u1', ('Comedy', 0.3, 0.7), ('Drama', 0.6, 0.2))]
    >>> [u["user_id"] for u in state.most_active(5)]
    ['u1']
    """

    total: int
    label: str
    url: str = ""
    sent: int = 0
    bad_sent: int = 0
    snapshots: int = 0
    done: bool = False
    worker: dict[str, float] = field(default_factory=dict)
    dlq_by_reason: dict[str, float] = field(default_factory=dict)
    latest: dict[str, dict] = field(default_factory=dict)
    shifts: deque = field(default_factory=lambda: deque(maxlen=12))
    started: float = field(default_factory=time.monotonic)
    _rate_samples: deque = field(default_factory=lambda: deque(maxlen=40))

    def add(self, snapshot: Mapping) -> None:
        """A snapshot (or tombstone) from the snapshot topic."""
        uid = str(snapshot.get("user_id", ""))
        if uid.startswith(POPULATION_PREFIX):
            return
        self.snapshots += 1
        if snapshot.get("deleted"):
            self.latest.pop(uid, None)
            return
        before = (self.latest.get(uid) or {}).get("distribution") or {}
        self.latest[uid] = dict(snapshot)
        if snapshot.get("drift"):
            rose, fell = biggest_moves(before, snapshot.get("distribution") or {})
            self.shifts.appendleft(Shift(time.time(), uid, rose, fell))

    def most_active(self, n: int) -> list[dict]:
        """The ``n`` users with the most events applied (ties: the user id)."""
        ranked = sorted(self.latest.values(), key=lambda s: (-s.get("n_events", 0), s["user_id"]))
        return ranked[:n]

    def replay_rate(self, now: float | None = None) -> float:
        """Events sent per second over the last ~10 s."""
        now = time.monotonic() if now is None else now
        self._rate_samples.append((now, self.sent))
        while len(self._rate_samples) > 2 and now - self._rate_samples[0][0] > 10:
            self._rate_samples.popleft()
        (t0, n0), (t1, n1) = self._rate_samples[0], self._rate_samples[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0

    @property
    def dlq(self) -> int:
        return int(sum(self.dlq_by_reason.values()))


def bars(interests: list[tuple[str, float]], width: int = 18) -> Text:
    """One line per interest: a coloured bar, the probability and the category."""
    text = Text()
    for i, (cat, p) in enumerate(interests):
        filled = max(1, round(p * width))
        if i:
            text.append("\n")
        text.append("█" * filled, style=colour(cat))
        text.append("░" * (width - filled), style="grey23")
        text.append(f" {p:4.0%} ", style="bold")
        text.append(cat[:28])
    return text


def _progress(state: DemoState, width: int = 40) -> Text:
    frac = state.sent / state.total if state.total else 0.0
    filled = int(frac * width)
    text = Text("replay ", style="bold")
    text.append("━" * filled, style="#009E73")
    text.append("─" * (width - filled), style="grey42")
    text.append(f" {state.sent:,}/{state.total:,} ({frac:.0%})  {state.replay_rate():,.0f} ev/s")
    if state.done:
        text.append("  finished", style="bold #009E73")
    return text


def _counters(state: DemoState) -> Text:
    w = state.worker
    text = Text()
    text.append("worker ", style="bold")
    text.append(f"{w.get('interest_events_per_second', 0):,.0f} ev/s  ")
    text.append(f"applied {w.get('interest_events_applied_total', 0):,.0f}  ")
    text.append(f"lag {w.get('interest_consumer_lag', 0):,.0f}  ")
    text.append(f"snapshots {state.snapshots:,}  users {len(state.latest):,}  ")
    text.append("DLQ ", style="bold")
    text.append(f"{state.dlq:,}", style="bold #D55E00" if state.dlq else "")
    reasons = sorted(((r, n) for r, n in state.dlq_by_reason.items() if n), key=lambda x: -x[1])
    if reasons:
        text.append(" (" + ", ".join(f"{r} {n:.0f}" for r, n in reasons[:3]) + ")")
    return text


def _active_table(state: DemoState, n: int) -> Table:
    table = Table(expand=True, box=None, padding=(0, 1), show_edge=False)
    table.add_column("user", style="bold", no_wrap=True)
    table.add_column("events", justify="right")
    table.add_column("top interests", ratio=1)
    for snap in state.most_active(n):
        drift = " ⚡" if snap.get("drift") else ""
        table.add_row(
            f"{snap['user_id']}{drift}", f"{snap.get('n_events', 0):,}", bars(top_interests(snap))
        )
    return table


def _shifts_table(state: DemoState) -> Table:
    table = Table(expand=True, box=None, padding=(0, 1), show_edge=False)
    table.add_column("when", style="dim", no_wrap=True)
    table.add_column("user", style="bold", no_wrap=True)
    table.add_column("shift", ratio=1)
    for s in state.shifts:
        shift = Text()
        if s.rose:
            shift.append(f"▲ {s.rose[0][:18]} ", style=f"bold {colour(s.rose[0])}")
            shift.append(f"{s.rose[1]:.0%}→{s.rose[2]:.0%}  ")
        if s.fell:
            shift.append(f"▼ {s.fell[0][:18]} ", style=colour(s.fell[0]))
            shift.append(f"{s.fell[1]:.0%}→{s.fell[2]:.0%}", style="dim")
        table.add_row(time.strftime("%H:%M:%S", time.localtime(s.at)), s.user_id, shift)
    if not state.shifts:
        table.add_row("", "", Text("no drift detected yet", style="dim"))
    return table


def render(state: DemoState, users: int = 8) -> Group:
    """The whole screen: header, progress, counters, active users and interest shifts."""
    header = Text()
    header.append("interest-tracker ", style="bold #56B4E9")
    header.append(f"live demo · {state.label}")
    header.append("   dashboard ", style="dim")
    header.append(state.url, style="underline #56B4E9")
    header.append("   Ctrl-C stops everything", style="dim")
    grid = Table.grid(expand=True)
    grid.add_column(ratio=3)
    grid.add_column(ratio=2)
    grid.add_row(
        Panel(_active_table(state, users), title="most active users", border_style="#0072B2"),
        Panel(_shifts_table(state), title="interests that just shifted", border_style="#CC79A7"),
    )
    return Group(header, _progress(state), _counters(state), grid)


def parse_metrics(text: str) -> tuple[dict[str, float], dict[str, float]]:
    """The worker's ``/metrics`` text -> (unlabelled samples, DLQ count by reason).

    >>> text = 'x 2\\ninterest_dlq_total{reason="late"} 3\\n'
    >>> parse_metrics("# HELP x X\\n" + text + 'interest_consumer_lag{partition="0"} 4\\n')
    ({'x': 2.0, 'interest_consumer_lag': 4.0}, {'late': 3.0})
    """
    scalars: dict[str, float] = {}
    dlq: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        try:
            number = float(value)
        except ValueError:
            continue
        if name.startswith("interest_dlq_total{"):
            reason = name.split('reason="', 1)[-1].split('"', 1)[0]
            dlq[reason] = number
        elif name.startswith("interest_consumer_lag{"):  # per partition: the worker's total
            scalars["interest_consumer_lag"] = scalars.get("interest_consumer_lag", 0) + number
        elif "{" not in name:
            scalars[name] = number
    return scalars, dlq

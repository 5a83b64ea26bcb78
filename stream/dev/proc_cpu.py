"""CPU seconds of a process's threads and of its children, and the time they waited for a
core, read from ``/proc`` (Linux).

For the benchmarks: the CPU a worker spends per event is steadier than its wall-clock rate on a
shared machine, where the broker and the load generator take turns on the same cores; how long
the worker waited for a core says how much of a run's latency was that turn-taking.
"""

from __future__ import annotations

import os
from pathlib import Path

from stream.web.metrics import thread_schedstat


def _stat_fields(path: str) -> list[str]:
    # The command name (field 2) may hold spaces and parentheses: split after its last ")".
    return Path(path).read_text().rsplit(")", 1)[1].split()


def _cpu_seconds(fields: list[str]) -> float:
    """utime + stime of a ``stat`` line's fields (after the command name), in seconds."""
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def thread_cpu_seconds(pid: int) -> dict[int, float]:
    """CPU seconds (user + system) of each thread of ``pid``."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            fields = _stat_fields(f"/proc/{pid}/task/{tid}/stat")
        except FileNotFoundError:  # the thread ended
            continue
        out[int(tid)] = _cpu_seconds(fields)
    return out


def children_cpu_seconds(pid: int) -> dict[int, float]:
    """CPU seconds of each live child process of ``pid`` (snapshot builders, a scorer)."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = _stat_fields(f"/proc/{entry}/stat")
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[1]) == pid:
            out[int(entry)] = _cpu_seconds(fields)
    return out


def process_cpu_seconds(pid: int) -> float:
    """CPU seconds of ``pid`` and its live children together (what it has cost so far)."""
    own = _cpu_seconds(_stat_fields(f"/proc/{pid}/stat"))
    return own + sum(children_cpu_seconds(pid).values())


def core_waits_seconds(pid: int) -> tuple[float | None, float | None]:
    """Seconds waited for a core so far: by the main thread of ``pid``, runnable (the
    scheduler's ``schedstat``), and by some task on the machine (the kernel's pressure stall
    information, ``/proc/pressure/cpu``'s ``some`` total); None where the kernel keeps either
    not.

    >>> waited, pressure = core_waits_seconds(os.getpid())
    >>> waited is None or waited >= 0.0, pressure is None or pressure >= 0.0
    (True, True)
    """
    times = thread_schedstat(pid)
    return None if times is None else times[1], _cpu_pressure_seconds()


def _cpu_pressure_seconds() -> float | None:
    try:
        some = Path("/proc/pressure/cpu").read_text().splitlines()[0]
    except (OSError, IndexError):
        return None
    fields = dict(f.split("=", 1) for f in some.split()[1:])
    return int(fields["total"]) / 1e6 if "total" in fields else None

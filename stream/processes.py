"""What every helper process of a worker (snapshot builders, the scorer) runs first."""

from __future__ import annotations

import os
import threading
import time

PARENT_CHECK_S = 1.0
MAX_NICE = 19  # the lowest CPU priority of Unix's normal scheduling
IDLE = "idle"  # Linux's SCHED_IDLE: below every niceness


def exit_with_parent(parent: int) -> None:
    """End this process within ``PARENT_CHECK_S`` of the death of ``parent`` (the worker's
    pid, passed in: it may die before this runs), a ``kill -9`` included: a pool's queues
    never report it to the process reading them."""
    if os.getppid() != parent:
        os._exit(0)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_S)
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def lower_priority(nice: int | str) -> None:
    """Run this process (every thread it has now and those it starts) below the worker:
    ``IDLE`` puts it in Linux's idle scheduling class, where a waking worker thread takes the
    CPU from it at once (with niceness 10 or 19, a flat-out helper still took a third of a
    2-core worker's CPU: docs/RESULTS.md); elsewhere ``IDLE`` is niceness ``MAX_NICE``."""
    if nice == IDLE and hasattr(os, "SCHED_IDLE"):
        for tid in _threads():
            os.sched_setscheduler(tid, os.SCHED_IDLE, os.sched_param(0))
        return
    niceness = MAX_NICE if nice == IDLE else int(nice)
    if niceness:
        for tid in _threads():
            os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + niceness)


def _threads() -> list[int]:
    """This process's thread ids (Linux sets priorities per thread), else the process."""
    try:
        return [int(tid) for tid in os.listdir("/proc/self/task")]
    except OSError:
        return [0]

"""py-spy on a worker: a raw profile of a run, and its main thread's functions by share.

A profile covers the run from ``profile`` to ``stop_profile``; ``summarize`` reads it back:
the functions the main thread's busy samples were under (inclusive) and in (its own).
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

PROFILE_MAX_S = 120  # a profile covers the whole run, up to this long


def profile(pid: int, out: Path) -> subprocess.Popen:
    """py-spy on ``pid`` from now until ``stop_profile`` (at most ``PROFILE_MAX_S``): a fixed
    window after a delay missed most of a run that a fast hour finished in 12 s."""
    spy = Path(sys.executable).with_name("py-spy")
    cmd = [str(spy), "record", "-r", "50", "-f", "raw", "-n", "-d", str(PROFILE_MAX_S)]
    return subprocess.Popen(
        [*cmd, "-p", str(pid), "-o", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def stop_profile(spy: subprocess.Popen) -> None:
    """Stop py-spy as Ctrl-C does: it writes what it sampled."""
    if spy.poll() is None:
        spy.send_signal(signal.SIGINT)
    try:
        spy.wait(30)
    except subprocess.TimeoutExpired:
        spy.kill()


IDLE_FRAMES = ("epoll_wait", "select_epoll_poll", "pthread_cond_timedwait")


def summarize(raw: Path, top: int = 25, own: bool = False) -> list[tuple[str, float]]:
    r"""The functions of a py-spy raw profile by share of the main thread's busy samples
    (samples whose stack waits in epoll or on a condition are idle): inclusive, or with
    ``own`` the function each sample was in.

    >>> import tempfile
    >>> raw = Path(tempfile.mkdtemp()) / "w.txt"
    >>> _ = raw.write_text("main (stream/cli/x.py:1);a (m.py:2);b (m.py:3) 3\n"
    ...     "main (stream/cli/x.py:1);a (m.py:2) 1\n"
    ...     "main (stream/cli/x.py:1);c (m.py:4) 1\n"
    ...     "main (stream/cli/x.py:1);epoll_wait (libc) 4\n"
    ...     "thread (t.py:1);c (m.py:9) 5\n")
    >>> summarize(raw), summarize(raw, own=True)
    ([('a', 0.8), ('b', 0.6), ('c', 0.2)], [('b', 0.6), ('a', 0.2), ('c', 0.2)])
    """
    shares: dict[str, int] = {}
    busy = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if "stream/cli" not in stack or any(f in stack for f in IDLE_FRAMES):
            continue  # another thread, or the main thread waiting
        n = int(count)
        busy += n
        frames = [frame.split(" (")[0] for frame in stack.split(";")]
        for name in {frames[-1]} if own else set(frames):
            shares[name] = shares.get(name, 0) + n
    ranked = sorted(shares.items(), key=lambda kv: -kv[1])
    return [(name, n / busy) for name, n in ranked if own or n < busy][:top]

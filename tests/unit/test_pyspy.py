"""``stream.dev.pyspy``'s profile summary (shares of the main thread's busy samples) and the
``/proc`` CPU readers that compare and the bench use."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from stream.dev.proc_cpu import process_cpu_seconds
from stream.dev.pyspy import summarize

pytestmark = pytest.mark.unit

MAIN = "main (stream/cli/entry.py:9);run (faust/worker.py:1)"


def test_summary_counts_the_main_threads_busy_samples_only(tmp_path: Path):
    raw = tmp_path / "prof.txt"
    raw.write_text(
        "\n".join(
            [
                f"{MAIN};handle (stream/app.py:1);learn (models/user.py:2) 6",
                f"{MAIN};handle (stream/app.py:1);snapshot (models/tracker.py:3) 2",
                f"{MAIN};select (selectors.py:1);epoll_wait (libc.so.6) 50",  # idle
                "Thread._bootstrap (threading.py:1);fetch (aiokafka/fetcher.py:1) 40",  # other
            ]
        )
    )
    shares = dict(summarize(raw))
    assert shares == {"learn": 0.75, "snapshot": 0.25}  # main, run and handle are in all 8


def test_process_cpu_counts_a_busy_childs_seconds():
    busy = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.6: pass\n"
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import subprocess, sys; subprocess.run([sys.executable, '-c', {busy!r}])",
        ]
    )
    seen = 0.0
    deadline = time.monotonic() + 30
    while parent.poll() is None and time.monotonic() < deadline:  # read while the child lives
        seen = max(seen, process_cpu_seconds(parent.pid))
        time.sleep(0.05)
    parent.wait()
    assert seen >= 0.3  # the parent itself only waits: this is the child's CPU

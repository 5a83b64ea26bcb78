"""The profile summary of ``stream.dev.compare``: shares of the main thread's busy samples."""

from __future__ import annotations

from pathlib import Path

import pytest

from stream.dev.compare import summarize

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

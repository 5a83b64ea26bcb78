"""The terminal demo without a broker: what its view shows, the worker counters it reads, and
how it picks and checks its data."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from stream.app import create_app
from stream.dev.demo import main, parse_args, source
from stream.dev.demo_view import DemoState, parse_metrics, render
from stream.settings import Settings

pytestmark = pytest.mark.unit


def snap(uid: str, n: int, dist: dict[str, float], drift: bool = False) -> dict:
    return {"user_id": uid, "n_events": n, "version": n, "distribution": dist, "drift": drift}


def screen(state: DemoState, width: int = 140) -> str:
    console = Console(width=width, record=True, color_system=None, file=io.StringIO())
    console.print(render(state))
    return console.export_text()


def test_the_view_shows_progress_counters_active_users_and_shifts():
    state = DemoState(total=200, label="ratings.csv (movielens)", url="http://127.0.0.1:6066/")
    state.sent = 50
    state.worker = {"interest_events_per_second": 398.0, "interest_events_applied_total": 49}
    state.dlq_by_reason = {"json-unmarked": 2.0, "malformed": 1.0, "late": 0.0}
    state.add(snap("7", 30, {"Drama": 0.5, "Comedy": 0.3, "Thriller": 0.1, "_other": 0.1}))
    state.add(snap("12", 4, {"Horror": 0.9, "_other": 0.1}))
    state.add(snap("7", 31, {"Comedy": 0.6, "Drama": 0.3, "_other": 0.1}, drift=True))
    state.add({"user_id": "__population__/p0", "distribution": {"Drama": 1.0}})
    text = screen(state)
    assert "50/200 (25%)" in text and "398 ev/s" in text and "lag 0" in text
    assert "DLQ 3 (json-unmarked 2, malformed 1)" in text
    assert "http://127.0.0.1:6066/" in text and "Ctrl-C" in text
    assert text.index("Comedy") < text.index("Horror")  # the busiest user is listed first
    assert " 60% Comedy" in text and " 90% Horror" in text
    assert "▲ Comedy 30%→60%  ▼ Drama 50%→30%" in text
    assert "users 2" in text  # the population snapshot is not a user


def test_a_tombstone_removes_the_user_and_a_quiet_start_says_so():
    state = DemoState(total=0, label="x")
    assert "no drift detected yet" in screen(state)
    state.add(snap("u", 3, {"a": 1.0}))
    state.add({"user_id": "u", "deleted": True})
    assert state.most_active(5) == []


def test_the_counters_come_from_the_workers_metrics_text():
    _, pipe = create_app(Settings(bootstrap="127.0.0.1:1", app_id="demo-test"))
    pipe.counters.applied = 42
    pipe.counters.dlq["unknown-event-type"] = 5
    scalars, dlq = parse_metrics(pipe.dashboard.metrics())
    assert scalars["interest_events_applied_total"] == 42
    assert dlq["unknown-event-type"] == 5 and dlq["late"] == 0
    state = DemoState(total=1, label="x", dlq_by_reason=dlq)
    assert state.dlq == 5


def test_replay_rate_is_events_per_second_over_the_window():
    state = DemoState(total=1000, label="x")
    assert state.replay_rate(now=100.0) == 0.0
    state.sent = 400
    assert state.replay_rate(now=101.0) == pytest.approx(400.0)
    state.sent = 4400
    assert state.replay_rate(now=120.0) == pytest.approx(4000 / 19, rel=0.01)


def test_datasets_resolve_to_the_shared_files():
    path, fmt, items = source(parse_args(["--dataset", "movielens", "--data-dir", "d"]))
    assert (path, fmt, items) == (
        Path("d/ml-latest-small/ratings.csv"),
        "movielens",
        Path("d/ml-latest-small/movies.csv"),
    )
    path, fmt, items = source(parse_args([]))
    assert path.name == "UserBehavior.csv" and fmt == "taobao" and items is None


def test_a_missing_data_file_fails_on_one_line_before_starting_anything(tmp_path, capsys):
    assert main(["--dataset", "movielens", "--data-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("interest-tracker demo: error: no such file:") and err.count("\n") == 1

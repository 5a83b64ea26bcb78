"""The bench's Markdown tables, printed from results that went through its JSON file."""

from __future__ import annotations

import json

import pytest

from stream.dev.bench_table import print_table

pytestmark = pytest.mark.unit


def _results() -> dict:
    workload = {
        "bare_consumer_per_s": 80_000.0,
        "worker_per_s": 4_000.0,
        "worker_cpu_us": 250.4,
        "worker_vs_bare": 0.05,
        "worker_vs_bare_runs": [0.05, 0.046, 0.053],
        "scorer_ratio": 0.95,
        "scorer_ratios": [0.95, 0.81, 1.02],
        "scorer_users_per_s": 812.4,
        "scorer_ratio_nice0": 0.7,
        "worker_min_interval_0_per_s": 6_000.0,
        "worker_min_interval_0_snapshots_per_event": 0.4123,
    }
    return {
        "machine": "vm",
        "python": "3.11",
        "date": "today",
        "workloads": {"100k users × 3": workload},
        "memory": {
            "memory://": {
                "users": 100_000,
                "rss_at_users": {100_000: 2**28},
                "idle_rss": 2**26,
                "bytes_per_user": 1_000.0,
                "marginal_bytes_per_user": 500.0,
                "recovery": {"recovery_s": None, "process_to_ready_s": 3.0},
            }
        },
        "catalog": {
            "users": 2_000,
            "items": 100_000,
            "pairs_cpu_ratio": [1.08, 0.97, 1.12],
            "with_categories_cpu_us": 100.0,
            "through_catalog_cpu_us": 108.0,
            "added_cpu": 0.08,
            "with_categories_per_s": 9_000.0,
            "through_catalog_per_s": 8_000.0,
            "policy_with_categories_per_s": 7_000.0,
            "policy_through_catalog_per_s": 6_000.0,
            "ready_s": 4.0,
            "ready_with_catalog_s": 5.5,
        },
    }


def test_tables_print_from_the_json_file(capsys):
    print_table(json.loads(json.dumps(_results())))  # JSON makes the users' counts strings
    out = capsys.readouterr().out
    assert (
        "| `interest-tracker worker` (dashboard on, default emission; the median pair's) | 4,000"
        in out
    )
    assert "| worker / bare consumer: the median of alternating pairs | 5.0% |" in out
    assert "| the same, each pair | 5.0% / 4.6% / 5.3% |" in out
    assert "| CPU per event: the worker (default emission) | 250 µs |" in out
    assert "| CPU per event: the do-nothing agent | — |" in out  # a row the run did not measure
    assert "| worker, min-interval 0 | 6,000 ev/s |" in out
    assert "| the same, snapshots an event (one a user a batch: behind its input" in out
    assert "many of a user's events) | 0.41 |" in out
    assert "| with the scorer / without: the median of alternating pairs | 95% |" in out
    assert "| the same, each pair | 95.0% / 81.0% / 102.0% |" in out
    assert "| users the scorer scored meanwhile | 812/s |" in out
    assert (
        "| with the scorer at its priority / without (one run; the median round's without) | 70%"
        in out
    )
    assert "(100,000: 256) | idle 64 |" in out and "| ? (process start → ready 3.0 s) |" in out
    assert "100.0 / 108.0 µs (+8%)" in out and "the median of 3 alternating pairs" in out
    assert "| the same, each pair's added CPU | +8% / -3% / +12% |" in out
    assert "| the median pair, events/s | 9,000 / 8,000 ev/s |" in out


def test_latency_rows_show_the_split_at_the_build_when_measured(capsys):
    results = _results()
    base = {"rate": 17_000.0, "events": 340_000, "snapshots": 300_000}
    results["latency"] = {
        "min-interval 0": {
            **base,
            **{"p50_ms": 60.0, "p95_ms": 180.0, "p99_ms": 250.0},
            **{"built_p50_ms": 35.0, "built_p99_ms": 140.0},
            **{"after_p50_ms": 20.0, "after_p99_ms": 110.0},
            **{"events_measured": 339_000, "event_p50_ms": 70.0, "event_p95_ms": 210.0},
            "event_p99_ms": 300.0,
            **{"main_thread_share": 0.84, "main_thread_us_per_event": 49.4},
            "worker_us_per_event": 53.6,
        },
        "an older run": {**base, "p50_ms": 60.0, "p95_ms": 180.0, "p99_ms": 250.0},
    }
    print_table(json.loads(json.dumps(results)))
    out = capsys.readouterr().out
    assert (
        "| event→snapshot at 17,000 ev/s, min-interval 0: p50 / p95 / p99 | 60 / 180 / 250 ms "
        "(300,000 snapshots; to the build p50 / p99 35 / 140 ms, after it 20 / 110 ms) |"
    ) in out
    assert (
        "| the same, every event to the first snapshot that counts it: p50 / p95 / p99 | "
        "70 / 210 / 300 ms (339,000 of 340,000 events) |"
    ) in out
    assert "an older run: p50 / p95 / p99 | 60 / 180 / 250 ms (300,000 snapshots) |" in out
    assert out.count("every event to the first snapshot") == 1  # not for the older run
    assert (
        "| the same, the worker while the events were sent: its main thread's share of a "
        "core; µs an event, main thread / all threads | 84%; 49 / 54 µs (0.88 snapshots an "
        "event) |"
    ) in out
    assert out.count("the worker while the events were sent") == 1  # not measured before


def test_a_repeated_latency_row_shows_every_runs_p99_beside_the_median_run(capsys):
    from stream.dev.latency import median_run

    runs = [
        {"rate": 14_000.0, "events": 280_000, "snapshots": 270_000, "p50_ms": p / 3}
        | {"p95_ms": p / 1.2, "p99_ms": p, "event_p50_ms": p / 3, "event_p95_ms": p / 1.2}
        | {"event_p99_ms": p + 20, "events_measured": 279_000}
        | {"main_thread_waited_share": w, "cpu_pressure_share": 2 * w}
        for p, w in ((340.0, 0.07), (1_100.0, 0.31), (190.0, 0.02))
    ]
    results = _results()
    results["latency"] = {"min-interval 0": median_run(runs)}
    print_table(json.loads(json.dumps(results)))
    out = capsys.readouterr().out
    assert "min-interval 0: p50 / p95 / p99 | 113 / 283 / 340 ms" in out  # the median run
    assert (
        "| the same, each of 3 runs (the rows above: the median one), p99 every event / per "
        "snapshot (the main thread's wait for a core) | 360 / 340 ms (7%), 1120 / 1100 ms (31%), "
        "210 / 190 ms (2%) |"
    ) in out
    assert (  # the median run's waits
        "| the same, waiting for a core: the worker's main thread runnable, and some task on "
        "the machine, shares of the row | 7% / 14% |"
    ) in out


def test_the_broker_s_warm_up_is_reported_before_the_rows(capsys):
    results = _results()
    print_table(results)
    assert "warmed" not in capsys.readouterr().out  # a broker elsewhere: none was run
    results["broker_warmup_shares"] = [0.57, 0.45, 0.13]
    print_table(json.loads(json.dumps(results)))
    out = capsys.readouterr().out
    warmed = "The broker warmed first: 3 untimed worker passes, its share of a core 57% / 45% / 13%"
    assert warmed in out
    assert out.index("warmed first") < out.index("| consumer of the same topic |")

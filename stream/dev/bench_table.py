"""The Markdown tables ``python -m stream.dev.bench`` prints from its results."""

from __future__ import annotations

RATE = "{:,.0f} ev/s"


def _cell(row: dict, key: str, fmt) -> str:
    if key not in row:
        return "—"
    if isinstance(row[key], list):  # one ratio a run
        return fmt(f"{v:.1%}" for v in row[key])
    return fmt.format(row[key])


def print_table(r: dict) -> None:
    print(f"\n## Benchmark ({r['machine']}, Python {r['python']}, {r['date']})\n")
    shares = r.get("broker_warmup_shares")
    if shares:
        print(
            f"The broker warmed first: {len(shares)} untimed worker "
            + ("pass" if len(shares) == 1 else "passes")
            + ", its share of a core "
            + " / ".join(f"{s:.0%}" for s in shares)
            + " (`stream.dev.broker_warmup`).\n"
        )
    labels = list(r["workloads"])
    print("| consumer of the same topic | " + " | ".join(labels) + " |")
    print("|---|" + "---:|" * len(labels))
    rows = [
        (
            "bare aiokafka `getmany` + decode/validate (the median pair's)",
            "bare_consumer_per_s",
            RATE,
        ),
        ("Faust agent, `take_events(1000)`, does nothing", "noop_agent_per_s", RATE),
        (
            "`interest-tracker worker` (dashboard on, default emission; the median pair's)",
            "worker_per_s",
            RATE,
        ),
        ("worker / bare consumer: the median of alternating pairs", "worker_vs_bare", "{:.1%}"),
        ("the same, each pair", "worker_vs_bare_runs", " / ".join),
        ("CPU per event: the do-nothing agent", "noop_agent_cpu_us", "{:,.0f} µs"),
        ("CPU per event: the worker (default emission)", "worker_cpu_us", "{:,.0f} µs"),
        ("worker, min-interval 0", "worker_min_interval_0_per_s", RATE),
        (
            "the same, snapshots an event (one a user a batch: behind its input, a batch holds "
            "many of a user's events)",
            "worker_min_interval_0_snapshots_per_event",
            "{:.2f}",
        ),
        (
            "worker, default emission, no builder process (`INTEREST_SNAPSHOT_PROCESSES=0`)",
            "worker_in_loop_per_s",
            RATE,
        ),
        (
            "worker without the scorer, in the scorer's rounds (the median round)",
            "worker_without_scorer_per_s",
            RATE,
        ),
        (
            "worker with the scorer flat out, below the worker's priority (`INTEREST_SCORER_NICE`)",
            "worker_with_scorer_per_s",
            RATE,
        ),
        ("with the scorer / without: the median of alternating pairs", "scorer_ratio", "{:.0%}"),
        ("the same, each pair", "scorer_ratios", " / ".join),
        ("users the scorer scored meanwhile", "scorer_users_per_s", "{:,.0f}/s"),
        (
            "worker with the scorer flat out at its priority (`INTEREST_SCORER_NICE=0`)",
            "worker_with_scorer_nice0_per_s",
            RATE,
        ),
        (
            "with the scorer at its priority / without (one run; the median round's without)",
            "scorer_ratio_nice0",
            "{:.0%}",
        ),
        (
            "users the scorer scored meanwhile, at its priority",
            "scorer_users_nice0_per_s",
            "{:,.0f}/s",
        ),
        ("RSS per user (end − idle) / users", "rss_per_user", "{:,.0f} B"),
    ]
    for title, key, fmt in rows:
        cells = [_cell(r["workloads"][w], key, fmt) for w in labels]
        print(f"| {title} | " + " | ".join(cells) + " |")
    print("\n| measure | value |\n|---|---|")
    for policy, lat in r.get("latency", {}).items():
        print(
            f"| event→snapshot at {lat['rate']:,.0f} ev/s, {policy}: p50 / p95 / p99 | "
            f"{lat['p50_ms']:.0f} / {lat['p95_ms']:.0f} / {lat['p99_ms']:.0f} ms "
            f"({lat['snapshots']:,} snapshots{_split(lat)}) |"
        )
        if "event_p99_ms" in lat:
            print(
                f"| the same, every event to the first snapshot that counts it: p50 / p95 / p99 | "
                f"{lat['event_p50_ms']:.0f} / {lat['event_p95_ms']:.0f} / "
                f"{lat['event_p99_ms']:.0f} ms ({lat['events_measured']:,} of "
                f"{lat['events']:,} events) |"
            )
        if "main_thread_share" in lat:
            print(
                "| the same, the worker while the events were sent: its main thread's share of "
                f"a core; µs an event, main thread / all threads | {lat['main_thread_share']:.0%}"
                f"; {lat['main_thread_us_per_event']:.0f} / {lat['worker_us_per_event']:.0f} µs "
                f"({lat['snapshots'] / max(lat['events'], 1):.2f} snapshots an event) |"
            )
        if "main_thread_waited_share" in lat:
            print(
                "| the same, waiting for a core: the worker's main thread runnable, and some "
                f"task on the machine, shares of the row | {waits_cell(lat)} |"
            )
        if "runs_event_p99_ms" in lat:
            runs = len(lat["runs_event_p99_ms"])
            waited = lat.get("runs_main_thread_waited_share") or [None] * runs
            print(
                f"| the same, each of {runs} runs (the rows above: the median one), "
                "p99 every event / per snapshot (the main thread's wait for a core) | "
                + ", ".join(
                    f"{e:.0f} / {p:.0f} ms" + ("" if w is None else f" ({w:.0%})")
                    for e, p, w in zip(
                        lat["runs_event_p99_ms"], lat["runs_p99_ms"], waited, strict=True
                    )
                )
                + " |"
            )
    for store, m in r.get("memory", {}).items():
        waves = ", ".join(f"{int(u):,}: {b / 2**20:,.0f}" for u, b in m["rss_at_users"].items())
        print(
            f"| {store} RSS (MiB) as users grow, settled after each wave, dashboard feed off "
            f"({waves}) | idle {m['idle_rss'] / 2**20:,.0f} |"
        )
        print(
            f"| {store} RSS per user, 3 events each: (end − idle) / users; marginal over the "
            "second half | "
            f"{m['bytes_per_user']:,.0f} B; {m['marginal_bytes_per_user']:,.0f} B |"
        )
        rec = m["recovery"]
        seconds = f"{rec['recovery_s']:.1f} s" if rec["recovery_s"] is not None else "?"
        print(
            f"| {store} restart, {m['users']:,} users: recovery start → ready | {seconds} "
            f"(process start → ready {rec['process_to_ready_s']:.1f} s) |"
        )
    if "memory_history" in r:
        h = r["memory_history"]
        print(
            f"| RSS per user, 50-event history ({h['users']:,} users in {h['waves']} settled "
            "waves, dashboard feed off): (end − idle) / users; marginal over the second half "
            f"| {h['bytes_per_user']:,.0f} B; {h['marginal_bytes_per_user']:,.0f} B |"
        )
    if "catalog" in r:
        c = r["catalog"]
        pairs = c.get("pairs_cpu_ratio", [])  # runs before the pairs: one figure each
        how = f": the median of {len(pairs)} alternating pairs" if pairs else ""
        print(
            f"| worker, {c['users']:,} users × 50, one snapshot per user: categories in the "
            f"events / through a {c['items']:,}-item catalog, CPU per event (the join's "
            f"cost{how}) | {c['with_categories_cpu_us']:,.1f} / "
            f"{c['through_catalog_cpu_us']:,.1f} µs ({c['added_cpu']:+.0%}) |"
        )
        if pairs:
            print(
                "| the same, each pair's added CPU | "
                + " / ".join(f"{ratio - 1:+.0%}" for ratio in pairs)
                + " |"
            )
        print(
            f"| {'the median pair' if pairs else 'the fastest run of each'}, events/s | "
            f"{c['with_categories_per_s']:,.0f} / {c['through_catalog_per_s']:,.0f} ev/s |"
        )
        print(
            "| the same, default emission policy (one run each; the snapshots emitted differ) | "
            f"{c['policy_with_categories_per_s']:,.0f} / "
            f"{c['policy_through_catalog_per_s']:,.0f} ev/s |"
        )
        print(
            f"| worker start → ready: no catalog / the {c['items']:,}-item catalog read first | "
            f"{c['ready_s']:.1f} / {c['ready_with_catalog_s']:.1f} s |"
        )
    if "scale_out" in r:
        s = r["scale_out"]
        print(
            f"| 8 partitions: one worker / two workers in one group | "
            f"{s['one_worker_per_s']:,.0f} / {s['two_workers_per_s']:,.0f} ev/s |"
        )


def _split(lat: dict) -> str:
    """The latency row's split at the build (``stream.dev.latency``), when it was measured."""
    if "built_p99_ms" not in lat:
        return ""
    return (
        f"; to the build p50 / p99 {lat['built_p50_ms']:.0f} / {lat['built_p99_ms']:.0f} ms, "
        f"after it {lat['after_p50_ms']:.0f} / {lat['after_p99_ms']:.0f} ms"
    )


def waits_cell(lat: dict) -> str:
    """A latency row's waits for a core (the main thread's / some task's), as a table cell.

    >>> waits_cell({"main_thread_waited_share": 0.084, "cpu_pressure_share": 0.31})
    '8% / 31%'
    >>> waits_cell({"main_thread_waited_share": None, "cpu_pressure_share": None})
    '— / —'
    """
    shares = (lat.get("main_thread_waited_share"), lat.get("cpu_pressure_share"))
    return " / ".join("—" if s is None else f"{s:.0%}" for s in shares)

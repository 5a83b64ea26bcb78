"""Compare the worker of two (or more) source trees on the same pre-produced topic.

For speed work: measure the baseline and the change in the same run, one worker after the
other on the same events, and see where the CPU went. For each tree, a worker (started with
that tree as its working directory, so ``python -m stream.cli`` imports that tree's code)
consumes the whole topic with the default emission policy; the table gives its rate, the
CPU seconds per event of its busiest thread and of the local broker, how long its offsets'
commit came after it had read the last event (within 0.1 s), and the commit windows it closed
with the seconds of their steps (its ``/metrics``). ``--profile DIR`` also
records a py-spy profile (raw format, ``DIR/<tree>.txt``) of each worker's run (of a latency
row: while the events are sent) and prints its main thread's functions. Everything
printed also goes to ``bench-results/compare-<time>/compare.md``.

    git worktree add ../baseline HEAD~1
    .venv/bin/python -m stream.dev.compare --tree base=../baseline --tree new=. \\
        --users 100000 --per-user 3

``--env NAME:VAR=VALUE`` gives one tree's worker a setting of its own, to compare settings of
one tree (``--tree a=. --tree b=. --env b:INTEREST_SNAPSHOT_PROCESSES=0``).

``--memory`` measures the bench's memory row instead (``--users`` × ``--per-user`` events in
eight settled waves, ``stream.dev.memory_rows``; the bench's 50-event row is
``--users 24000 --per-user 50``): each tree's worker RSS at the end, per user overall and at
the margin over the second half.

``--catalog`` measures the bench's catalog-join pair instead (``stream.dev.bench
.catalog_phase``: ``--users`` × 50 events with their categories, then without, joined to the
100,000-item catalog; one snapshot a user): each tree's worker CPU an event both ways and the
join's share of it.

``--latency RATE`` measures the bench's latency row instead (``stream.dev.latency``: events
stamped with the wall clock at RATE a second for ``--seconds``, 2,000 users unless
``--latency-users`` says otherwise, min-interval 0 unless ``--env`` does, and the worker's CPU
while they were sent), a fresh worker of each tree in turn, after an untimed ``WARM_S`` row
of the first tree (a broker started shortly before served its first rows with half a core to
spare); name a tree twice (``--tree base=../b --tree new=. --tree base2=../b --tree new2=.``)
to alternate them, as the machine's speed drifts within minutes.
"""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Callable
from pathlib import Path

from kafka.admin import KafkaAdminClient

from stream.counters import COMMIT_STEPS
from stream.dev.bench import CATALOG_ONE_SNAPSHOT, catalog_phase
from stream.dev.bench_table import waits_cell
from stream.dev.bench_topics import committed_total, make_events, produce
from stream.dev.latency import latency_phase
from stream.dev.localrun import (
    WorkerProcess,
    delete_run_topics,
    free_port,
    start_local_broker,
    worker_env,
)
from stream.dev.memory_rows import (
    HISTORY_SEED,
    HISTORY_WAVES,
    memory_figures,
    memory_waves,
    settled_waves,
)
from stream.dev.proc_cpu import children_cpu_seconds, thread_cpu_seconds
from stream.dev.pyspy import profile, stop_profile, summarize
from stream.settings import Settings, local_broker_pid
from stream.topics import ensure_topics

LATENCY_USERS = 2_000  # as the bench's latency rows
# An untimed latency row first: after `make kafka-up` the first timed row read p99 5,454 ms
# (docs/RESULTS.md, 12-04), the broker's JVM still compiling its code.
WARM_S = 10.0


# /metrics counters read over a run: snapshots emitted, users the sequence model scored,
# commit windows closed.
COUNTED = (
    "interest_snapshots_total",
    "interest_scorer_users_total",
    "interest_commit_windows_total",
)


def tree_settings(specs: list[str], names: set[str]) -> dict[str, dict[str, str]]:
    """``NAME:VAR=VALUE`` specs as each tree's own settings.

    >>> tree_settings(["on:INTEREST_SNAPSHOT_PROCESSES=1", "off:A=b=c"], {"on", "off"})
    {'on': {'INTEREST_SNAPSHOT_PROCESSES': '1'}, 'off': {'A': 'b=c'}}
    >>> tree_settings(["x:A=1"], {"on"})
    Traceback (most recent call last):
    ...
    ValueError: --env x:A=1: no tree named x
    """
    out: dict[str, dict[str, str]] = {}
    for spec in specs:
        name, sep, setting = spec.partition(":")
        var, eq, value = setting.partition("=")
        if not sep or not eq or not var:
            raise ValueError(f"--env {spec}: expected NAME:VAR=VALUE")
        if name not in names:
            raise ValueError(f"--env {spec}: no tree named {name}")
        out.setdefault(name, {})[var] = value
    return out


def commit_steps(worker: WorkerProcess) -> dict[str, float]:
    """The seconds the worker's commit windows spent in each step so far (``/metrics``;
    empty for a tree from before ``interest_commit_step_seconds_total``)."""
    from prometheus_client.parser import text_string_to_metric_families  # the dev extra's

    return {
        sample.labels["step"]: sample.value
        for family in text_string_to_metric_families(worker.metrics_text())
        if family.name == "interest_commit_step_seconds"
        for sample in family.samples
    }


def run_tree(
    bootstrap: str, env: dict, tree: Path, total: int, log: Path, profile_to: Path | None
) -> dict[str, float]:
    """One worker of ``tree`` consumes the topic of ``env``: its rate and CPU per event."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    with contextlib.chdir(tree):
        worker = WorkerProcess({**env, "INTEREST_WEB_PORT": str(free_port())}, log)
        worker.start(timeout=300)
    broker = local_broker_pid()
    cpu0 = thread_cpu_seconds(worker.pid)
    children0 = children_cpu_seconds(worker.pid)
    broker0 = thread_cpu_seconds(broker) if broker else {}
    counted0 = {name: worker.metric(name) for name in COUNTED}
    steps0 = commit_steps(worker)
    started = time.monotonic()
    spy = profile(worker.pid, profile_to) if profile_to else None
    read_all = None  # when the worker had read every event (its /metrics, every 0.1 s)
    try:
        while committed_total(admin, env["INTEREST_APP_ID"], env["INTEREST_EVENTS_TOPIC"]) < total:
            if time.monotonic() - started > 1200:
                raise RuntimeError(f"the worker of {tree} did not finish within 20 minutes")
            if read_all is None and worker.metric("interest_events_total") >= total:
                read_all = time.monotonic()
            time.sleep(0.1)
        ended = time.monotonic()
        seconds = ended - started
        tail = ended - read_all if read_all is not None else 0.0
        cpu1 = thread_cpu_seconds(worker.pid)
        children1 = children_cpu_seconds(worker.pid)
        broker1 = thread_cpu_seconds(broker) if broker else {}
        counted = {name: worker.metric(name) - counted0[name] for name in COUNTED}
        steps = {k: v - steps0.get(k, 0.0) for k, v in commit_steps(worker).items()}
    finally:
        if spy is not None:
            stop_profile(spy)  # before the worker stops: its shutdown is not the run
        worker.stop()
        admin.close()
    busiest = max(cpu1[t] - cpu0.get(t, 0.0) for t in cpu1)
    return {
        "rate": total / seconds,
        "busiest_thread_us_per_event": busiest / total * 1e6,
        "busiest_thread_share": busiest / seconds,
        "process_us_per_event": sum(cpu1[t] - cpu0.get(t, 0.0) for t in cpu1) / total * 1e6,
        "children_us_per_event": sum(
            c - children0.get(child, 0.0) for child, c in children1.items()
        )
        / total
        * 1e6,
        "broker_share": (sum(broker1.values()) - sum(broker0.values())) / seconds,
        "snapshots_per_event": counted["interest_snapshots_total"] / total,
        "scored_per_s": counted["interest_scorer_users_total"] / seconds,
        "tail_s": tail,
        "windows": counted["interest_commit_windows_total"],
        "commit_steps": steps,
    }


def memory_row(bootstrap: str, env: dict, tree: Path, log: Path, users: int, per_user: int) -> dict:
    """The bench's memory row (``memory_figures``) with a worker of ``tree``."""
    bounds, waves = memory_waves(users, per_user, HISTORY_WAVES, HISTORY_SEED)
    with contextlib.chdir(tree):
        idle_rss, rss = settled_waves(bootstrap, env, waves, log)
    return memory_figures(bounds, idle_rss, rss)


def latency_row(
    bootstrap: str,
    env: dict,
    tree: Path,
    work: Path,
    rate: float,
    seconds: float,
    users: int = LATENCY_USERS,
    profile_to: Path | None = None,
) -> dict:
    """``latency_phase`` with a worker of ``tree`` (its code: started from its directory)."""
    with contextlib.chdir(tree):
        return latency_phase(
            bootstrap, env, work, rate, seconds, users=users, profile_to=profile_to
        )


def profile_path(directory: str | None, tree: str) -> Path | None:
    """Where ``--profile DIR`` puts a tree's profile (the directory made), or None."""
    if not directory:
        return None
    path = Path(directory).resolve() / f"{tree}.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def print_profile(prof: Path | None, tree: str, out: Callable[[str], None]) -> None:
    """A tree's profile summarized: the main thread's functions, inclusive and its own."""
    if not prof or not prof.exists():
        return
    out(f"\nmain thread of {tree}, inclusive share of its busy samples:")
    for function, share in summarize(prof):
        out(f"  {share:6.1%}  {function}")
    out(f"\nmain thread of {tree}, the function each busy sample was in:")
    for function, share in summarize(prof, top=15, own=True):
        out(f"  {share:6.1%}  {function}")
    out()


def step_seconds(steps: dict[str, float]) -> str:
    """A run's commit-step seconds as a table cell, in ``COMMIT_STEPS``' order.

    >>> step_seconds({"write": 1.25, "snapshots": 0.5, "output": 0.125}), step_seconds({})
    ('1.25 / 0.50 / 0.12', '—')
    """
    if not steps:
        return "—"
    return " / ".join(f"{steps.get(step, 0.0):.2f}" for step in COMMIT_STEPS)


def latency_line(name: str, r: dict) -> str:
    """A row of the latency table.

    >>> latency_line("new", {"events": 1000, "snapshots": 950, "event_p50_ms": 21.4,
    ...     "event_p95_ms": 98.0, "event_p99_ms": 137.2, "built_p99_ms": 109.0,
    ...     "after_p99_ms": 41.5, "main_thread_share": 0.64, "main_thread_us_per_event": 75.2,
    ...     "worker_us_per_event": 90.4, "main_thread_waited_share": 0.08,
    ...     "cpu_pressure_share": 0.3})
    '| new | 950 (0.95) | 21 / 98 / 137 | 109 | 42 | 64% | 75 | 90 | 8% / 30% |'
    """
    return (
        f"| {name} | {r['snapshots']:,} ({r['snapshots'] / max(r['events'], 1):.2f}) | "
        f"{r['event_p50_ms']:.0f} / {r['event_p95_ms']:.0f} / {r['event_p99_ms']:.0f} | "
        f"{r['built_p99_ms']:.0f} | {r['after_p99_ms']:.0f} | {r['main_thread_share']:.0%} | "
        f"{r['main_thread_us_per_event']:.0f} | {r['worker_us_per_event']:.0f} | "
        f"{waits_cell(r)} |"
    )


def catalog_side(
    bootstrap: str,
    name: str,
    settings: dict,
    tree: Path,
    work: Path,
    users: int,
    through_catalog: bool,
) -> float:
    """One side of the catalog-join pair (``catalog_phase``) with a worker of ``tree`` on
    topics of its own: its CPU µs an event."""
    side = f"{name}-{'catalog' if through_catalog else 'item'}"
    env = worker_env(
        bootstrap,
        side,
        work / side,
        INTEREST_PARTITIONS="4",
        **{**CATALOG_ONE_SNAPSHOT, **settings},
    )
    ensure_topics(Settings.from_env(env))
    with contextlib.chdir(tree):
        return catalog_phase(bootstrap, env, users, through_catalog, work / f"{side}-worker")[
            "cpu_us_per_event"
        ]


def catalog_line(name: str, item_us: float, catalog_us: float) -> str:
    """A row of the catalog table.

    >>> catalog_line("new", 20.0, 23.0)
    '| new | 20.0 | 23.0 | +15% |'
    """
    return f"| {name} | {item_us:.1f} | {catalog_us:.1f} | {catalog_us / item_us - 1:+.0%} |"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="compare", description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", action="append", required=True, help="NAME=PATH (repeat)")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        help="NAME:VAR=VALUE, a setting for tree NAME's worker only (repeat)",
    )
    parser.add_argument("--users", type=int, default=2_000)
    parser.add_argument("--per-user", type=int, default=150)
    parser.add_argument("--profile", help="directory for a py-spy profile of each worker")
    parser.add_argument(
        "--keep-topics", action="store_true", help="leave the run's topics in the broker"
    )
    parser.add_argument(
        "--latency",
        type=float,
        metavar="RATE",
        help="the latency row at RATE events/s instead of the throughput of --users × --per-user",
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="the latency row's length")
    parser.add_argument(
        "--latency-users",
        type=int,
        default=LATENCY_USERS,
        help="users the latency row's events are spread over (default: the bench's 2,000)",
    )
    parser.add_argument(
        "--memory",
        action="store_true",
        help="the memory row (RSS per user, settled waves) instead of the throughput",
    )
    parser.add_argument(
        "--catalog",
        action="store_true",
        help="the catalog join's pair (CPU an event with categories and through the catalog)",
    )
    args = parser.parse_args(argv)
    trees = [(n, Path(p).resolve()) for n, p in (t.split("=", 1) for t in args.tree)]
    tree_env = tree_settings(args.env, {name for name, _ in trees})

    bootstrap, _ = start_local_broker()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    work = Path(f"bench-results/compare-{stamp}").resolve()
    work.mkdir(parents=True)
    report = work / "compare.md"

    def out(line: str = "") -> None:
        print(line, flush=True)
        with report.open("a") as fh:
            fh.write(line + "\n")

    if args.latency:
        users = args.latency_users
        out(f"latency at {args.latency:,.0f} events/s, {users:,} users, {args.seconds:g} s")
        out(
            "| tree | snapshots (per event) | per event p50 / p95 / p99 ms | to the build p99 ms "
            "| after it p99 ms | main thread, share of a core | main thread µs / event "
            "| all threads µs / event | waited for a core: main thread / some task "
            "|\n|---|---:|---:|---:|---:|---:|---:|---:|---:|"
        )
        for k, (name, tree) in enumerate([("_warm", trees[0][1]), *trees]):
            run_env = worker_env(
                bootstrap,
                f"cmp-{stamp}-{name}",
                work / name / "state",
                **{"INTEREST_MIN_INTERVAL_S": "0", **tree_env.get(name, {})},
            )
            (work / name).mkdir(parents=True, exist_ok=True)
            prof = profile_path(args.profile, name) if k else None
            seconds = args.seconds if k else WARM_S
            r = latency_row(
                bootstrap, run_env, tree, work / name, args.latency, seconds, users, prof
            )
            if k:
                out(latency_line(name, r))
                print_profile(prof, name, out)
        if not args.keep_topics:
            delete_run_topics(bootstrap, f"cmp-{stamp}")
        print(f"written to {report}")
        return 0

    if args.catalog:
        out(f"catalog join: {args.users:,} users × 50 events, one snapshot a user")
        out(
            "| tree | CPU µs an event, categories in the events | through the catalog "
            "| the join's added CPU |\n|---|---:|---:|---:|"
        )
        for name, tree in trees:
            cpu = [
                catalog_side(
                    bootstrap,
                    f"cmp-{stamp}-{name}",
                    tree_env.get(name, {}),
                    tree,
                    work,
                    args.users,
                    through,
                )
                for through in (False, True)
            ]
            out(catalog_line(name, *cpu))
        if not args.keep_topics:
            delete_run_topics(bootstrap, f"cmp-{stamp}")
        print(f"written to {report}")
        return 0

    if args.memory:
        users = args.users
        out(f"memory: {users:,} users × {args.per_user} in {HISTORY_WAVES} settled waves")
        out(
            "| tree | RSS idle → end MiB | (end − idle) / users | marginal per user "
            "|\n|---|---:|---:|---:|"
        )
        for name, tree in trees:
            run_env = worker_env(
                bootstrap,
                f"cmp-{stamp}-{name}",
                work / name / "state",
                **{"INTEREST_DASHBOARD_FEED_MAX_PER_S": "0", **tree_env.get(name, {})},
            )
            ensure_topics(Settings.from_env(run_env))
            (work / name).mkdir(parents=True, exist_ok=True)
            r = memory_row(bootstrap, run_env, tree, work / f"{name}.log", users, args.per_user)
            out(
                f"| {name} | {r['idle_rss'] / 2**20:.0f} → "
                f"{r['rss_at_users'][users] / 2**20:.0f} | {r['bytes_per_user']:,.0f} B "
                f"| {r['marginal_bytes_per_user']:,.0f} B |"
            )
        if not args.keep_topics:
            delete_run_topics(bootstrap, f"cmp-{stamp}")
        print(f"written to {report}")
        return 0

    env = worker_env(bootstrap, f"cmp-{stamp}", work / "topic-state")
    ensure_topics(Settings.from_env(env))
    total = args.users * args.per_user
    produce(bootstrap, env["INTEREST_EVENTS_TOPIC"], make_events(0, args.users, args.per_user, 7))
    default_policy = str(Settings.from_env({}).min_interval_s)

    out(f"{args.users:,} users × {args.per_user}: {total:,} events")
    out(
        "| tree | events/s | busiest thread µs/event (share of a core) | process µs/event "
        "| its child processes µs/event | broker share of a core | snapshots per event "
        "| users scored per s | last event read → committed s | commit windows "
        "| their steps s: write / snapshots / output |"
        "\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    )
    for name, tree in trees:
        run_env = worker_env(
            bootstrap,
            f"cmp-{stamp}-{name}",
            work / name,
            **{"INTEREST_MIN_INTERVAL_S": default_policy, **tree_env.get(name, {})},
        )
        ensure_topics(Settings.from_env(run_env))
        run_env["INTEREST_EVENTS_TOPIC"] = env["INTEREST_EVENTS_TOPIC"]
        prof = profile_path(args.profile, name)
        r = run_tree(bootstrap, run_env, tree, total, work / f"{name}.log", prof)
        out(
            f"| {name} | {r['rate']:,.0f} | {r['busiest_thread_us_per_event']:.0f} "
            f"({r['busiest_thread_share']:.0%}) | {r['process_us_per_event']:.0f} "
            f"| {r['children_us_per_event']:.0f} | {r['broker_share']:.0%} "
            f"| {r['snapshots_per_event']:.2f} | {r['scored_per_s']:,.0f} | {r['tail_s']:.2f} "
            f"| {r['windows']:.0f} | {step_seconds(r['commit_steps'])} |"
        )
        print_profile(prof, name, out)
    if not args.keep_topics:
        delete_run_topics(bootstrap, f"cmp-{stamp}")
    print(f"written to {report}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

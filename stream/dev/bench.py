"""``make bench``: throughput, latency, memory and recovery through the real local broker.

Everything runs in one process tree on this machine, in one run, so the ratios are fair:

1. pre-produce the events of each workload to one topic; before the first workload's rows,
   untimed worker passes until the broker is warm (``stream.dev.broker_warmup``);
2. a bare aiokafka consumer reads and decodes the whole topic (the limit), and a real worker
   process consumes the same topic, back to back in three rounds, which first alternating
   (``stream.dev.paired_rounds``: the median round's pair is reported, as is the scorer's
   cost: with and without it, in three rounds);
3. for the memory rows the users arrive in four
   (eight for the 50-event history) waves, each produced once the worker has consumed,
   committed and idled after the one before, and the worker's RSS is read then: the growth
   over the second half of the waves, per user added, is the marginal cost of a tracked user
   (bounded caches and client buffers, full by then, do not count in it);
4. the worker is restarted and the time to recover its table is measured;
5. a fresh worker gets events of 2,000 users (one row: 100,000) at half the maximum rate
   measured on that workload, stamped with the wall clock; a subscriber (aiokafka; one row
   reads with kafka-python) measures event-to-snapshot latency (the goals' rows
   ``LATENCY_RUNS`` times, the median run reported);
6. the Transformer scorer table (``models.bench.scorer``), when present.

Prints a Markdown table and writes JSON (``--out``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

from kafka.admin import KafkaAdminClient

from stream.dev.bench_model import scorer_rows, write_checkpoint
from stream.dev.bench_table import print_table
from stream.dev.bench_topics import (
    bare_consumer_rate,
    catalog_entries,
    committed_total,
    make_events,
    produce,
    records_written,
)
from stream.dev.broker_warmup import warm_broker
from stream.dev.events import ITEMS
from stream.dev.latency import latency_phase, median_run
from stream.dev.localrun import (
    WorkerProcess,
    delete_run_topics,
    free_port,
    start_local_broker,
    stop_local_broker,
    worker_env,
)
from stream.dev.memory_rows import (
    HISTORY_SEED,
    HISTORY_WAVES,
    memory_figures,
    memory_waves,
    settled_waves,
)
from stream.dev.paired_rounds import paired_rounds
from stream.dev.proc_cpu import process_cpu_seconds
from stream.settings import Settings, local_broker_pid
from stream.topics import ensure_topics

GROUP_SETTLE_S = 5.0  # after the last worker is ready: the group's last rebalance is over


LOG_TIME = re.compile(rb"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]", re.M)


def log_seconds_between(log: bytes, first: bytes, last: bytes) -> float | None:
    """Seconds between the first log line holding ``first`` and the next holding ``last``."""
    i = log.find(first)
    j = log.find(last, max(i, 0))
    if i < 0 or j < 0:
        return None

    def stamp(pos: int) -> float:
        line_start = log.rfind(b"\n", 0, pos) + 1
        m = LOG_TIME.match(log, line_start)
        return (
            time.mktime(time.strptime(m.group(1)[:19].decode(), "%Y-%m-%d %H:%M:%S"))
            + int(m.group(1)[20:]) / 1000
        )

    return stamp(j) - stamp(i)


def consume_phase(
    bootstrap: str,
    env: dict,
    log_path: Path,
    total: int,
    module: str = "stream.cli",
    workers: int = 1,
    events: list | None = None,
    metric: str | None = None,
    beside: int | None = None,
) -> dict:
    """Start ``workers`` processes in one group on a pre-produced topic; time them until the
    group's committed offsets reach ``total``; the first one's RSS when idle and at the end,
    and the CPU the workers (with their child processes) spent per event meanwhile.

    With ``events``, the topic is empty while the workers start: they are produced, and the
    clock started, once every worker is ready and the group has settled. Workers start one
    after another, so on a pre-produced topic the first would consume alone meanwhile. With
    ``metric``, the first worker's rate of that ``/metrics`` counter meanwhile too; with
    ``beside`` (a process id: the broker), that process's share of a core meanwhile."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    group = env["INTEREST_APP_ID"]
    procs = [
        WorkerProcess(
            {**env, "INTEREST_WEB_PORT": str(free_port())},
            log_path.with_suffix(f".{i}.log"),
            module=module,
        ).start(timeout=300)
        for i in range(workers)
    ]
    idle_rss = procs[0].rss_bytes()
    if events is not None:
        time.sleep(GROUP_SETTLE_S)
    cpu_before = sum(process_cpu_seconds(p.pid) for p in procs)
    beside_before = process_cpu_seconds(beside) if beside else 0.0
    counted = -procs[0].metric(metric) if metric else 0.0
    started = time.monotonic()
    try:
        if events is not None:
            produce(bootstrap, env["INTEREST_EVENTS_TOPIC"], events)
        while True:
            done = committed_total(admin, group, env["INTEREST_EVENTS_TOPIC"])
            if done >= total:
                break
            if time.monotonic() - started > 1200:
                raise RuntimeError(f"{module} did not finish within 20 minutes")
            time.sleep(0.1)
        seconds = time.monotonic() - started
        end_rss = procs[0].rss_bytes()
        cpu = sum(process_cpu_seconds(p.pid) for p in procs) - cpu_before
        beside_cpu = process_cpu_seconds(beside) - beside_before if beside else 0.0
        counted += procs[0].metric(metric) if metric else 0.0
    finally:
        for p in procs:
            p.stop()
        admin.close()
    return {
        "seconds": seconds,
        "rate": total / seconds,
        "idle_rss": idle_rss,
        "end_rss": end_rss,
        "ready_s": procs[0].ready_after,
        "cpu_us_per_event": 1e6 * cpu / total,
        "metric_per_s": counted / seconds,
        "beside_share": beside_cpu / seconds,
    }


def recovery_phase(env: dict, log_path: Path) -> dict:
    """Restart a worker on a group's existing state: recovery start to ready, from its log."""
    restarted = WorkerProcess(env, log_path)
    before = log_path.stat().st_size if log_path.exists() else 0  # the log of earlier starts
    restarted.start(timeout=900)
    rss = restarted.rss_bytes()
    restarted.stop()
    log = log_path.read_bytes()[before:]  # from its first recovery (a restarted one counts)
    return {
        "process_to_ready_s": restarted.ready_after,
        "recovery_s": log_seconds_between(log, b"Highwater for active changelog", b"Worker ready"),
        "rss": rss,
    }


WORKLOADS = (("100k users × 3", 100_000, 3), ("2k users × 150", 2_000, 150))
# The latency goals' rows run this many times, each with a fresh worker, and the run with the
# median p99 is reported beside every run's p99: on this 2-core machine, where the load
# generator, the subscriber and the broker share the cores with the worker, one 20 s run of
# the same tree read anything from 189 to 1,132 ms (docs/RESULTS.md).
LATENCY_RUNS = 3
# The catalog join's pairs: its cost (~1 µs of ~40 an event in-process) is smaller than one
# run's swing on this machine (±15%), so it is read from five pairs, not three.
CATALOG_ROUNDS = 5


# The catalog join's rows publish one snapshot a user, so both sides of a pair publish alike.
CATALOG_ONE_SNAPSHOT = {"INTEREST_MIN_INTERVAL_S": "1e9", "INTEREST_TV_THRESHOLD": "1.0"}


def catalog_phase(
    bootstrap: str, env: dict, users: int, through_catalog: bool, log_path: Path
) -> dict:
    """``consume_phase`` over one side of a catalog-join pair: ``users`` × 50 events with their
    categories, or without (``through_catalog``: the worker joins each to its item in the
    100,000-item catalog, produced to ``env``'s items topic first)."""
    mode = "catalog" if through_catalog else "item"
    events = make_events(0, users, 50, seed=11, categories=mode)
    if through_catalog:
        produce(bootstrap, env["INTEREST_ITEMS_TOPIC"], catalog_entries())
    produce(bootstrap, env["INTEREST_EVENTS_TOPIC"], events)
    return consume_phase(bootstrap, env, log_path, len(events))


class LatencyRow(NamedTuple):
    """Events of ``users`` users (scaled with the bench, 2,000 at least) at ``1 / share`` of
    the maximum rate its emission policy reached on ``WORKLOADS[workload]``: min-interval
    ``"0"``, or the default policy (``None``)."""

    name: str
    min_interval: str | None
    share: int
    builders: str = "auto"  # INTEREST_SNAPSHOT_PROCESSES
    subscriber: str = "aiokafka"
    runs: int = 1
    workload: int = 1
    users: int = 2_000


LATENCY_ROWS = (
    LatencyRow("min-interval 0", "0", 2, runs=LATENCY_RUNS),
    # the goal's other workload: a user's record is mostly out of the cache (decoded, written
    # and evicted each window), as with a real platform's many users
    LatencyRow("min-interval 0, 100k users", "0", 2, runs=LATENCY_RUNS, workload=0, users=100_000),
    LatencyRow("default policy", None, 2, runs=LATENCY_RUNS),
    LatencyRow("min-interval 0, a quarter of the maximum", "0", 4),
    # the same as the first row, read by the pure-Python client of stream.clients
    LatencyRow("min-interval 0, a kafka-python subscriber", "0", 2, subscriber="kafka-python"),
    # a builder process needs a core: here the producer, the subscriber and the broker
    # share the machine with the worker
    LatencyRow("min-interval 0, a snapshot builder process", "0", 2, builders="1"),
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scale", type=float, default=1.0, help="shrink every workload")
    parser.add_argument("--latency-seconds", type=float, default=20.0)
    parser.add_argument(
        "--keep-topics", action="store_true", help="leave the run's topics in the broker"
    )
    parser.add_argument("--out", default="bench-results/bench.json")
    parser.add_argument("--skip-scorer", action="store_true")
    parser.add_argument("--skip-rocksdb", action="store_true")
    parser.add_argument("--skip-memory", action="store_true", help="no memory/recovery rows")
    parser.add_argument("--skip-scale", action="store_true", help="no two-worker row")
    parser.add_argument("--skip-catalog", action="store_true", help="no catalog-join rows")
    args = parser.parse_args(argv)

    env0 = dict(os.environ)
    started_broker = False
    if env0.get("KAFKA_BOOTSTRAP_SERVERS"):
        bootstrap = env0["KAFKA_BOOTSTRAP_SERVERS"]
    else:
        bootstrap, started_broker = start_local_broker(env0)
    broker_pid = None if env0.get("KAFKA_BOOTSTRAP_SERVERS") else local_broker_pid(env0)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-{stamp}-"))
    results: dict = {
        "machine": f"{platform.node()} {os.cpu_count()} cores, "
        f"{platform.processor() or platform.machine()}",
        "python": sys.version.split()[0],
        "date": stamp,
        "workloads": {},
    }

    def env_for(name: str, partitions: int = 4, **extra: str) -> dict:
        env = worker_env(
            bootstrap,
            f"bench-{stamp}-{name}",
            workdir / f"{name}-state",
            INTEREST_PARTITIONS=str(partitions),
            **extra,
        )
        ensure_topics(Settings.from_env(env))
        return env

    def prepared(name: str, users: int, per_user: int, partitions: int = 4) -> tuple[dict, int]:
        """A topic of ``per_user`` events for each of ``users``."""
        env = env_for(name, partitions)
        events = make_events(0, users, per_user, len(name), 1_760_000_000.0)
        produce(bootstrap, env["INTEREST_EVENTS_TOPIC"], events)
        return env, len(events)

    def catalog_rows(users: int, rounds: int = CATALOG_ROUNDS) -> dict:
        """The worker on the same events with their categories and through the catalog:
        ``rounds`` alternating pairs with one snapshot per user (the join's own cost: the
        median pair's ratio of CPU per event, ``paired_rounds``), then one pair under the
        default policy, whose snapshot count differs."""
        policy = {"INTEREST_MIN_INTERVAL_S": default_policy}
        ready: dict[str, float] = {}

        def run(through_catalog: bool, k: int, extra: dict = CATALOG_ONE_SNAPSHOT) -> dict:
            mode = "catalog" if through_catalog else "item"
            name = mode if extra is CATALOG_ONE_SNAPSHOT else f"{mode}-policy"
            print(
                f"catalog join {k + 1}: {users:,} users × 50 events, categories: {name} …",
                flush=True,
            )
            env = env_for(f"cat{mode}{k}", **extra)
            got = catalog_phase(bootstrap, env, users, through_catalog, workdir / f"cat{mode}{k}")
            ready[mode] = min(ready.get(mode, got["ready_s"]), got["ready_s"])
            return got

        pairs = paired_rounds(run, rounds, key="cpu_us_per_event")
        median = pairs["median"]
        policy_runs = {on: run(on, rounds, policy) for on in (False, True)}
        return {
            "users": users,
            "items": ITEMS,
            "pairs_cpu_ratio": pairs["ratios"],
            "with_categories_cpu_us": median[False]["cpu_us_per_event"],
            "through_catalog_cpu_us": median[True]["cpu_us_per_event"],
            "added_cpu": pairs["ratio"] - 1,
            "with_categories_per_s": median[False]["rate"],
            "through_catalog_per_s": median[True]["rate"],
            "policy_with_categories_per_s": policy_runs[False]["rate"],
            "policy_through_catalog_per_s": policy_runs[True]["rate"],
            "ready_s": ready["item"],
            "ready_with_catalog_s": ready["catalog"],
        }

    def memory_run(
        name: str,
        users: int,
        per_user: int,
        n_waves: int = 4,
        seed: int | None = None,
        **extra: str,
    ) -> tuple[dict, dict]:
        """Users arrive in ``n_waves`` settled waves (``settled_waves``); RSS per user overall
        and marginal over the second half of the waves (bounded caches and client buffers are
        full by then). The dashboard's feed is off: its snapshot cache is bounded too (2,000
        users × 40 snapshots, ~38 MiB) but takes minutes to fill at its sampling rate, which
        would count it as users' memory. ``seed``: the events' (by default the name's length)."""
        env = env_for(name, INTEREST_DASHBOARD_FEED_MAX_PER_S="0", **extra)
        seed = len(name) if seed is None else seed
        bounds, waves = memory_waves(users, per_user, n_waves, seed)
        idle_rss, rss = settled_waves(bootstrap, env, waves, workdir / f"{name}.log")
        return env, memory_figures(bounds, idle_rss, rss)

    def reuse(env: dict, name: str, **extra: str) -> dict:
        """A new group (and state) on the topic ``env`` points to."""
        other = env_for(name, int(env["INTEREST_PARTITIONS"]), **extra)
        other["INTEREST_EVENTS_TOPIC"] = env["INTEREST_EVENTS_TOPIC"]
        return other

    default_policy = str(Settings.from_env({}).min_interval_s)
    try:
        for label, users, per_user in WORKLOADS:
            users = max(100, int(users * args.scale))
            name = label.split()[0].replace("k", "000")
            env, total = prepared(f"w{name}", users, per_user)
            if broker_pid is not None and "broker_warmup_shares" not in results:
                print(f"{label}: {total:,} events; untimed passes to warm the broker …", flush=True)
                results["broker_warmup_shares"] = warm_broker(
                    lambda k, env=env, name=name, total=total: consume_phase(
                        bootstrap,
                        reuse(env, f"warm{k}{name}"),
                        workdir / f"warm{k}",
                        total,
                        beside=broker_pid,
                    )["beside_share"]
                )
            print(f"{label}: {total:,} events; do-nothing take_events agent …", flush=True)
            noop = consume_phase(
                bootstrap,
                reuse(env, f"noop{name}"),
                workdir / f"noop{name}",
                total,
                module="stream.dev.bench_noop",
            )
            print(f"  agent {noop['rate']:,.0f}/s; the bare consumer and the worker …", flush=True)

            def worker_or_bare(on: bool, k: int, env=env, name=name, total=total) -> dict:
                """Round ``k``'s full worker (default policy), or the bare consumer."""
                if not on:
                    topic = env["INTEREST_EVENTS_TOPIC"]
                    rate = asyncio.run(bare_consumer_rate(bootstrap, topic, total))
                    print(f"  round {k + 1}: bare {rate:,.0f}/s", flush=True)
                    return {"rate": rate}
                run = consume_phase(
                    bootstrap,
                    reuse(env, f"full{k}{name}", INTEREST_MIN_INTERVAL_S=default_policy),
                    workdir / f"w{k}{name}",
                    total,
                )
                print(f"  round {k + 1}: worker {run['rate']:,.0f}/s", flush=True)
                return run

            against_bare = paired_rounds(worker_or_bare)
            worker, bare = against_bare["median"][True], against_bare["median"][False]["rate"]
            row = {
                "users": users,
                "events": total,
                "bare_consumer_per_s": bare,
                "noop_agent_per_s": noop["rate"],
                "worker_per_s": worker["rate"],
                "noop_agent_cpu_us": noop["cpu_us_per_event"],
                "worker_cpu_us": worker["cpu_us_per_event"],
                "worker_vs_bare": against_bare["ratio"],
                "worker_vs_bare_runs": against_bare["ratios"],
                "rss_per_user": (worker["end_rss"] - worker["idle_rss"]) / users,
            }
            print(f"  worker {worker['rate']:,.0f}/s; with min-interval 0 …", flush=True)
            every_env = reuse(env, f"mi0{name}", INTEREST_MIN_INTERVAL_S="0")
            every = consume_phase(bootstrap, every_env, workdir / f"mi0{name}", total)
            row["worker_min_interval_0_per_s"] = every["rate"]
            snapshots = records_written(bootstrap, every_env["INTEREST_SNAPSHOTS_TOPIC"])
            row["worker_min_interval_0_snapshots_per_event"] = snapshots / total
            print(f"  {every['rate']:,.0f}/s; snapshots built in the worker only …", flush=True)
            in_loop = consume_phase(
                bootstrap,
                reuse(
                    env,
                    f"inloop{name}",
                    INTEREST_MIN_INTERVAL_S=default_policy,
                    INTEREST_SNAPSHOT_PROCESSES="0",
                ),
                workdir / f"inloop{name}",
                total,
            )
            row["worker_in_loop_per_s"] = in_loop["rate"]
            if not args.skip_scorer and per_user == 3:
                ckpt = write_checkpoint(workdir / "bench-model.pt")

                def scorer_run(
                    scored: bool,
                    k: int,
                    nice: str | None = None,
                    env=env,
                    name=name,
                    total=total,
                    ckpt=ckpt,
                ) -> dict:
                    """Round ``k``'s worker, with the scorer flat out (at niceness ``nice``;
                    None: the default priority) or without it."""
                    key = ("scored" if scored else "unscored") + (f"_nice{nice}" if nice else "")
                    print(f"  round {k + 1}: {key.replace('_', ' at ')} …", flush=True)
                    flat_out = dict(INTEREST_CHECKPOINT=str(ckpt), INTEREST_SCORER_MS="1")
                    if nice is not None:
                        flat_out["INTEREST_SCORER_NICE"] = nice
                    return consume_phase(
                        bootstrap,
                        reuse(
                            env,
                            f"{key}{k}{name}",
                            INTEREST_MIN_INTERVAL_S=default_policy,
                            **(flat_out if scored else {}),
                        ),
                        workdir / f"{key}{k}{name}",
                        total,
                        metric="interest_scorer_users_total",
                    )

                rounds = paired_rounds(scorer_run)
                scored, unscored = rounds["median"][True], rounds["median"][False]
                row["worker_with_scorer_per_s"] = scored["rate"]
                row["worker_without_scorer_per_s"] = unscored["rate"]
                row["scorer_ratio"] = rounds["ratio"]
                row["scorer_ratios"] = rounds["ratios"]
                row["scorer_users_per_s"] = scored["metric_per_s"]
                print(f"  with the scorer / without, each round: {rounds['ratios']}", flush=True)
                at_par = scorer_run(True, len(rounds["ratios"]), nice="0")
                row["worker_with_scorer_nice0_per_s"] = at_par["rate"]
                row["scorer_ratio_nice0"] = at_par["rate"] / unscored["rate"]
                row["scorer_users_nice0_per_s"] = at_par["metric_per_s"]
            results["workloads"][label] = row

        if not args.skip_catalog:
            results["catalog"] = catalog_rows(max(100, int(2_000 * args.scale)))

        for lat in LATENCY_ROWS:
            row = results["workloads"][WORKLOADS[lat.workload][0]]
            users = max(min(lat.users, 2_000), int(lat.users * args.scale))
            default = lat.min_interval is None
            extra = default_policy if default else lat.min_interval
            # a share of the maximum rate of the same emission policy
            rate = row["worker_per_s" if default else "worker_min_interval_0_per_s"] / lat.share
            measured = []
            for run in range(lat.runs):
                progress = f"{lat.name} ({run + 1}/{lat.runs})"
                print(f"latency at {rate:,.0f} events/s, {progress} …", flush=True)
                lat_env = env_for(
                    f"lat{extra}-{lat.share}-{lat.builders}-{lat.subscriber}-w{lat.workload}-{run}",
                    INTEREST_MIN_INTERVAL_S=extra,
                    INTEREST_SNAPSHOT_PROCESSES=lat.builders,
                )
                measured.append(
                    latency_phase(
                        bootstrap,
                        lat_env,
                        workdir,
                        rate,
                        args.latency_seconds,
                        users=users,
                        subscriber=lat.subscriber,
                    )
                )
            results.setdefault("latency", {})[lat.name] = median_run(measured)

        if not args.skip_memory:
            stores = ["memory://"] + ([] if args.skip_rocksdb else ["rocksdb://"])
            users = max(1000, int(200_000 * args.scale))
            for store in stores:
                print(f"memory and recovery, {users:,} users, {store} …", flush=True)
                env, mem = memory_run(f"mem-{store[:4]}", users, 3, INTEREST_STORE=store)
                mem["recovery"] = recovery_phase(env, workdir / f"recover-{store[:4]}.log")
                results.setdefault("memory", {})[store] = mem
            users = max(2_000, int(24_000 * args.scale))
            print(f"memory, {users:,} users with a 50-event history …", flush=True)
            results["memory_history"] = memory_run(
                "hist", users, 50, n_waves=HISTORY_WAVES, seed=HISTORY_SEED
            )[1]

        if not args.skip_scale:
            print("scale-out: two workers, one group, 8 partitions …", flush=True)
            users, per_user = WORKLOADS[1][1:]
            events = make_events(0, max(100, int(users * args.scale)), per_user, 5)
            one, two = (
                consume_phase(
                    bootstrap,
                    env_for(f"scale{n}", 8),
                    workdir / f"scale{n}",
                    len(events),
                    workers=n,
                    events=events,
                )
                for n in (1, 2)
            )
            results["scale_out"] = {
                "one_worker_per_s": one["rate"],
                "two_workers_per_s": two["rate"],
            }

        if not args.skip_scorer:
            print("scorer benchmark …", flush=True)
            results["scorer"], scorer_table = scorer_rows()
    finally:
        if not args.keep_topics:
            with contextlib.suppress(Exception):  # a broker that is gone has nothing to keep
                delete_run_topics(bootstrap, f"bench-{stamp}-")
        if started_broker:
            stop_local_broker()
    print_table(results)
    if results.get("scorer"):
        print("\n### Transformer scorer\n")
        print(scorer_table)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str))
    print(f"\nJSON: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The snapshot builder: snapshots from builder processes equal the worker's, in order, and a
dead builder process loses nothing."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from models.fused_snapshot import fused_snapshot_of
from models.fusion import FusionParams
from models.online import PopulationInterest
from models.priors.population import PopulationPrior
from models.tracker import TrackerConfig, build_snapshot, explain, prior_depth, replay
from stream.codec import decode_snapshot
from stream.snapshot_builder import OFFLOAD_MIN_SNAPSHOTS, SnapshotBuilder

pytestmark = pytest.mark.unit

TOPIC = "snapshots"
CFG = TrackerConfig(history=5, top_k=3)


class Sink:
    """What ``Output`` offers the builder: records kept in the order they were added."""

    def __init__(self):
        self.records: list[tuple[str, bytes | None]] = []
        self.sends = 0

    def partition_for(self, topic, key):
        return 0

    def add(self, topic, key, value, partition, headers=None):
        assert topic == TOPIC
        self.records.append((key.decode(), value))

    async def send(self):
        self.sends += 1


def users(n: int = 6) -> dict:
    out = {}
    for u in range(n):
        events = [
            {
                "item_id": f"i{u}-{k}",
                "categories": [f"c{(u + k) % 4}"] + ([f"c{k % 3}"] if k % 2 else []),
                "event_type": ["view", "cart", "purchase"][k % 3],
                "ts": 1_700_000_000.0 + 37.5 * k + u,
            }
            for k in range(3 + u)
        ]
        record = replay(events, CFG)
        record.partition, record.offset = u % 2, 10 * u
        out[f"user-{u}"] = record
    return out


def prior_of(records) -> PopulationPrior:
    pop = PopulationInterest(CFG.interest)
    for r in records:
        for h in r.history:
            pop.learn_one({"categories": list(h[1]), "event_type": h[2], "ts": h[3]})
    return PopulationPrior.from_population(pop, prior_depth(CFG))


def without_stamp(value: bytes) -> dict:
    snapshot = decode_snapshot(value)
    assert snapshot.pop("emitted_at") > 0
    return snapshot


@pytest.fixture(scope="module")
def builder():
    b = SnapshotBuilder(CFG, "msgpack", TOPIC, Sink(), processes=1)
    yield b
    b.close()


def test_a_builder_process_publishes_what_the_worker_would_build(builder):
    records = users()
    prior = prior_of(records.values())

    async def run():
        builder.output = Sink()
        await builder.start()
        for uid, record in records.items():
            builder.build(uid, record, prior if record.partition == 0 else None)
        await builder.drain()
        return builder.output.records

    sent = asyncio.run(run())
    assert [uid for uid, _ in sent] == list(records)
    for uid, value in sent:
        record = records[uid]
        expected = build_snapshot(uid, record, CFG, prior=prior if record.partition == 0 else None)
        assert without_stamp(value) == expected
    assert builder.fallbacks == 0


def test_a_builder_process_fuses_the_sequence_estimate_as_the_worker_would(builder):
    """Fused snapshots are built off the loop too, with the fusion weights of the moment."""
    records = users(4)
    prior = prior_of(records.values())
    scored = {
        uid: ({"c1": 0.6, "c3": 0.3, "_other": 0.1}, time.time() - 5.0, "seq-v1", [("i9", 0.4)])
        for uid in list(records)[:3]  # the last user has no sequence estimate
    }
    weights = [
        {base: FusionParams(logits=(w,) * 7) for base in ("online", "collaborative")}
        for w in (-1.0, 2.0)
    ]

    def expected(uid: str, fusion) -> dict:
        record = records[uid]
        if uid not in scored:
            return build_snapshot(uid, record, CFG, prior=prior)
        return fused_snapshot_of(
            uid,
            record.interest,
            record.topics,
            explain(record, CFG),
            CFG,
            scored[uid],
            fusion,
            prior,
        )

    def without_age(snapshot: dict) -> dict:
        if "sources" in snapshot and "sequence" in snapshot["sources"]:
            assert snapshot["sources"]["sequence"].pop("age_s") >= 5.0
        return snapshot

    async def run():
        builder.output = Sink()
        for fusion in weights:
            builder.fusion(fusion)
            for uid, record in records.items():
                builder.build(uid, record, prior, scored.get(uid))
            await builder.drain()
        return builder.output.records

    sent = asyncio.run(run())
    assert [uid for uid, _ in sent] == list(records) * 2
    for k, (uid, value) in enumerate(sent):
        want = without_age(expected(uid, weights[k // len(records)]))
        assert without_age(without_stamp(value)) == want
    first, second = (without_stamp(sent[k][1]) for k in (0, len(records)))
    assert first["sources"]["sequence"]["weight"] < 0.5 < second["sources"]["sequence"]["weight"]
    assert first["top_items"] == [{"item_id": "i9", "p": 0.4}]
    assert builder.fallbacks == 0


def test_tombstones_and_ready_snapshots_keep_their_place_in_order(builder):
    records = users(3)

    async def run():
        builder.output = Sink()
        builder.build("user-0", records["user-0"], None)
        builder.ready("user-0", None)  # forgotten after its snapshot was asked for
        builder.build("user-1", records["user-1"], None)
        builder.submit()
        builder.ready("user-2", b"built-here")  # a job is in flight: queued behind it
        builder.build("user-1", records["user-2"], None)
        await builder.drain()
        assert builder.in_flight == 0
        return builder.output.records

    sent = asyncio.run(run())
    assert [(uid, value is None) for uid, value in sent] == [
        ("user-0", False),
        ("user-0", True),
        ("user-1", False),
        ("user-2", False),
        ("user-1", False),
    ]
    assert sent[3][1] == b"built-here"
    assert without_stamp(sent[4][1])["n_events"] == records["user-2"].n_events


def test_a_killed_builder_process_loses_no_snapshot(builder):
    records = users(4)

    async def run():
        builder.output = Sink()
        await builder.start()
        pid = await asyncio.wrap_future(builder._executor(0).submit(os.getpid))
        os.kill(pid, signal.SIGKILL)
        for uid, record in records.items():
            builder.build(uid, record, None)
        await builder.drain()  # built in the worker: the process died under the job
        first = list(builder.output.records)
        builder.build("user-0", records["user-0"], None)
        await builder.drain()  # a fresh process
        again = await asyncio.wrap_future(builder._executor(0).submit(os.getpid))
        return first, builder.output.records[-1], pid, again

    first, last, pid, again = asyncio.run(run())
    assert [uid for uid, _ in first] == list(records)
    for uid, value in first:
        assert without_stamp(value) == build_snapshot(uid, records[uid], CFG)
    assert builder.fallbacks >= 1
    assert again != pid
    assert without_stamp(last[1]) == build_snapshot("user-0", records["user-0"], CFG)


def test_with_offload_off_snapshots_are_built_here_and_in_order_with_the_process(builder):
    records = users(3)

    async def run():
        builder.output = Sink()
        fallbacks = builder.fallbacks
        try:
            builder.offload = False  # a worker that keeps up: built at once, here
            kept = builder.build("user-0", records["user-0"], None)
            here = list(builder.output.records)
            builder.offload = True  # a worker that is behind: the builder process takes them
            blobs = [builder.build(uid, r, None) for uid, r in records.items()]
            builder.offload = False  # caught up while they are built: queued behind them
            builder.build("user-2", records["user-1"], None)
            await builder.drain()
        finally:
            builder.offload = True
        return kept, here, blobs, builder.output.records, builder.fallbacks - fallbacks

    kept, here, blobs, sent, fallbacks = asyncio.run(run())
    assert kept is None and [uid for uid, _ in here] == ["user-0"]
    assert all(isinstance(b, bytes) for b in blobs)  # handed over as encoded records
    assert [uid for uid, _ in sent] == ["user-0", "user-0", "user-1", "user-2", "user-2"]
    for uid, value in sent[1:4]:
        assert without_stamp(value) == build_snapshot(uid, records[uid], CFG)
    assert without_stamp(sent[4][1])["n_events"] == records["user-1"].n_events
    assert fallbacks == 0  # built by the process


def test_plan_hands_over_a_large_batch_of_a_worker_that_is_behind_and_nothing_else():
    lags_read = []

    def behind(lag: int = 25_000):
        lags_read.append(lag)
        return lag

    b = SnapshotBuilder(CFG, "msgpack", TOPIC, Sink(), processes=1, offload_lag=20_000)
    b.plan(OFFLOAD_MIN_SNAPSHOTS - 1, behind)
    assert not b.offload and not lags_read  # a small batch: the lag is not even read
    b.plan(OFFLOAD_MIN_SNAPSHOTS, behind)
    assert b.offload
    b.plan(OFFLOAD_MIN_SNAPSHOTS, lambda: behind(19_999))
    assert not b.offload  # keeping up
    always = SnapshotBuilder(CFG, "msgpack", TOPIC, Sink(), processes=1)
    always.plan(1, behind)
    assert always.offload  # no offload_lag: every batch
    assert lags_read == [25_000, 19_999]


def test_without_processes_snapshots_are_built_at_once():
    records = users(2)
    sink = Sink()
    b = SnapshotBuilder(CFG, "json", TOPIC, sink, processes=0)
    b.build("user-1", records["user-1"], None)
    assert len(sink.records) == 1
    value = sink.records[0][1]
    assert value[:1] == b"{"  # the builder's format, JSON here
    assert without_stamp(value) == build_snapshot("user-1", records["user-1"], CFG)


def test_a_snapshot_that_cannot_be_built_fails_the_commit_instead_of_hanging(builder):
    records = users(2)

    async def run():
        builder.output = Sink()
        builder._entries.append(("user-x", b"\xc1", None))  # 0xc1: never valid msgpack
        builder.build("user-1", records["user-1"], None)
        with pytest.raises(ValueError):
            await asyncio.wait_for(builder.drain(), 30)
        builder.build("user-0", records["user-0"], None)
        await asyncio.wait_for(builder.drain(), 30)  # the next window goes on
        return builder.output.records

    assert [uid for uid, _ in asyncio.run(run())] == ["user-0"]


WORKER = """
import asyncio, os, sys, time
from models.tracker import TrackerConfig
from stream.snapshot_builder import SnapshotBuilder, _child_ping

async def main():
    b = SnapshotBuilder(TrackerConfig(), "msgpack", "t", None, processes=1)
    await b.start()
    print(await asyncio.wrap_future(b._executor(0).submit(_child_ping)), flush=True)
    time.sleep(60)

if __name__ == "__main__":
    asyncio.run(main())
"""


def test_builder_processes_end_when_the_worker_is_killed(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    worker = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, env=env)
    try:
        child = int(worker.stdout.readline())
        os.kill(child, 0)  # alive
    finally:
        worker.kill()
        worker.wait(10)
    deadline = time.monotonic() + 10
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(child), "the builder process outlived its worker"


def alive(pid: int) -> bool:
    """Running (a zombie has exited: it waits for init to reap it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False

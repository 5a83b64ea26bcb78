"""The ingest agent under Faust's test_context (memory:// store, no broker)."""

from __future__ import annotations

import asyncio
import math

import pytest
from faust.types import TP

from models.tracker import build_snapshot, replay
from stream.codec import decode_snapshot, pack, unpack
from stream.counters import COMMIT_STEPS
from tests.agent.conftest import AGENT, scripted_events

pytestmark = pytest.mark.agent


async def feed(app, payloads: list[tuple[bytes, bytes]]) -> None:
    async with app.agents[AGENT].test_context() as agent:
        for key, value in payloads:
            await agent.put(key=key, value=value)
        await asyncio.sleep(0.3)  # let the last take_events window close


def test_agent_snapshots_equal_the_pure_estimator(pipeline):
    app, pipe, snapshots, _ = pipeline
    events = scripted_events()
    asyncio.run(feed(app, [(e["user_id"].encode(), pack(e)) for e in events]))

    latest = {}
    for key, value in snapshots:
        snap = decode_snapshot(value)
        latest[key.decode()] = snap
    assert set(latest) == {e["user_id"] for e in events}
    for uid, snap in latest.items():
        own = [e for e in events if e["user_id"] == uid]
        expected = build_snapshot(uid, replay(own, pipe.cfg), pipe.cfg)
        assert snap["n_events"] == len(own)
        assert snap["own"].keys() == expected["own"].keys()  # the user's own events only
        for c, p in expected["own"].items():
            assert abs(snap["own"][c] - p) <= 1e-9
        assert snap["short_term"] == pytest.approx(expected["short_term"], abs=1e-9)
        assert snap["version"] >= 1 and snap["ts"] == own[-1]["ts"]


def test_bad_events_go_to_the_dlq_and_the_next_valid_one_is_applied(pipeline):
    app, pipe, snapshots, dead = pipeline
    good = scripted_events(20, users=1)
    bad = [
        b"\xc1",
        pack({"user_id": "user-0"}),
        b'{"user_id": "user-0"}',
        pack({**good[0], "event_type": "teleport"}),
        pack({**good[0], "ts": float("nan")}),
        pack({**good[0], "ts": good[0]["ts"] - 10 * 86400}),
    ]
    payloads = []
    for i, e in enumerate(good):
        payloads.append((b"user-0", pack(e)))
        if i < len(bad):
            payloads.append((b"user-0", bad[i]))
    asyncio.run(feed(app, payloads))

    reasons = [unpack(v)["reason"] for _, v in dead]
    assert reasons == [
        "malformed",
        "missing-field",
        "json-unmarked",
        "unknown-event-type",
        "bad-timestamp",
        "late",
    ]
    assert [unpack(v)["original"] for _, v in dead] == bad
    assert decode_snapshot(snapshots[-1][1])["n_events"] == len(good)
    assert pipe.counters.applied == len(good) and sum(pipe.counters.dlq.values()) == len(bad)


def test_misrouted_event_is_rekeyed_to_its_user(pipeline):
    app, pipe, _, _ = pipeline
    rekeyed = pipe.output.sent[pipe.settings.events_topic]
    e = scripted_events(1)[0]
    asyncio.run(feed(app, [(b"someone-else", pack(e))]))
    assert rekeyed == [(e["user_id"].encode(), pack(e))]
    assert pipe.user_record(e["user_id"]) is None


def test_events_after_a_forget_in_the_same_batch_start_from_nothing(pipeline):
    from stream.app import CONTROL_HEADER, FORGET

    app, pipe, snapshots, _ = pipeline
    events = scripted_events(12, users=1)

    async def run():
        async with app.agents[AGENT].test_context() as agent:
            for e in events[:8]:  # in the table before the forget arrives
                await agent.put(key=b"user-0", value=pack(e))
            await asyncio.sleep(0.3)
            await agent.put(
                key=b"user-0", value=b"", headers=[(CONTROL_HEADER, FORGET)], wait=False
            )
            for e in events[8:]:
                await agent.put(key=b"user-0", value=pack(e), wait=False)
            await asyncio.sleep(0.3)

    pipe.settings = type(pipe.settings)(
        **{**pipe.settings.__dict__, "batch": 1000, "batch_ms": 200.0}
    )
    asyncio.run(run())
    assert pipe.user_record("user-0").n_events == 4
    assert decode_snapshot(snapshots[-1][1])["n_events"] == 4


def test_the_window_writes_its_tables_when_the_collector_runs_in_between(pipeline, monkeypatch):
    # Faust finds a table write's partition through the current event, which it holds by weak
    # reference: a collection between choosing the partition and writing must not lose it.
    import gc

    from models.online import PopulationInterest

    app, pipe, _, _ = pipeline
    state = PopulationInterest.state

    def state_after_a_collection(self):
        gc.collect()
        return state(self)

    monkeypatch.setattr(PopulationInterest, "state", state_after_a_collection)
    events = scripted_events(40, users=3)
    asyncio.run(feed(app, [(e["user_id"].encode(), pack(e)) for e in events]))
    assert pipe.counters.flushes > 0 and pipe.counters.dlq == {}
    assert set(pipe.counters.commit_last_seconds) == set(COMMIT_STEPS)  # each step timed
    assert PopulationInterest.from_state(pipe.population["p0"]).n_events == len(events)
    assert sum(pipe.user_record(f"user-{u}").n_events for u in range(3)) == len(events)


def test_an_event_without_a_key_is_rekeyed_to_its_user(pipeline):
    app, pipe, _, _ = pipeline
    rekeyed = pipe.output.sent[pipe.settings.events_topic]
    e = scripted_events(1)[0]
    asyncio.run(feed(app, [(None, pack(e))]))
    assert rekeyed == [(e["user_id"].encode(), pack(e))]
    assert pipe.user_record(e["user_id"]) is None  # applied when its keyed copy comes back


def test_a_forget_without_a_key_is_dead_lettered_and_forgets_no_one(pipeline):
    from stream.app import CONTROL_HEADER, FORGET

    app, pipe, _, dead = pipeline
    events = scripted_events(5, users=1)

    async def run():
        async with app.agents[AGENT].test_context() as agent:
            for e in events:
                await agent.put(key=b"user-0", value=pack(e))
            await agent.put(key=None, value=b"", headers=[(CONTROL_HEADER, FORGET)])
            await asyncio.sleep(0.3)

    asyncio.run(run())
    assert [unpack(v)["reason"] for _, v in dead] == ["missing-field"]
    assert pipe.counters.forgotten == 0 and pipe.user_record("user-0").n_events == 5


def test_a_weight_past_the_limit_is_dead_lettered_and_the_population_stays_finite(pipeline):
    app, pipe, snapshots, dead = pipeline
    events = scripted_events(12, users=3)
    huge = [pack({**e, "weight": 1e308}) for e in events[:2]]
    payloads = [(e["user_id"].encode(), v) for e, v in zip(events[:2], huge, strict=True)]
    payloads += [(e["user_id"].encode(), pack(e)) for e in events]
    asyncio.run(feed(app, payloads))
    assert [unpack(v)["reason"] for _, v in dead] == ["oversized-field"] * 2
    assert pipe.counters.applied == len(events)
    pop = pipe._population(0)
    assert math.isfinite(sum(pop.state()["m"].values()))


def test_a_trailing_snapshot_goes_out_with_the_first_batch_after_it_falls_due(make_pipeline):
    app, pipe, snapshots, _ = make_pipeline(min_interval_s=0.5)
    (first,) = scripted_events(1, users=1)
    second = {**first, "ts": first["ts"] + 10.0}  # the same category: too small a move to send
    other = {**first, "user_id": "user-9"}

    async def run() -> list[tuple[bytes, int]]:
        async with app.agents[AGENT].test_context() as agent:
            for e in (first, second):  # two batches: the second is owed at first + 0.5 s
                await agent.put(key=b"user-0", value=pack(e))
                await asyncio.sleep(0.05)
            before = [(k, decode_snapshot(v)["n_events"]) for k, v in snapshots]
            await asyncio.sleep(0.5)  # due now; no timer runs under test_context
            await agent.put(key=b"user-9", value=pack(other))
            await asyncio.sleep(0.1)
        return before

    assert asyncio.run(run()) == [(b"user-0", 1)]
    after = [(k, decode_snapshot(v)["n_events"]) for k, v in snapshots]
    assert after == [(b"user-0", 1), (b"user-9", 1), (b"user-0", 2)]
    assert len(pipe.pending) == 0


def test_trailing_snapshots_are_published_only_for_partitions_the_worker_owns(
    pipeline, monkeypatch
):
    app, pipe, snapshots, _ = pipeline
    events = scripted_events(20, users=2)
    asyncio.run(feed(app, [(e["user_id"].encode(), pack(e)) for e in events]))
    published = len(snapshots)
    records = {uid: pipe.user_record(uid) for uid in ("user-0", "user-1")}
    records["user-1"].partition = 1  # as if its events came on partition 1
    for uid in records:
        pipe.pending.owe(uid, 0.0)  # owed a trailing snapshot
    topic = pipe.settings.events_topic
    # After a rebalance this worker has partition 0 only; partition 1 is another's (or a
    # standby it holds): that owner publishes user-1.
    monkeypatch.setattr(app.consumer, "assignment", lambda: {TP(topic, 0), TP("other", 1)})
    asyncio.run(pipe.flush_pending())
    assert [k for k, _ in snapshots[published:]] == [b"user-0"]
    assert len(pipe.pending) == 0


class _Record:
    """An aiokafka ConsumerRecord's fields that ``handle_records`` reads."""

    def __init__(self, topic: str, offset: int, event: dict):
        self.topic, self.partition, self.offset = topic, 0, offset
        self.key, self.value, self.headers = event["user_id"].encode(), pack(event), ()


def _stored(events: list[dict], upto: int, uid: str, cfg) -> bytes:
    """The user's record after ``events[:upto]`` (offsets = positions), as the table stores
    it."""
    from stream.codec import encode_record, stored_record

    own = [i for i in range(upto) if events[i]["user_id"] == uid]
    record = replay([events[i] for i in own], cfg)
    record.partition, record.offset = 0, own[-1]
    return stored_record(encode_record(record))


def test_the_eviction_after_a_commit_runs_beside_the_batches_and_stops_for_a_window(
    make_pipeline, monkeypatch
):
    import stream.record_cache

    monkeypatch.setattr(stream.record_cache, "WRITE_SLICE_S", 0.0)  # a pause every chunk
    monkeypatch.setattr(stream.record_cache, "EVICT_CHUNK", 4)
    app, pipe, _, _ = make_pipeline(cache_users=10)
    topic = pipe.settings.events_topic
    tp = TP(topic, 0)
    events = scripted_events(300, users=100)
    records = [_Record(topic, i, e) for i, e in enumerate(events)]

    async def run() -> tuple[int, int, int, int]:
        async with app.agents[AGENT].test_context():
            await pipe.handle_records({tp: records[:150]})
            await pipe.before_commit()
            await pipe.after_commit()  # returns at once: the eviction goes on beside
            at_return = len(pipe.records.live)
            await asyncio.sleep(0)  # its first slice
            await pipe.handle_records({tp: records[150:]})  # a batch between its slices
            before = len(pipe.records.live)
            await pipe.before_commit()  # a window closes: the eviction stops at its next slice
            stopped = len(pipe.records.live)
            await pipe.after_commit()
            await pipe.records._eviction
            return at_return, before, stopped, len(pipe.records.live)

    at_return, before, stopped, end = asyncio.run(run())
    assert at_return > 10  # the commit did not wait for it
    assert 10 < stopped == before and end == 10  # it stopped part-way; the next one finished
    for uid in {e["user_id"] for e in events}:  # nothing lost to either
        assert pipe.records.users.data[uid] == _stored(events, 300, uid, pipe.cfg)


def test_a_window_is_written_as_it_ended_while_later_batches_change_its_records(
    pipeline, monkeypatch
):
    import stream.record_cache

    monkeypatch.setattr(stream.record_cache, "WRITE_SLICE_S", 0.0)  # served every 32 records
    app, pipe, _, _ = pipeline
    written = pipe.output.sent.setdefault(pipe.records.changelog, [])
    topic = pipe.settings.events_topic
    tp = TP(topic, 0)
    events = scripted_events(400, users=100)
    records = [_Record(topic, i, e) for i, e in enumerate(events)]

    async def run() -> tuple[dict, int]:
        async with app.agents[AGENT].test_context():
            await pipe.handle_records({tp: records[:300]})
            commit = asyncio.ensure_future(pipe.before_commit())
            await asyncio.sleep(0)  # the first slice is written; the rest wait
            assert 0 < len(pipe.records.unwritten) < 100
            await pipe.handle_records({tp: records[300:]})  # changes most of them
            await commit
            acks = pipe.pending_acks()
            in_first = len(written)
            await pipe.before_commit()
            return acks, in_first

    acks, in_first = asyncio.run(run())
    assert acks == {tp: 300}  # the second batch is not covered by the first window
    first, second = dict(written[:in_first]), dict(written[in_first:])
    users = {e["user_id"] for e in events[:300]}
    assert len(first) == in_first and set(first) == {u.encode() for u in users}  # once each
    for uid in users:  # as at the first window's end, though most changed before written
        assert first[uid.encode()] == _stored(events, 300, uid, pipe.cfg)
    changed = {e["user_id"] for e in events[300:]}
    assert len(changed & users) > 50 and set(second) == {u.encode() for u in changed}
    for uid in changed:
        assert second[uid.encode()] == _stored(events, 400, uid, pipe.cfg)


def test_published_users_are_forgotten_in_publish_order_once_their_interval_is_over(
    make_pipeline,
):
    """``recent`` holds users in the order of their latest snapshot, so expiring it reads only
    the expired ones: a user published again moves behind the others."""
    _, pipe, _, _ = make_pipeline(min_interval_s=1.0)
    records = {}
    for event in scripted_events(30, users=3):
        records.setdefault(event["user_id"], pipe.record(event["user_id"])).apply(event)
    a, b, c = sorted(records)
    for uid, now in ((a, 10.0), (b, 10.5), (c, 10.6), (a, 10.9)):
        pipe.publish(uid, records[uid], now)
    assert list(pipe.recent) == [b, c, a]
    pipe._expire_recent(10.55)
    assert list(pipe.recent) == [c, a]
    pipe._expire_recent(11.0)
    assert not pipe.recent

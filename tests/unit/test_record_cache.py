"""The record cache: what stays live, what a window writes, and what a forget leaves."""

import asyncio

import pytest

from stream import record_cache
from stream.app import create_app
from stream.codec import LZ4_MARK, decode_record, encode_record
from stream.settings import Settings
from tests.agent.conftest import RecordingOutput

pytestmark = pytest.mark.unit


@pytest.fixture
def make_records():
    """A factory: a worker's record cache over its memory-store users table, holding at
    most ``limit`` live records, its changelog records kept in order."""

    def make(limit: int = 100):
        _, pipe = create_app(
            Settings(bootstrap="127.0.0.1:1", app_id="cache-test", cache_users=limit),
            store="memory://",
        )
        records = pipe.records
        records.output = RecordingOutput([records.changelog])
        return records

    return make


def applied(records, uid: str, partition: int = 0, n: int = 1, ts: float = 1.0):
    """``n`` events applied to the user's live record, marked changed."""
    record = records.to_change(uid)
    for i in range(n):
        record.apply({"item_id": f"i{i}", "categories": ["a"], "event_type": "view", "ts": ts + i})
    record.partition = partition
    records.changed(uid)
    return record


def written(records, n: int) -> None:
    """Users u0 … u{n-1}, an event each, their window closed and written."""
    for i in range(n):
        applied(records, f"u{i}")
    records.end_window()
    records.write_some(n)


def changelog(records) -> list[tuple[bytes, bytes | None]]:
    return records.output.sent[records.changelog]


def test_a_window_writes_each_changed_record_once_as_it_was_at_its_end(make_records):
    records = make_records()
    applied(records, "u1", n=2)
    applied(records, "u2")
    applied(records, "u1")  # changed twice in the window: written once
    records.end_window()
    applied(records, "u2", ts=5.0)  # the next window changes u2 before its write: u2 goes first
    records.write_some(10)
    written = {
        key.decode(): decode_record(value, records.cfg).n_events
        for key, value in changelog(records)
    }
    assert written == {"u1": 3, "u2": 1}
    assert [key for key, _ in changelog(records)][0] == b"u2"
    assert records.dirty == {"u2"} and not records.unwritten


def test_past_its_limit_the_least_recently_used_clean_records_leave(make_records):
    records = make_records(limit=2)
    for uid in ("u1", "u2", "u3", "u4"):
        applied(records, uid)
    records.end_window()
    records.write_some(10)
    records.get("u1")  # used again: u2 is now the least recently used
    records.changed("u3")  # changed in place since the write: kept until it is written
    asyncio.run(records.evict())
    assert list(records.live) == ["u3", "u4", "u1"]
    # an evicted user comes back from the table's bytes, with its events
    assert records.get("u2").n_events == 1


def test_eviction_serves_batches_between_its_slices(make_records, monkeypatch):
    monkeypatch.setattr(record_cache, "WRITE_SLICE_S", 0.0)  # a pause after every chunk
    monkeypatch.setattr(record_cache, "EVICT_CHUNK", 4)
    records = make_records(limit=3)
    written(records, 20)
    seen = []

    async def a_batch_between_slices():
        await asyncio.sleep(0)  # the eviction's first slice, then its pause
        seen.append(len(records.live))
        records.get("u10")  # used again: the most recent now
        applied(records, "u12", ts=9.0)  # changed: stays until the next window writes it

    async def both():
        await asyncio.gather(records.evict(), a_batch_between_slices())

    asyncio.run(both())
    assert seen == [16]
    assert list(records.live) == ["u19", "u10", "u12"] and records.dirty == {"u12"}


def test_an_eviction_told_to_stop_ends_at_its_next_chunk_and_the_next_one_goes_on(
    make_records, monkeypatch
):
    monkeypatch.setattr(record_cache, "EVICT_CHUNK", 4)
    records = make_records(limit=3)
    written(records, 20)
    chunks = []

    def stop() -> bool:
        chunks.append(len(records.live))
        return len(chunks) > 2  # two chunks, then a window wants the lock

    asyncio.run(records.evict(stop=stop))
    assert chunks == [20, 16, 12] and len(records.live) == 12
    asyncio.run(records.evict())
    assert list(records.live) == ["u17", "u18", "u19"]


def test_a_forget_writes_a_tombstone_unless_events_follow_it_in_the_window(make_records):
    records = make_records()
    applied(records, "gone", partition=1)
    applied(records, "back", partition=1)
    records.end_window()
    records.write_some(10)
    records.forget("gone", 1)
    records.forget("back", 1)
    applied(records, "back", partition=1, ts=9.0)  # events after the forget start anew
    records.end_window()
    records.write_some(10)
    after = changelog(records)[2:]
    assert (b"gone", None) in after and all(key != b"gone" or value is None for key, value in after)
    back = [value for key, value in after if key == b"back"]
    assert len(back) == 1 and decode_record(back[0], records.cfg).n_events == 1
    assert records.state("gone") is None and "gone" not in records.users.data


def test_revoked_partitions_leave_the_cache_and_others_stay(make_records):
    records = make_records()
    for uid, partition in (("a", 0), ("b", 1), ("c", 2)):
        applied(records, uid, partition=partition)
    records.end_window()
    records.write_some(10)
    records.drop_partitions({1, 2})
    assert list(records.live) == ["a"]
    assert records.state("b") == records.users.data["b"]  # still in the table, as bytes


def test_long_records_are_stored_compressed_and_read_back_whole(make_records):
    records = make_records(limit=0)  # every record leaves after its write
    long_one = applied(records, "long", n=50).to_state()
    short_one = applied(records, "short", n=2).to_state()
    records.end_window()
    records.write_some(10)
    stored = dict(changelog(records))
    assert stored[b"long"][:1] == LZ4_MARK and stored[b"short"][:1] != LZ4_MARK
    assert len(stored[b"long"]) < len(encode_record(decode_record(stored[b"long"])))
    assert records.users.data["long"] == stored[b"long"]  # the store holds the same bytes
    asyncio.run(records.evict())
    assert not records.live
    assert records.get("long").to_state() == long_one
    assert records.get("short").to_state() == short_one

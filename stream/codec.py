"""The one codec module: events in, snapshots and dead letters out, msgpack on the wire.

``decode_event`` turns a message's bytes into a normalised event dict or raises
``InvalidEvent`` with a short machine-readable ``reason`` and a human ``detail``. JSON is
accepted only where the producer marks it (header ``content-type: application/json``).
Snapshots are msgpack, or JSON where ``INTEREST_SNAPSHOT_FORMAT=json`` asks for it;
``decode_snapshot`` reads both. The JSON Schemas in ``stream/schemas`` describe all three.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import lz4.block
import msgpack
import ormsgpack
from faust.serializers import codecs

from models.native import accelerated_by
from models.schema import (
    DLQ_REASONS,
    EVENT_TYPE_ALIASES,
    EVENT_TYPES,
    MAX_FUTURE_S,
    MAX_PAYLOAD_BYTES,
    MAX_WEIGHT,
    OTHER,
    POPULATION_PREFIX,
    canonical_event_type,
)
from models.tracker import TrackerConfig, UserRecord

JSON_CONTENT_TYPE = b"application/json"
MAX_ID_BYTES = 256
MAX_CATEGORY_BYTES = 128
MAX_CATEGORIES = 64
REASONS = DLQ_REASONS  # the DLQ reasons, under the name this module has always exported

try:  # validate_event's common case in C (stream/_wire.c); optional, as models' extensions
    from stream import _wire
except ImportError:
    _wire = None

# What stream/_wire.c's clean_event needs of the rules below, built from their constants:
# the id, categories and category limits in characters that no byte count can exceed (4 bytes
# a character), the reserved category and user prefix, every accepted event type name (aliases
# too) with its schema name, the largest weight.
_PLAIN_RULES = (
    MAX_ID_BYTES // 4,
    MAX_CATEGORIES,
    MAX_CATEGORY_BYTES // 4,
    OTHER,
    POPULATION_PREFIX,
    {
        name: canonical_event_type(name)
        for name in (*EVENT_TYPES, *EVENT_TYPE_ALIASES)
        if canonical_event_type(name) in EVENT_TYPES
    },
    float(MAX_WEIGHT),
)


class InvalidEvent(ValueError):
    """An event that cannot be applied: ``reason`` is one of ``REASONS``.

    The ``reason`` is what the dead-letter record and ``/metrics`` carry; ``detail`` says
    what to fix:

    >>> try:
    ...     decode_event(b'{"user_id": "u1"}')  # JSON, but not marked as JSON
    ... except InvalidEvent as err:
    ...     print(err.reason, err.reason in REASONS, "|", err.detail)
    json-unmarked True | looks like JSON: set header content-type=application/json
    >>> decode_event(b'{"user_id": "u1"}', content_type=b"application/json")
    Traceback (most recent call last):
    ...
    stream.codec.InvalidEvent: missing-field: item_id is required
    """

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Limits:
    """What a valid event may look like beyond its schema.

    >>> data = pack({"user_id": "u1", "item_id": "i1", "category": "shoes",
    ...              "event_type": "click", "ts": 1000.0})
    >>> decode_event(data, limits=Limits(max_payload=32))
    Traceback (most recent call last):
    ...
    stream.codec.InvalidEvent: oversized: 67 bytes > 32
    >>> decode_event(data, limits=Limits(max_future_s=60), now=900.0)
    Traceback (most recent call last):
    ...
    stream.codec.InvalidEvent: future: ts is 100s in the future
    >>> decode_event(data, now=900.0)["ts"]  # the default limits allow 300 s
    1000.0
    """

    max_payload: int = MAX_PAYLOAD_BYTES
    max_future_s: float = MAX_FUTURE_S


_PACKERS = threading.local()  # a Packer per thread: packb builds one per call (0.4-0.7 µs)

# ormsgpack writes the bytes msgpack's Packer(use_bin_type=True) writes for every type the
# project packs (tests/unit/test_codec_pack.py), in a third of the time (a snapshot 5.8 ->
# 1.9 µs); user records are packed by msgpack still (``encode_record`` says why). What
# ormsgpack would write differently or cannot (dict, str and float subclasses, dataclasses,
# enums, dates, UUIDs, ints past 64 bits, nesting past 255) it refuses with these options,
# and msgpack packs it, or raises, as before.
_ORMSGPACK_OPTIONS = (
    ormsgpack.OPT_NON_STR_KEYS
    | ormsgpack.OPT_PASSTHROUGH_BIG_INT
    | ormsgpack.OPT_PASSTHROUGH_DATACLASS
    | ormsgpack.OPT_PASSTHROUGH_DATETIME
    | ormsgpack.OPT_PASSTHROUGH_ENUM
    | ormsgpack.OPT_PASSTHROUGH_SUBCLASS
    | ormsgpack.OPT_PASSTHROUGH_UUID
)


def pack(obj: Any) -> bytes:
    """msgpack with str as str and bytes as bin (readable from any language).

    >>> unpack(pack({"a": [1, 2.5, "x", b"y"]}))
    {'a': [1, 2.5, 'x', b'y']}
    """
    try:
        return ormsgpack.packb(obj, option=_ORMSGPACK_OPTIONS)
    except TypeError:  # what ormsgpack refuses (its encode error is a TypeError)
        return msgpack_pack(obj)


def msgpack_pack(obj: Any) -> bytes:
    """``pack`` by msgpack's own Packer: the reference ``pack`` writes the bytes of."""
    packer = getattr(_PACKERS, "packer", None)
    if packer is None:
        packer = _PACKERS.packer = msgpack.Packer(use_bin_type=True)
    try:
        return packer.pack(obj)
    except BaseException:
        # a failed pack leaves its partial output in the buffer: start the next one afresh
        _PACKERS.packer = None
        raise


@accelerated_by(_wire)
def packed(obj: Any) -> bytes:
    """``msgpack_pack``'s bytes, written in C (``stream/_wire.c``) for plain data: exact
    None, bool, int, float, str, bytes, list, tuple and dict (anything else: msgpack's Packer
    answers). A user record's ~250 small objects cost msgpack's Packer ~20 µs, every window.

    >>> packed([1, -40, 2.5, "é", b"x", (None, True), {"k": 300}]) == msgpack_pack(
    ...     [1, -40, 2.5, "é", b"x", (None, True), {"k": 300}])
    True
    """
    return msgpack_pack(obj)


def unpack(data: bytes) -> Any:
    return msgpack.unpackb(data, raw=False, strict_map_key=False)


def _id(event: Mapping, name: str) -> str:
    if name not in event:
        raise InvalidEvent("missing-field", f"{name} is required")
    value = event[name]
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidEvent("wrong-type", f"{name} must be str or int, not {type(value).__name__}")
    text = str(value)
    if not text:
        raise InvalidEvent("wrong-type", f"{name} is empty")
    if len(text) > MAX_ID_BYTES // 4 and len(text.encode()) > MAX_ID_BYTES:  # ≤ 4 B a char
        raise InvalidEvent("oversized-field", f"{name} is longer than {MAX_ID_BYTES} bytes")
    return text


def _user_id(event: Mapping) -> str:
    return _not_reserved(_id(event, "user_id"))


def _not_reserved(uid: str) -> str:
    if uid.startswith(POPULATION_PREFIX):  # would overwrite a population record's snapshots
        raise InvalidEvent("reserved-id", f"ids starting with {POPULATION_PREFIX} are reserved")
    return uid


def control_key(key: bytes | None) -> str:
    """The user a control record (``forget``) names: its key, as UTF-8.

    >>> control_key(b"user-1")
    'user-1'
    >>> control_key(None)
    Traceback (most recent call last):
    ...
    stream.codec.InvalidEvent: missing-field: a control record's key is the user id
    """
    if not key:
        raise InvalidEvent("missing-field", "a control record's key is the user id")
    try:
        uid = key.decode()
    except UnicodeDecodeError:
        raise InvalidEvent("wrong-type", "a control record's key is not UTF-8") from None
    return _not_reserved(uid)


def _categories(event: Mapping, optional: bool = False) -> list[str] | None:
    if optional and "categories" not in event and "category" not in event:
        return None  # to be resolved through the item catalog
    if "categories" in event:
        cats = event["categories"]
        if not isinstance(cats, list):
            raise InvalidEvent("wrong-type", "categories must be a list of str")
    elif "category" in event:
        cats = [event["category"]]
    else:
        raise InvalidEvent("missing-field", "categories (or category) is required")
    if not cats:
        raise InvalidEvent("empty-categories", "categories must hold at least one category")
    if len(cats) > MAX_CATEGORIES:
        raise InvalidEvent("oversized-field", f"more than {MAX_CATEGORIES} categories")
    out = []
    for c in cats:
        if isinstance(c, bool) or not isinstance(c, str | int):
            raise InvalidEvent("wrong-type", f"a category must be str, not {type(c).__name__}")
        c = str(c)
        if not c:
            raise InvalidEvent("empty-categories", "a category is the empty string")
        if len(c) > MAX_CATEGORY_BYTES // 4 and len(c.encode()) > MAX_CATEGORY_BYTES:
            raise InvalidEvent("oversized-field", f"a category is over {MAX_CATEGORY_BYTES} bytes")
        if c == OTHER:  # a distribution's unnamed mass: a category of that name would hide in it
            raise InvalidEvent("reserved-id", f"the category {OTHER!r} is reserved")
        out.append(c)
    return out


def _event_type(event: Mapping) -> str:
    if "event_type" not in event:
        raise InvalidEvent("missing-field", "event_type is required")
    et = event["event_type"]
    if not isinstance(et, str):
        raise InvalidEvent("wrong-type", f"event_type must be str, not {type(et).__name__}")
    et = canonical_event_type(et)
    if et not in EVENT_TYPES:
        raise InvalidEvent(
            "unknown-event-type", f"{et[:40]!r} is not one of {', '.join(EVENT_TYPES)}"
        )
    return et


def _number(event: Mapping, name: str) -> float:
    value = event[name]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidEvent("wrong-type", f"{name} must be a number, not {type(value).__name__}")
    try:
        return float(value)
    except OverflowError:  # an integer past float's range (JSON allows any number of digits)
        reason = "bad-timestamp" if name == "ts" else "wrong-type"
        raise InvalidEvent(reason, f"{name} is out of range") from None


def validate_event(
    event: Any, limits: Limits = Limits(), now: float | None = None, catalog: bool = False
) -> dict:
    """Check a decoded event against the schema; return it normalised.

    With ``catalog``, an event may leave out its categories (``categories`` is then ``None``,
    for ``stream.catalog.resolve_categories``).

    >>> validate_event({"user_id": 7, "item_id": "i", "category": "c", "event_type": "pv",
    ...                 "ts": 1.5})
    {'user_id': '7', 'item_id': 'i', 'categories': ['c'], 'event_type': 'view', 'ts': 1.5}
    >>> validate_event({"user_id": 7, "item_id": "i", "categories": [], "event_type": "view",
    ...                 "ts": 1.5})
    Traceback (most recent call last):
    ...
    stream.codec.InvalidEvent: empty-categories: categories must hold at least one category
    """
    now = time.time() if now is None else now
    latest = now + limits.max_future_s
    if _wire is not None and type(latest) is float:  # the usual shape, in C; else below
        plain = _wire.clean_event(event, _PLAIN_RULES, latest, bool(catalog))
        if plain is not None:
            return plain
    if not isinstance(event, dict):
        raise InvalidEvent("not-a-map", f"an event is a map, not {type(event).__name__}")
    out = {
        "user_id": _user_id(event),
        "item_id": _id(event, "item_id"),
        "categories": _categories(event, catalog),
        "event_type": _event_type(event),
    }
    if "ts" not in event:
        raise InvalidEvent("missing-field", "ts is required")
    ts = _number(event, "ts")
    if not math.isfinite(ts) or ts < 0:
        raise InvalidEvent("bad-timestamp", f"ts must be finite and >= 0, got {ts}")
    if ts > latest:
        raise InvalidEvent("future", f"ts is {ts - now:.0f}s in the future")
    out["ts"] = ts
    if event.get("weight") is not None:
        w = _number(event, "weight")
        if not math.isfinite(w) or w < 0:
            raise InvalidEvent("wrong-type", f"weight must be finite and >= 0, got {w}")
        if w > MAX_WEIGHT:
            raise InvalidEvent("oversized-field", f"weight is over {MAX_WEIGHT:g}, got {w:g}")
        out["weight"] = w
    return out


def decode_event(
    data: bytes | None,
    content_type: bytes | None = None,
    limits: Limits = Limits(),
    now: float | None = None,
    catalog: bool = False,
) -> dict:
    """Bytes of a message -> a valid, normalised event, or ``InvalidEvent``."""
    if data is None:
        raise InvalidEvent("malformed", "empty message (no value)")
    if len(data) > limits.max_payload:
        raise InvalidEvent("oversized", f"{len(data)} bytes > {limits.max_payload}")
    if content_type is not None and content_type.lower().startswith(JSON_CONTENT_TYPE):
        try:
            event = json.loads(data)
        except (ValueError, RecursionError) as exc:
            raise InvalidEvent("malformed", f"invalid JSON: {str(exc)[:120]}") from None
    else:
        try:
            event = unpack(data)
        except Exception as exc:
            if data[:1] in (b"{", b"["):
                raise InvalidEvent(
                    "json-unmarked", "looks like JSON: set header content-type=application/json"
                ) from None
            raise InvalidEvent("malformed", f"invalid msgpack: {type(exc).__name__}") from None
    return validate_event(event, limits, now, catalog)


def header(headers: Any, name: str) -> bytes | None:
    """The value of a record header (``name`` in lower case; a list of pairs or a mapping).

    >>> header([("Content-Type", b"application/json")], "content-type")
    b'application/json'
    """
    if not headers:
        return None
    items = headers.items() if isinstance(headers, Mapping) else headers
    for k, v in items:
        if k.lower() == name:
            return v
    return None


def dead_letter(
    original: bytes | None, reason: str, detail: str, topic: str, partition: int, offset: int
) -> bytes:
    """A DLQ record: the original bytes untouched, why, and where they came from."""
    return pack(
        {
            "reason": reason,
            "detail": detail,
            "original": original,
            "topic": topic,
            "partition": partition,
            "offset": offset,
            "rejected_at": time.time(),
        }
    )


def encode_record(record: UserRecord) -> bytes:
    """A user's record for the table and its changelog (``UserRecord.to_state``, msgpack).

    Packed as msgpack's Packer packs it (``packed``), not by ormsgpack (``pack``): a record's
    bytes live as long as its user, and with ormsgpack's the worker's RSS grew ~450 B more per
    user with 50-event histories (the heap left fragmented; docs/RESULTS.md)."""
    return packed(record.to_state(copy=False))


# What the table and its changelog hold of a record (``stored_record``): from this many bytes
# on (a user with a few dozen events), the packed record LZ4-compressed behind ``LZ4_MARK``,
# msgpack's never-used byte; shorter records as packed (compressing them saves little and
# would cost the hot path of users with a few events).
COMPRESS_FROM = 512
LZ4_MARK = b"\xc1"


def stored_record(blob: bytes) -> bytes:
    """``encode_record``'s bytes as the table and its changelog store them: LZ4-compressed
    (a block with its size, behind ``LZ4_MARK``) from ``COMPRESS_FROM`` bytes on, where that
    is shorter. 50-event records of the shared sets shrink by ~21%, the bench's by ~35%;
    compressing one takes ~2.5 µs, reading it back ~0.8 µs (docs/RESULTS.md).

    >>> from models.tracker import replay
    >>> evs = [{"item_id": f"item-{t}", "categories": ["c"], "event_type": "view", "ts": t}
    ...        for t in range(50)]
    >>> blob = encode_record(replay(evs, TrackerConfig()))
    >>> stored = stored_record(blob)
    >>> stored[:1] == LZ4_MARK, len(stored) < len(blob), record_state(stored) == unpack(blob)
    (True, True, True)
    >>> stored_record(blob[:100]) == blob[:100]  # short: as it is
    True
    """
    if len(blob) < COMPRESS_FROM:
        return blob
    small = lz4.block.compress(blob, store_size=True)
    return LZ4_MARK + small if len(small) + 1 < len(blob) else blob


def record_state(data: bytes) -> Any:
    """The state (``UserRecord.to_state``, or a version-1 map) in a record's bytes as
    ``encode_record`` or ``stored_record`` wrote them."""
    if data[:1] == LZ4_MARK:
        data = lz4.block.decompress(memoryview(data)[1:])
    return unpack(data)


def decode_record(data: bytes, cfg: TrackerConfig | None = None) -> UserRecord:
    """A record's bytes (``encode_record``, ``stored_record``, or a version-1 record: a
    msgpack map) as a live record."""
    return UserRecord.from_state(record_state(data), cfg)


SNAPSHOT_FORMATS = ("msgpack", "json")


def encode_snapshot(snapshot: Mapping, fmt: str = "msgpack") -> bytes:
    """A snapshot's bytes: a msgpack map, or compact UTF-8 JSON (``fmt="json"``).

    >>> encode_snapshot({"user_id": "u", "drift": False}, "json")
    b'{"user_id":"u","drift":false}'
    >>> decode_snapshot(encode_snapshot({"user_id": "u"})) == {"user_id": "u"}
    True
    """
    if fmt == "json":
        return json.dumps(
            dict(snapshot), separators=(",", ":"), ensure_ascii=False, allow_nan=False
        ).encode()
    if fmt != "msgpack":
        raise ValueError(f"snapshot format must be one of {', '.join(SNAPSHOT_FORMATS)}: {fmt!r}")
    return pack(dict(snapshot))


def decode_snapshot(data: bytes) -> dict:
    """Either format: a msgpack map never starts with ``{`` (0x7b is a positive fixint).
    msgpack is read by ormsgpack, which caches map keys: 6.9 µs for a snapshot of 30 events
    that msgpack's unpacker takes 13.5 µs for, on a subscriber's cores."""
    if data[:1] == b"{":
        return json.loads(data)
    return ormsgpack.unpackb(data, option=ormsgpack.OPT_NON_STR_KEYS)


class MsgpackCodec(codecs.Codec):
    """Faust codec ``msgpack``: plain msgpack, no base64 layer.

    What Faust writes with it are ``pack``'s bytes, which any msgpack reader reads:

    >>> register_codecs()
    >>> snapshot = {"user_id": "u1", "distribution": {"shoes": 0.75}}
    >>> data = codecs.dumps("msgpack", snapshot)
    >>> data == pack(snapshot), codecs.loads("msgpack", data)
    (True, {'user_id': 'u1', 'distribution': {'shoes': 0.75}})
    """

    def _dumps(self, obj: Any) -> bytes:
        return pack(obj)

    def _loads(self, s: bytes) -> Any:
        return unpack(s)


class Utf8Codec(codecs.Codec):
    r"""Faust codec ``utf8`` for keys: ``str`` <-> UTF-8 bytes (the user id as produced).

    A key that is not UTF-8 is read with U+FFFD in place of its bad bytes, not refused:

    >>> register_codecs()
    >>> codecs.dumps("utf8", "élise"), codecs.loads("utf8", b"\xc3\xa9lise")
    (b'\xc3\xa9lise', 'élise')
    >>> codecs.loads("utf8", b"\xe9lise") == "\ufffdlise"
    True
    """

    def _dumps(self, obj: Any) -> bytes:
        return obj.encode() if isinstance(obj, str) else bytes(obj)

    def _loads(self, s: bytes) -> Any:
        return s.decode("utf-8", errors="replace")


def register_codecs() -> None:
    """Make ``msgpack`` and ``utf8`` available to Faust topics and tables (idempotent)."""
    codecs.register("msgpack", MsgpackCodec())
    codecs.register("utf8", Utf8Codec())

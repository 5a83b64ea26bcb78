"""The shipped JSON Schemas agree with the codec: what one accepts the other accepts, and what
the worker publishes (snapshots in both formats, dead letters) validates."""

from __future__ import annotations

import base64
import json
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from models.fused_snapshot import fused_snapshot
from models.fusion import FusionParams
from models.online.population import PopulationInterest
from models.priors.population import PopulationPrior
from models.schema import DLQ_REASONS, EVENT_TYPE_ALIASES, EVENT_TYPES, POPULATION_PREFIX
from models.tracker import TrackerConfig, UserRecord, build_snapshot, prior_depth, replay
from stream.codec import (
    InvalidEvent,
    Limits,
    dead_letter,
    decode_event,
    decode_snapshot,
    encode_snapshot,
    pack,
    unpack,
)
from stream.schemas import SCHEMAS, load_schema
from stream.settings import Settings

pytestmark = pytest.mark.unit
NOW = 1_800_000_000.0
LIMITS = Limits(max_payload=1 << 20, max_future_s=1e12)  # the schema has no clock and no size
EVENT = Draft202012Validator(load_schema("event"))
SNAPSHOT = Draft202012Validator(load_schema("snapshot"))
DLQ = Draft202012Validator(load_schema("dlq"))


def codec_accepts(event: object) -> bool:
    try:
        decode_event(json.dumps(event).encode(), b"application/json", LIMITS, now=NOW)
    except InvalidEvent:
        return False
    return True


def test_every_schema_is_a_valid_draft_2020_12_schema():
    for name in SCHEMAS:
        Draft202012Validator.check_schema(load_schema(name))


def test_the_schemas_list_the_vocabulary_of_models_schema():
    event_types = load_schema("event")["properties"]["event_type"]["enum"]
    assert sorted(event_types) == sorted([*EVENT_TYPES, *EVENT_TYPE_ALIASES])
    assert load_schema("dlq")["properties"]["reason"]["enum"] == list(DLQ_REASONS)


GOOD = {"user_id": "u1", "item_id": 42, "categories": ["shoes"], "event_type": "buy", "ts": 1.0}
CASES = [
    (GOOD, True),
    ({**GOOD, "weight": 2.5}, True),
    ({**GOOD, "weight": None}, True),
    ({**GOOD, "extra": {"anything": [1]}}, True),
    ({**{k: v for k, v in GOOD.items() if k != "categories"}, "category": "hats"}, True),
    ({**GOOD, "categories": [7, "x"]}, True),
    ({**GOOD, "category": 3.5}, True),  # ignored: categories wins, as in the codec
    ({k: v for k, v in GOOD.items() if k != "categories"}, False),
    ({**{k: v for k, v in GOOD.items() if k != "categories"}, "category": ""}, False),
    ({**GOOD, "categories": []}, False),
    ({**GOOD, "categories": "shoes"}, False),
    ({**GOOD, "categories": ["x" * 129]}, False),
    ({**GOOD, "categories": ["c"] * 65}, False),
    ({**GOOD, "categories": [True]}, False),
    ({**GOOD, "user_id": ""}, False),
    ({**GOOD, "user_id": True}, False),
    ({**GOOD, "user_id": 1.5}, False),
    ({**GOOD, "user_id": "u" * 257}, False),
    ({**GOOD, "user_id": f"{POPULATION_PREFIX}p0"}, False),  # reserved: the population's key
    ({**GOOD, "user_id": "__alice"}, True),
    ({**GOOD, "item_id": f"{POPULATION_PREFIX}p0"}, True),  # only user ids key snapshots
    ({**GOOD, "event_type": "teleport"}, False),
    ({**GOOD, "event_type": 3}, False),
    ({**GOOD, "ts": -1}, False),
    ({**GOOD, "ts": "yesterday"}, False),
    ({**GOOD, "weight": -1}, False),
    ({**GOOD, "weight": 1_000_000}, True),
    ({**GOOD, "weight": 1e308}, False),
    ({**GOOD, "categories": ["shoes", "_other"]}, False),  # the name of the unnamed mass
    ({k: v for k, v in GOOD.items() if k != "ts"}, False),
    ({k: v for k, v in GOOD.items() if k != "item_id"}, False),
    ([GOOD], False),
    ("event", False),
]


@pytest.mark.parametrize("event, valid", CASES)
def test_schema_and_codec_agree_on_each_case(event, valid):
    assert EVENT.is_valid(event) is valid
    assert codec_accepts(event) is valid


DELETE = object()
lengths = st.one_of(st.sampled_from([0, 1, 64, 65, 128, 129, 256, 257]), st.integers(0, 300))
# JSON Schema counts 5.0 as an integer; the codec takes only true ints as ids (schema text)
fractional = st.floats(-10, 2e9).filter(lambda x: not x.is_integer())
odd = st.one_of(fractional, st.booleans(), st.none(), st.just([]), st.just({}))
valid_ids = st.one_of(lengths.filter(lambda n: 1 <= n <= 256).map(lambda n: "u" * n), st.integers())
valid_category = st.one_of(st.text("abc", min_size=1, max_size=128), st.integers(0, 99))
any_category = st.one_of(valid_category, lengths.map(lambda n: "c" * n), odd)
ids = st.one_of(valid_ids, lengths.map(lambda n: "u" * n), odd)
event_types = st.sampled_from([*EVENT_TYPES, *EVENT_TYPE_ALIASES])
FIELD_VALUES = {
    "user_id": ids,
    "item_id": ids,
    "categories": st.one_of(
        st.lists(any_category, max_size=66),
        lengths.map(lambda n: ["c"] * min(n, 70)),
        any_category,
    ),
    "category": any_category,
    "event_type": st.one_of(event_types, st.sampled_from(["x", "View", ""]), odd),
    "ts": st.one_of(st.floats(-10, 2e9), st.integers(-5, 10), st.text(max_size=3), odd),
    "weight": st.one_of(st.floats(-1, 5), st.text(max_size=3), odd),
    "extra": st.one_of(ids, odd),
}
valid_events = st.fixed_dictionaries(
    {
        "user_id": valid_ids,
        "item_id": valid_ids,
        "categories": st.lists(valid_category, min_size=1, max_size=64),
        "event_type": event_types,
        "ts": st.floats(0, 2e9),
    },
    optional={"weight": st.one_of(st.none(), st.floats(0, 5))},
)
mutations = st.lists(
    st.sampled_from(sorted(FIELD_VALUES)).flatmap(
        lambda name: st.tuples(st.just(name), st.one_of(st.just(DELETE), FIELD_VALUES[name]))
    ),
    max_size=3,
)


@st.composite
def events(draw) -> dict:
    """A valid event with up to three fields replaced by anything or deleted."""
    event = draw(valid_events)
    for name, value in draw(mutations):
        if value is DELETE:
            event.pop(name, None)
        else:
            event[name] = value
    return event


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events())
def test_schema_and_codec_agree_on_generated_events(event):
    assert EVENT.is_valid(event) is codec_accepts(event), list(EVENT.iter_errors(event))


def user_snapshot(seed: int = 0) -> dict:
    cfg = TrackerConfig()
    evs = [
        {
            "user_id": "u",
            "item_id": f"i{i}",
            "categories": [["a", "b", "c"][(i * 7 + seed) % 3], "z"][: 1 + i % 2],
            "event_type": EVENT_TYPES[i % len(EVENT_TYPES)],
            "ts": 1_700_000_000.0 + 60 * i,
        }
        for i in range(30)
    ]
    return {**build_snapshot("u", replay(evs, cfg), cfg), "emitted_at": time.time()}


@pytest.mark.parametrize("fmt", ["msgpack", "json"])
def test_published_snapshots_validate_in_both_formats(fmt):
    snap = user_snapshot()
    sequence = {"weight": 0.4, "version": "ckpt-1", "age_s": 0.2}
    fused = {**snap, "sources": {"online": {"weight": 0.6}, "sequence": sequence, "fused": {}}}
    population = {"user_id": f"{POPULATION_PREFIX}p0", "ts": 1.0, "distribution": {"a": 1.0}}
    for published in (snap, fused, population):
        data = encode_snapshot(published, fmt)
        is_msgpack_map = 0x80 <= data[0] <= 0x8F or data[0] in (0xDE, 0xDF)
        assert (data[:1] == b"{") if fmt == "json" else is_msgpack_map
        decoded = decode_snapshot(data)
        assert decoded == published
        SNAPSHOT.validate(decoded)


def test_every_optional_field_the_worker_writes_validates():
    """A prior (``sources.online.prior``), content topics (``topics``), a fused estimate
    (``sources.fused``, ``top_items``) and a partition's population record, as the worker
    builds them."""
    cfg = TrackerConfig()
    pop = PopulationInterest()
    record = UserRecord(cfg)
    for i in range(12):
        event = {
            "item_id": f"i{i}",
            "categories": [f"c{i % 4}"],
            "topics": [f"t{i % 3}"],
            "event_type": "view",
            "ts": 1_700_000_000.0 + 60 * i,
        }
        record.apply(event)
        pop.learn_one(event, user_events=i)
    prior = PopulationPrior.from_population(pop, prior_depth(cfg))
    online = build_snapshot("u", record, cfg, prior=prior)
    scored = ({"c1": 0.7, "_other": 0.3}, time.time(), "ckpt-1", [("i3", 0.25), ("i9", 0.125)])
    fused = fused_snapshot(
        "u", record, cfg, scored, {"online": FusionParams(), "collaborative": FusionParams()}, prior
    )
    population = {"user_id": f"{POPULATION_PREFIX}p0", "ts": 1.0, **prior.population_snapshot()}
    assert {"own", "topics"} <= online.keys() and "prior" in online["sources"]["online"]
    assert fused["top_items"] and fused["sources"]["fused"]
    assert {"n_categories", "n_events"} <= population.keys()
    for published in (online, fused, population):
        SNAPSHOT.validate(decode_snapshot(encode_snapshot(published, "msgpack")))
    assert not SNAPSHOT.is_valid({**online, "own": {"c1": "high"}})
    assert not SNAPSHOT.is_valid({**online, "topics": [["t0", 1.0]]})
    assert not SNAPSHOT.is_valid({**fused, "top_items": [{"item_id": "i3", "p": 1.5}]})
    assert not SNAPSHOT.is_valid({**fused, "top_items": [{"p": 0.5}]})
    prior_of = {**online["sources"]["online"], "prior": {"n_events": -1, "ts": 1.0}}
    assert not SNAPSHOT.is_valid({**online, "sources": {"online": prior_of}})
    assert not SNAPSHOT.is_valid({**population, "n_categories": "many"})


def test_the_snapshot_schema_rejects_what_a_consumer_could_not_use():
    snap = user_snapshot()
    assert not SNAPSHOT.is_valid({k: v for k, v in snap.items() if k != "distribution"})
    assert not SNAPSHOT.is_valid({**snap, "version": "3"})
    assert not SNAPSHOT.is_valid({**snap, "distribution": {"a": 1.5}})
    assert not SNAPSHOT.is_valid({**snap, "drift": "no"})
    assert not SNAPSHOT.is_valid({"user_id": f"{POPULATION_PREFIX}p1", "ts": 1.0})
    assert SNAPSHOT.is_valid({"user_id": f"{POPULATION_PREFIX}p1", "distribution": {}})


def test_json_snapshots_are_plain_utf8_json():
    snap = {**user_snapshot(), "user_id": "ü-1"}
    data = encode_snapshot(snap, "json")
    assert json.loads(data.decode("utf-8")) == snap
    with pytest.raises(ValueError, match="snapshot format"):
        encode_snapshot(snap, "xml")
    with pytest.raises(ValueError, match="not JSON compliant"):
        encode_snapshot({**snap, "entropy": float("nan")}, "json")


def test_the_snapshot_format_setting():
    assert Settings.from_env({}).snapshot_format == "msgpack"
    assert Settings.from_env({"INTEREST_SNAPSHOT_FORMAT": "JSON"}).snapshot_format == "json"
    with pytest.raises(ValueError, match="INTEREST_SNAPSHOT_FORMAT must be msgpack or json"):
        Settings.from_env({"INTEREST_SNAPSHOT_FORMAT": "avro"})


def json_view(record: dict) -> dict:
    """A DLQ record as JSON carries it: the original bytes base64-encoded."""
    original = record["original"]
    return {**record, "original": None if original is None else base64.b64encode(original).decode()}


@pytest.mark.parametrize("reason", DLQ_REASONS)
def test_dead_letters_validate(reason):
    record = unpack(dead_letter(b"\xc1 bad", reason, "why", "interest.events", 3, 17))
    assert DLQ.is_valid(json_view(record))
    assert base64.b64decode(json_view(record)["original"]) == b"\xc1 bad"
    no_value = unpack(dead_letter(None, reason, "why", "t", 0, 0))
    assert DLQ.is_valid(json_view(no_value))
    assert not DLQ.is_valid(json_view({**record, "reason": "because"}))
    assert not DLQ.is_valid({k: v for k, v in json_view(record).items() if k != "offset"})


def test_the_schemas_ship_inside_the_package():
    from importlib import resources

    shipped = {p.name for p in resources.files("stream.schemas").iterdir()}
    assert set(SCHEMAS.values()) <= shipped
    assert decode_snapshot(pack({"user_id": "u"})) == {"user_id": "u"}

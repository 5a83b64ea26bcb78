"""The web side without a broker: JSON shapes, /metrics, /health, the token, the live channel,
the page's assets, and the ``plot`` command's drawing and errors."""

from __future__ import annotations

import asyncio
import json
import re
import socket
from collections.abc import Callable, Iterator
from types import SimpleNamespace

import pytest
from aiohttp import DummyCookieJar
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from models.online import PopulationInterest
from models.tracker import build_snapshot, replay
from stream.app import create_app
from stream.codec import encode_record, encode_snapshot
from stream.dev.events import user_events
from stream.settings import Settings
from stream.web.page import STATIC_DIR, page_weight
from stream.web.views import TOKEN_COOKIE as TOKEN
from stream.web.views import authorized

pytestmark = pytest.mark.unit

SNAPSHOT_FIELDS = {
    "user_id",
    "ts",
    "version",
    "n_events",
    "distribution",
    "entropy",
    "short_term",
    "long_term",
    "sources",
    "drift",
    "explain",
    "model",
}


def events(uid: str, cats: list[str], t0: float = 1_700_000_000.0) -> list[dict]:
    return user_events(uid, cats, t0)


def make(token: str | None = None, bootstrap: str = "127.0.0.1:1", **options):
    app, pipe = create_app(Settings(bootstrap=bootstrap, app_id="web-test"), store="memory://")
    pipe.dashboard.token = token  # whatever INTEREST_WEB_TOKEN the environment holds
    for name, value in options.items():
        setattr(pipe.dashboard, name, value)
    return app, pipe


def put_user(pipe, uid: str, cats: list[str]) -> dict:
    record = replay(events(uid, cats), pipe.cfg)
    pipe.users.data[uid] = encode_record(record)  # the local store of the worker owning it
    return record


def feed(pipe, uid: str, cat_lists: list[list[str]]) -> None:
    """Snapshots of a user on another worker, as the snapshot feed would deliver them."""
    for cats in cat_lists:
        snap = build_snapshot(uid, replay(events(uid, cats), pipe.cfg), pipe.cfg)
        pipe.dashboard.ingest(uid.encode(), encode_snapshot({**snap, "emitted_at": 1.0}))


class Http:
    """A test client on its own event loop (an aiohttp application is bound to one loop)."""

    def __init__(self, app):
        if not app.web.blueprints.applied:
            app.web.init_server()
        self.loop = asyncio.new_event_loop()
        self.client = self.loop.run_until_complete(self._start(app))

    @staticmethod
    async def _start(app) -> TestClient:
        client = TestClient(TestServer(app.web.web_app), cookie_jar=DummyCookieJar())
        await client.start_server()
        return client

    def get(self, path: str, headers: dict | None = None, cookies: dict | None = None):
        async def go():
            resp = await self.client.get(path, headers=headers or {}, cookies=cookies)
            return resp.status, resp.headers, await resp.text()

        return self.loop.run_until_complete(go())

    def close(self) -> None:
        self.loop.run_until_complete(self.client.close())
        self.loop.close()


@pytest.fixture
def http() -> Iterator[Callable]:
    """``http(app, path, headers=..., cookies=...)`` -> (status, headers, body text)."""
    clients: dict[int, Http] = {}

    def get(app, path: str, **kw):
        if id(app) not in clients:
            clients[id(app)] = Http(app)
        return clients[id(app)].get(path, **kw)

    yield get
    for client in clients.values():
        client.close()


def get_json(http, app, path: str, **kw) -> tuple[int, dict]:
    status, headers, body = http(app, path, **kw)
    assert headers["Content-Type"].startswith("application/json")
    return status, json.loads(body)


# -- /users/{id}/interest -------------------------------------------------------------------------
def test_user_from_the_local_table_has_the_snapshot_and_its_history(http):
    app, pipe = make()
    feed(pipe, "u1", [["shoes"], ["shoes", "bags"]])
    put_user(pipe, "u1", ["shoes", "bags", "bags", "bags"])
    status, body = get_json(http, app, "/users/u1/interest")
    assert status == 200
    assert set(body) == {"user_id", "found", "source", "snapshot", "history", "history_limit"}
    assert body["found"] is True and body["source"] == "table" and body["user_id"] == "u1"
    snap = body["snapshot"]
    assert set(snap) >= SNAPSHOT_FIELDS
    dist = snap["distribution"]
    assert snap["version"] == 4 and max(dist, key=dist.get) == "bags"
    assert sum(snap["distribution"].values()) == pytest.approx(1.0)
    assert [h["version"] for h in body["history"]] == [1, 2, 4]
    for h in body["history"]:
        assert set(h) == {"version", "ts", "emitted_at", "distribution", "drift"}


def test_user_on_another_worker_comes_from_the_bounded_cache(http):
    app, pipe = make()
    pipe.dashboard.cache.per_user = 3
    feed(pipe, "remote", [["a"] * n for n in range(1, 6)])
    status, body = get_json(http, app, "/users/remote/interest")
    assert status == 200 and body["source"] == "cache"
    assert body["snapshot"]["version"] == 5
    assert [h["version"] for h in body["history"]] == [3, 4, 5]


def test_unknown_user_is_404_or_an_empty_answer_when_optional(http):
    app, _ = make()
    status, body = get_json(http, app, "/users/nobody/interest")
    assert status == 404 and body["found"] is False and "error" in body
    status, body = get_json(http, app, "/users/nobody/interest?optional=1")
    assert status == 200 and body["found"] is False and body["snapshot"] is None


def test_user_ids_with_slashes_and_unicode_are_found(http):
    app, pipe = make()
    put_user(pipe, "a/b é", ["x"])
    status, body = get_json(http, app, "/users/a%2Fb%20%C3%A9/interest")
    assert status == 200 and body["user_id"] == "a/b é"


def test_a_tombstone_forgets_the_cached_user(http):
    app, pipe = make()
    feed(pipe, "gone", [["a"]])
    pipe.dashboard.ingest(b"gone", None)
    assert get_json(http, app, "/users/gone/interest")[0] == 404


# -- /population ---------------------------------------------------------------------------------
def test_population_shape_and_merge_over_local_partitions(http):
    app, pipe = make()
    for partition, cats in ((0, ["a"] * 3), (1, ["b"])):
        pop = PopulationInterest(pipe.cfg.interest)
        for e in events("x", cats):
            pop.learn_one(e)
        pipe.population.data[f"p{partition}"] = pop.state()
    put_user(pipe, "u1", ["a"])
    feed(pipe, "mover", [["a"], ["a", "b", "b"]])
    feed(pipe, "still", [["a", "a"], ["a", "a"]])
    pipe.counters.events, pipe.counters.dlq["late"] = 7, 2
    status, body = get_json(http, app, "/population")
    assert status == 200
    assert {
        "distribution",
        "partitions",
        "source",
        "events_per_s",
        "snapshots_per_s",
        "active_users",
        "table_users",
        "dlq",
        "dlq_by_reason",
        "most_changed",
    } <= set(body)
    assert body["source"] == "table" and body["partitions"] == ["p0", "p1"]
    assert body["distribution"]["a"] == pytest.approx(0.75, abs=0.01)
    assert sum(body["distribution"].values()) == pytest.approx(1.0)
    assert body["dlq"] == 2 and body["dlq_by_reason"] == {"late": 2}
    assert body["table_users"] == 1 and body["active_users"] == 2
    assert [row["user_id"] for row in body["most_changed"]] == ["mover"]
    assert set(body["most_changed"][0]) == {"user_id", "moved", "snapshots", "top"}
    assert body["most_changed"][0]["top"] == "b"
    assert isinstance(body["events_per_s"], float)


def test_population_falls_back_to_the_published_partitions(http):
    app, pipe = make()
    for key, dist in (("p0", {"a": 1.0}), ("p1", {"b": 0.5, "a": 0.5})):
        value = encode_snapshot({"user_id": f"__population__/{key}", "distribution": dist})
        pipe.dashboard.ingest(f"__population__/{key}".encode(), value)
    body = get_json(http, app, "/population?k=5")[1]
    assert body["source"] == "topic" and body["partitions"] == ["p0", "p1"]
    assert body["distribution"]["a"] == pytest.approx(0.75)
    assert get_json(http, app, "/population?k=x")[0] == 400


# -- /metrics ------------------------------------------------------------------------------------
def test_metrics_parse_as_prometheus_text(http):
    app, pipe = make()
    put_user(pipe, "u1", ["a"])
    pipe.counters.events, pipe.counters.applied, pipe.counters.snapshots = 10, 9, 4
    pipe.counters.dlq["malformed"] = 1
    pipe.counters.records_written = 7
    pipe.counters.flushes = 2
    asyncio.run(pipe.counters.timed("write", asyncio.sleep(0.01)))  # a window being closed
    pipe.builder.built_here, pipe.builder.fallbacks = 3, 1
    pipe.full_collections.done(pipe.full_collections.next_at, took=0.25)
    app.consumer.next_offsets.declines, app.consumer.next_offsets.jumps = 5, 2

    from stream.scoring import ScorerStats

    class Scorer:
        version = "ckpt-7"
        stats = ScorerStats(batches=4, users_scored=50, last_batch_size=9, total_ms=200.0)

    pipe.scorer = Scorer()
    status, headers, text = http(app, "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(text)}
    value = {name: f.samples[0].value for name, f in families.items() if f.samples}
    assert value["interest_events"] == 10 and families["interest_events"].type == "counter"
    assert value["interest_events_applied"] == 9
    assert value["interest_snapshots"] == 4
    assert value["interest_table_users"] == 1
    assert value["interest_snapshots_built_in_worker"] == 3
    assert value["interest_snapshot_builder_fallbacks"] == 1
    assert families["interest_snapshot_builder_fallbacks"].type == "counter"
    assert value["interest_snapshot_builder_processes"] == pipe.builder.processes
    assert value["interest_records_written"] == 7
    assert value["interest_commit_windows"] == 2 and value["interest_snapshots_queued"] == 0
    steps = {s.labels["step"]: s.value for s in families["interest_commit_step_seconds"].samples}
    assert steps["write"] >= 0.01 and steps["snapshots"] == steps["output"] == 0
    last = families["interest_commit_step_last_seconds"].samples
    assert [(s.labels["step"], s.value >= 0.01) for s in last] == [("write", True)]
    assert value["interest_gc_full_passes"] == 1 and value["interest_gc_full_last_seconds"] == 0.25
    assert value["interest_fetch_unread"] == 5 and value["interest_fetch_jumps"] == 2
    dlq = {s.labels["reason"]: s.value for s in families["interest_dlq"].samples}
    assert dlq["malformed"] == 1 and dlq["late"] == 0
    assert value["interest_scorer_batches"] == 4
    assert families["interest_scorer_batches"].type == "counter"
    assert value["interest_scorer_last_batch_size"] == 9
    assert value["interest_scorer_mean_batch_size"] == 12.5
    assert value["interest_scorer_mean_batch_seconds"] == pytest.approx(0.05)
    assert families["interest_scorer_info"].samples[0].labels == {"version": "ckpt-7"}
    assert "interest_scorer_versions" not in families
    assert "interest_events_per_second" in families and "interest_consumer_lag" in families


def test_metrics_leave_out_scorer_stats_when_there_are_none(http):
    app, _ = make()
    families = {f.name for f in text_string_to_metric_families(http(app, "/metrics")[2])}
    assert not any(name.startswith("interest_scorer_") for name in families)


# -- /health -------------------------------------------------------------------------------------
def test_health_is_503_without_a_broker(http):
    app, _ = make()
    status, body = get_json(http, app, "/health")
    assert status == 503 and body["status"] == "unavailable"
    assert body["broker"] == {"reachable": False, "bootstrap": "127.0.0.1:1"}
    assert {"consumer_lag", "last_event_age_s", "snapshot_feed", "uptime_s"} <= set(body)


@pytest.fixture
def listening_port() -> Iterator[int]:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield server.getsockname()[1]


def test_health_is_200_when_the_broker_answers(http, listening_port):
    app, pipe = make(bootstrap=f"127.0.0.1:{listening_port}")
    pipe.counters.last_event_wall = 0.0
    status, body = get_json(http, app, "/health")
    assert status == 200 and body["status"] == "ok" and body["broker"]["reachable"] is True
    assert body["last_event_age_s"] > 0


# -- token ---------------------------------------------------------------------------------------
def test_token_guards_everything_but_health(http):
    app, _ = make(token="s3cret")
    for path in ("/", "/population", "/metrics", "/users/u/interest", "/static/app.js", "/table/"):
        assert http(app, path)[0] == 401, path
    assert http(app, "/health")[0] == 503  # open, and honest about the missing broker
    assert http(app, "/population", headers={"Authorization": "Bearer s3cret"})[0] == 200
    assert http(app, "/population", headers={"Authorization": "Bearer nope"})[0] == 401
    status, headers, _ = http(app, "/?token=s3cret")
    assert status == 200 and "interest_web_token=s3cret" in headers["Set-Cookie"]
    assert "HttpOnly" in headers["Set-Cookie"]
    assert http(app, "/metrics", cookies={"interest_web_token": "s3cret"})[0] == 200


def test_token_from_the_environment(http, monkeypatch):
    monkeypatch.setenv("INTEREST_WEB_TOKEN", "from-env")
    app, pipe = create_app(Settings(bootstrap="127.0.0.1:1", app_id="web-test"))
    assert pipe.dashboard.token == "from-env"
    assert http(app, "/population")[0] == 401


# -- the live channel ----------------------------------------------------------------------------
def test_stream_pushes_population_then_the_users_snapshots():
    app, pipe = make()
    app.web.init_server()

    async def go() -> list[tuple[str, dict]]:
        async with TestClient(TestServer(app.web.web_app)) as client:
            resp = await client.get("/stream?user=u2")
            assert resp.headers["Content-Type"].startswith("text/event-stream")
            got: list[tuple[str, dict]] = []
            kind = None
            while len(got) < 2:
                line = (await asyncio.wait_for(resp.content.readline(), 5)).decode().strip()
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: "):
                    got.append((kind, json.loads(line[6:])))
                    if kind == "population":
                        feed(pipe, "other", [["z"]])  # not this listener's user
                        feed(pipe, "u2", [["a", "b"]])
            resp.close()
            return got

    got = asyncio.run(go())
    assert got[0][0] == "population" and "distribution" in got[0][1]
    assert got[1][0] == "snapshot" and got[1][1]["user_id"] == "u2"
    assert got[1][1]["version"] == 2
    assert pipe.dashboard.clients == 0 and pipe.dashboard.listeners == {}


def test_stream_sends_local_table_changes_even_without_the_feed():
    app, pipe = make()
    app.web.init_server()

    async def go() -> dict:
        async with TestClient(TestServer(app.web.web_app)) as client:
            resp = await client.get("/stream?user=local")
            put_user(pipe, "local", ["a", "a", "c"])
            while True:
                line = (await asyncio.wait_for(resp.content.readline(), 5)).decode().strip()
                if line == "event: snapshot":
                    data = (await resp.content.readline()).decode()
                    resp.close()
                    return json.loads(data[6:])

    assert asyncio.run(go())["version"] == 3


def test_live_connections_are_capped(http):
    app, pipe = make(max_clients=0)
    assert http(app, "/stream")[0] == 503


# -- the page ------------------------------------------------------------------------------------
def test_the_page_and_its_assets_are_served_from_the_package(http):
    app, _ = make()
    status, headers, html = http(app, "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    refs = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert refs and all(r.startswith(("static/", "#", "data:")) for r in refs), refs
    for name, kind in (("app.js", "javascript"), ("app.css", "text/css")):
        status, headers, _ = http(app, f"/static/{name}")
        assert status == 200 and kind in headers["Content-Type"]
    for path in STATIC_DIR.iterdir():  # offline: nothing fetched from elsewhere
        text = path.read_text(encoding="utf-8")
        urls = re.findall(r"https?://[^\s\"'`)]+", text)
        assert set(urls) <= {"http://www.w3.org/2000/svg"}, (path.name, urls)
    assert sum(page_weight().values()) < 48 * 1024


# -- interest-tracker plot -----------------------------------------------------------------------
def test_plot_draws_a_user_and_the_population(tmp_path):
    from stream.cli.plot import render_population, render_user
    from stream.settings import Settings as S

    cfg = create_app(S(bootstrap="127.0.0.1:1", app_id="plot-test"))[1].cfg
    cats = ["a"] * 5 + ["b"] * 5 + ["c", "d"]
    snaps = [build_snapshot("u", replay(events("u", cats[:k]), cfg), cfg) for k in range(1, 13)]
    snaps[6]["drift"] = True
    render_user(snaps, tmp_path / "user.png")
    render_user(snaps[:1], tmp_path / "one.svg")  # one category: no radar, still a figure
    render_population(
        {"p0": {"distribution": {"a": 0.7, "_other": 0.3}}, "p1": {"distribution": {"b": 1.0}}},
        tmp_path / "pop.png",
    )
    assert (tmp_path / "user.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "pop.png").stat().st_size > 10_000
    assert (tmp_path / "one.svg").read_text().lstrip().startswith("<?xml")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--user", "u", "--out", "/no/such/dir/x.png"], "no such directory"),
        (["--user", "u", "--out", "x.unknown"], "unknown image format"),
        (["--user", "u", "--out", "x.png"], "Kafka broker unreachable"),
    ],
)
def test_plot_fails_on_one_line(argv, message, capsys, monkeypatch, tmp_path):
    from stream.cli.entry import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    assert main(["plot", *argv]) == 1
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_plot_needs_a_user_or_the_population(capsys):
    from stream.cli.entry import main

    with pytest.raises(SystemExit) as exit_:
        main(["plot", "--out", "x.png"])
    assert exit_.value.code == 2
    assert "one of the arguments --user --population is required" in capsys.readouterr().err


def test_a_worker_started_with_the_feed_at_zero_has_no_snapshot_feed():
    settings = Settings(bootstrap="127.0.0.1:1", app_id="web-test", dashboard_feed_max_per_s=0)
    _, pipe = create_app(settings, store="memory://")
    assert pipe.dashboard.feed is None
    assert make()[1].dashboard.feed is not None


# -- bad requests and bad feed records ----------------------------------------------------------
def test_a_user_forgotten_here_is_not_served_from_the_feeds_cache(http, monkeypatch):
    app, pipe = make()
    monkeypatch.setattr(pipe.builder, "ready", lambda uid, value: None)  # no producer here
    feed(pipe, "gone", [["shoes"], ["shoes", "bags"]])
    assert get_json(http, app, "/users/gone/interest")[1]["source"] == "cache"
    pipe.forget("gone", SimpleNamespace(partition=0))
    assert get_json(http, app, "/users/gone/interest")[0] == 404
    feed(pipe, "gone", [["shoes", "bags", "bags"]])  # published before the forget, read late
    assert get_json(http, app, "/users/gone/interest")[0] == 404
    pipe.dashboard.ingest(b"gone", None)  # its tombstone: what comes next is a new life
    feed(pipe, "gone", [["hats"]])
    status, body = get_json(http, app, "/users/gone/interest")
    assert status == 200 and body["snapshot"]["distribution"].keys() >= {"hats"}


@pytest.mark.parametrize(
    "broken",
    [
        {"version": None},
        {"version": "7"},
        {"distribution": "shoes"},
        {"distribution": {"shoes": "high"}},
        {"distribution": {"shoes": float("nan")}},
    ],
)
def test_a_snapshot_the_dashboard_cannot_serve_is_counted_and_left_out(http, broken):
    app, pipe = make()
    put_user(pipe, "m1", ["shoes", "bags"])
    snap = build_snapshot("m1", replay(events("m1", ["shoes"] * 9), pipe.cfg), pipe.cfg)
    value = encode_snapshot({**snap, **broken})
    pipe.dashboard.ingest(b"m1", value)
    assert get_json(http, app, "/health")[1]["snapshot_feed"]["unreadable"] == 1
    status, body = get_json(http, app, "/users/m1/interest")
    assert status == 200 and body["source"] == "table"


def test_a_token_of_bytes_that_are_not_utf8_is_refused_not_a_server_error():
    """aiohttp hands undecodable header and cookie bytes over as surrogates."""
    for headers, cookies in (
        ({"Authorization": "Bearer \udcff\udcfe"}, {}),
        ({}, {TOKEN: "\udcff"}),
    ):
        assert authorized("s3cret", "/population", headers, {}, cookies) is False
    assert authorized("s3cret", "/population", {"Authorization": "Bearer s3cret"}, {}, {})


def test_query_values_out_of_range_are_refused(http):
    app, pipe = make()
    put_user(pipe, "u1", ["shoes"])
    for k in ("0", "-5", "201", "many"):
        status, body = get_json(http, app, f"/population?k={k}")
        assert status == 400 and "from 1 to 200" in body["error"]
    assert get_json(http, app, "/population?k=200")[0] == 200
    assert get_json(http, app, "/users/nobody/interest?optional=TRUE")[0] == 200
    assert get_json(http, app, "/users/nobody/interest?optional=0")[0] == 404
    status, body = get_json(http, app, "/users/nobody/interest?optional=maybe")
    assert status == 400 and "optional must be" in body["error"]


def test_ids_with_a_newline_and_pseudonymised_ids_are_found(http):
    app, pipe = make()
    put_user(pipe, "a\nb", ["shoes"])
    status, body = get_json(http, app, "/users/a%0Ab/interest")
    assert status == 200 and body["user_id"] == "a\nb"
    put_user(pipe, "%FF", ["shoes"])  # a user named by the three characters
    assert get_json(http, app, "/users/%25FF/interest")[1]["user_id"] == "%FF"
    status, body = get_json(http, app, "/users/%FF/interest")  # the byte 0xFF: not UTF-8
    assert status == 400 and body["error"] == "the user id is not UTF-8"
    app, pipe = make()
    pipe.dashboard.settings = Settings(bootstrap="127.0.0.1:1", pseudonymise_key="k")
    stored = pipe.dashboard.settings.user_key("alice")
    put_user(pipe, stored, ["shoes"])
    for given in ("alice", stored):
        status, body = get_json(http, app, f"/users/{given}/interest")
        assert status == 200 and body["user_id"] == stored


def test_head_of_the_live_stream_is_headers_only(http):
    app, _ = make()
    client = Http(app)
    try:

        async def head():
            resp = await client.client.head("/stream")
            return resp.status, resp.headers["Content-Type"], await resp.read()

        assert client.loop.run_until_complete(head()) == (200, "text/event-stream", b"")
    finally:
        client.close()

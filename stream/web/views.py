"""The worker's web endpoints: the dashboard page, the JSON and live views, the token check,
and :func:`register_web`, which adds them to a Faust app's web server."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import unquote_to_bytes

import faust
from aiohttp import web as aioweb

from stream.envvars import flag
from stream.web.dashboard import Dashboard
from stream.web.feed import SnapshotFeed
from stream.web.page import STATIC_DIR
from stream.web.pipeline_view import PipelineView

log = logging.getLogger(__name__)

TOKEN_COOKIE = "interest_web_token"
MAX_POPULATION_K = 200  # categories /population may list


def _sse(event: str, data: Any) -> bytes:
    """One server-sent event (nothing for data JSON cannot carry, such as NaN)."""
    try:
        body = json.dumps(data, separators=(",", ":"), default=str, allow_nan=False)
    except ValueError:
        log.warning("live channel: %s event left out (not valid JSON)", event)
        return b""
    return f"event: {event}\ndata: {body}\n\n".encode()


def authorized(
    token: str | None, path: str, headers: Mapping, query: Mapping, cookies: Mapping
) -> bool:
    """Whether a request may see ``path`` (``/health`` always may).

    >>> authorized("t", "/population", {"Authorization": "Bearer t"}, {}, {})
    True
    >>> authorized("t", "/population", {}, {"token": "x"}, {})
    False
    >>> authorized("t", "/health", {}, {}, {})
    True
    """
    if token is None or path == "/health":
        return True
    given = []
    auth = headers.get("Authorization", "")
    if auth[:7].lower() == "bearer ":
        given.append(auth[7:].strip())
    given += [query.get("token"), cookies.get(TOKEN_COOKIE)]
    expected = token.encode()
    # a header or cookie of bytes that are not UTF-8 arrives with surrogates: compare as sent
    return any(
        g and hmac.compare_digest(g.encode("utf-8", "surrogateescape"), expected) for g in given
    )


def _views(app: faust.App, dash: Dashboard) -> None:
    @app.page("/", name="interest-dashboard")
    async def dashboard_page(self, request):
        html = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
        return self.html(html, headers={"Cache-Control": "no-cache"})

    @app.page("/health", name="interest-health")
    async def health(self, request):
        payload, status = await dash.health()
        return self.json(payload, status=status)

    @app.page("/metrics", name="interest-metrics")
    async def metrics(self, request):
        return self.text(dash.metrics(), content_type="text/plain; version=0.0.4")

    @app.page("/users/{user_id:[\\s\\S]+}/interest", name="interest-user")
    async def user_interest(self, request, user_id: str):
        segment = request.raw_path.split("?", 1)[0][len("/users/") : -len("/interest")]
        try:  # aiohttp leaves percent-escapes that are not UTF-8 as they were written
            unquote_to_bytes(segment).decode("utf-8")
        except UnicodeDecodeError:
            return self.json({"error": "the user id is not UTF-8"}, status=400)
        try:
            optional = flag(request.query.get("optional", ""))
        except ValueError as exc:
            return self.json({"error": f"optional {exc}"}, status=400)
        uid = dash.settings.stored_user_id(user_id)
        payload, status = dash.user_interest(uid, optional=optional)
        return self.json(payload, status=status)

    @app.page("/population", name="interest-population")
    async def population(self, request):
        try:
            k = int(request.query.get("k", "20"))
        except ValueError:
            k = 0
        if not 1 <= k <= MAX_POPULATION_K:
            return self.json(
                {"error": f"k must be an integer from 1 to {MAX_POPULATION_K}"}, status=400
            )
        return self.json(dash.population(k))

    @app.page("/stream", name="interest-stream")
    async def live(self, request):
        uid = request.query.get("user") or None
        uid = dash.settings.stored_user_id(uid) if uid is not None else None
        if request.method == "HEAD":  # the headers of the event stream, no stream
            return aioweb.Response(headers={"Content-Type": "text/event-stream"})
        if dash.clients >= dash.max_clients or dash.closing:
            return self.json({"error": "too many live connections"}, status=503)
        response = aioweb.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            }
        )
        queue = dash.subscribe(uid)
        try:
            await response.prepare(request)
            await response.write(b"retry: 2000\n\n" + _sse("population", dash.population()))
            last_version = -1
            next_push = time.monotonic() + dash.push_interval_s
            next_check = time.monotonic() + 1.0
            while not dash.closing:
                wait = max(0.0, min(next_push, next_check) - time.monotonic())
                try:
                    item = await asyncio.wait_for(queue.get(), timeout=wait)
                except TimeoutError:
                    item = ()
                if item is None:
                    break
                if item:
                    kind, snap = item
                    if snap.get("version", 0) >= last_version:
                        last_version = snap.get("version", 0)
                        await response.write(_sse(kind, snap))
                    continue
                now = time.monotonic()
                if uid is not None and now >= next_check:
                    next_check = now + 1.0
                    local = dash.local_snapshot(uid)  # live even if the feed lags behind
                    if local is not None and local["version"] > last_version:
                        last_version = local["version"]
                        await response.write(_sse("snapshot", local))
                if now >= next_push:
                    next_push = now + dash.push_interval_s
                    await response.write(_sse("population", dash.population()))
                    if uid is None:
                        await response.write(b": keep-alive\n\n")
        except (ConnectionResetError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            dash.unsubscribe(uid, queue)
        return response


def _auth_middleware(dash: Dashboard) -> Callable:
    @aioweb.middleware
    async def auth(request: aioweb.Request, handler: Callable) -> aioweb.StreamResponse:
        if not authorized(
            dash.token, request.path, request.headers, request.query, request.cookies
        ):
            return aioweb.json_response(
                {"error": "unauthorized: give the token (Authorization: Bearer ...)"},
                status=401,
                headers={"WWW-Authenticate": 'Bearer realm="interest-tracker"'},
            )
        response = await handler(request)
        if dash.token and request.query.get("token") and not response.prepared:
            response.set_cookie(TOKEN_COOKIE, dash.token, httponly=True, samesite="Strict")
        return response

    return auth


def register_web(app: faust.App, pipeline: PipelineView, **options: Any) -> Dashboard:
    """Add the dashboard, ``/health``, ``/metrics`` and the JSON endpoints to ``app``.

    Returns the :class:`Dashboard` (also set as ``pipeline.dashboard``); ``options`` go to
    its constructor (``token`` defaults to ``Settings.web_token``, ``INTEREST_WEB_TOKEN``).
    """
    options.setdefault("token", pipeline.settings.web_token)
    dash = Dashboard(app, pipeline, **options)
    _views(app, dash)
    web = app.web
    web.add_static("/static/", STATIC_DIR)
    web_app = getattr(web, "web_app", None)
    if web_app is not None:
        web_app.middlewares.append(_auth_middleware(dash))

        async def on_shutdown(_app: Any) -> None:
            dash.close()

        web_app.on_shutdown.append(on_shutdown)
    elif dash.token:
        raise RuntimeError("the web token needs Faust's aiohttp web driver")
    if pipeline.settings.bootstrap and pipeline.settings.dashboard_feed_max_per_s > 0:
        dash.feed = SnapshotFeed(
            pipeline.settings, dash.ingest, max_per_s=pipeline.settings.dashboard_feed_max_per_s
        )
        app.service(dash.feed)
    app.timer(1.0, on_leader=False)(dash.tick)
    pipeline.dashboard = dash
    return dash

"""The worker's web side: the live dashboard, its JSON endpoints, ``/health`` and ``/metrics``.

``register_web(app, pipeline)`` (called by ``stream.app.create_app``) adds these views to the
worker's own Faust web server (``INTEREST_WEB_HOST``:``INTEREST_WEB_PORT``, default
``127.0.0.1:6066``):

| path | what |
|---|---|
| ``GET /`` | the dashboard (``stream/web/static/``: plain HTML, CSS and hand-written SVG, no CDN) |
| ``GET /health`` | broker reachable, consumer lag, last event age; 200, or 503 without a broker |
| ``GET /metrics`` | Prometheus text format |
| ``GET /users/{id}/interest`` | the user's latest snapshot and recent ones (404 if unknown; |
| | ``?optional=1`` answers 200 with ``"found": false`` instead) |
| ``GET /population`` | population distribution, events/s, active users, DLQ, most-changed users |
| ``GET /stream[?user=ID]`` | server-sent events: ``snapshot`` (that user's), ``population`` (2 s) |

A user's latest snapshot comes from the ``interest-users`` table when the user lives on this
worker, else from a bounded cache fed by a background consumer of the snapshot topic (no
consumer group, from the latest offsets less a small backfill), which also keeps the recent
snapshots of each user for the heatmap and feeds the live channel. All of it hangs off the
:class:`Dashboard` that ``register_web`` creates: nothing is module-level.

**Token.** When ``INTEREST_WEB_TOKEN`` (``Settings.web_token``) is set, every path except
``/health`` needs it, as ``Authorization: Bearer <token>``, as ``?token=<token>`` (open
``http://host:6066/?token=...`` once: the page then keeps it in an HTTP-only, same-site cookie)
or as that cookie. Faust's own ``/table`` and ``/router`` views are covered too.
"""

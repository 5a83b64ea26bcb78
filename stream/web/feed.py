"""The dashboard's Kafka feed: a background reader of the snapshot topic (no consumer group)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from mode import Service

from stream.settings import Settings

log = logging.getLogger(__name__)


class SnapshotFeed(Service):
    """Follows the snapshot topic (no consumer group), handing each message to ``ingest``.

    Starts at the latest offsets less ``backfill`` messages per partition, so a restarted
    worker's dashboard is not empty; reconnects after broker errors. It shares the worker's
    event loop, so it takes at most ``max_per_s`` snapshots a second: past that it skips to
    the end of the topic (the dashboard samples the stream; the ingest path keeps its time).

    A worker's feed hands what it reads to its dashboard (``Dashboard.ingest``), which then
    serves the snapshots of users held by other workers:

    >>> from stream.app import create_app
    >>> from stream.codec import encode_snapshot
    >>> _, pipeline = create_app(Settings(bootstrap="127.0.0.1:1", app_id="doc"))
    >>> feed = pipeline.dashboard.feed  # not started here: nothing connects
    >>> feed.ingest(b"u2", encode_snapshot({"user_id": "u2", "version": 1,
    ...                                     "distribution": {"bags": 1.0}}))
    >>> payload, status = pipeline.dashboard.user_interest("u2")
    >>> status, payload["source"], payload["snapshot"]["distribution"]
    (200, 'cache', {'bags': 1.0})
    """

    def __init__(
        self,
        settings: Settings,
        ingest: Callable[[bytes | None, bytes | None], None],
        backfill: int = 200,
        max_per_s: int = 250,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.settings = settings
        self.ingest = ingest
        self.backfill = backfill
        self.max_per_s = max_per_s
        self.connected = False
        self.received = 0
        self.skips = 0
        self.last_error: str | None = None

    @Service.task
    async def _consume(self) -> None:
        from aiokafka import AIOKafkaConsumer

        settings = self.settings
        topic = settings.snapshots_topic
        while not self.should_stop:
            failed = False
            consumer = AIOKafkaConsumer(
                bootstrap_servers=settings.bootstrap,
                group_id=None,
                enable_auto_commit=False,
                auto_offset_reset="latest",
                client_id=f"{settings.app_id}-dashboard",
                **settings.security.aiokafka(),
            )
            try:
                await consumer.start()
                if topic not in await consumer.topics():  # never auto-create it by subscribing
                    raise LookupError(f"topic {topic!r} does not exist yet")
                consumer.subscribe([topic])  # no group: every partition, as metadata shows them
                for _ in range(100):
                    if consumer.assignment() or self.should_stop:
                        break
                    await self.sleep(0.1)
                tps = sorted(consumer.assignment())
                if not tps:
                    raise LookupError(f"no partitions for topic {topic!r} yet")
                begin = await consumer.beginning_offsets(tps)
                end = await consumer.end_offsets(tps)
                for tp in tps:
                    consumer.seek(tp, max(begin[tp], end[tp] - self.backfill))
                self.connected = True
                window, taken = time.monotonic(), 0
                while not self.should_stop:
                    batches = await consumer.getmany(timeout_ms=500, max_records=250)
                    for records in batches.values():
                        for msg in records:
                            self.received += 1
                            taken += 1
                            self.ingest(msg.key, msg.value)
                    await asyncio.sleep(0)
                    if taken >= self.max_per_s:  # over budget: skip the backlog
                        await self.sleep(max(0.0, window + 1.0 - time.monotonic()))
                        await consumer.seek_to_end()
                        self.skips += 1
                    if taken >= self.max_per_s or time.monotonic() - window >= 1.0:
                        window, taken = time.monotonic(), 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
                (log.debug if error == self.last_error else log.warning)(
                    "dashboard snapshot feed: %s (retrying every 2 s)", error
                )
                self.last_error, failed = error, True
            finally:
                self.connected = False
                with contextlib.suppress(Exception):  # best effort on the way out
                    await consumer.stop()
            if failed:
                await self.sleep(2.0)

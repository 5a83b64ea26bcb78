"""A Faust agent that does nothing with its events: the per-event framework's own ceiling.

``python -m stream.dev.bench_noop worker`` with ``KAFKA_BOOTSTRAP_SERVERS``,
``INTEREST_EVENTS_TOPIC`` and ``INTEREST_APP_ID`` set: it consumes the topic in
``take_events(1000)`` batches, acks them and nothing else. ``make bench`` times it on the same
topic as the worker, so the ratio between the two is measured in one run.
"""

from __future__ import annotations

import os

import faust

app = faust.App(
    os.environ.get("INTEREST_APP_ID", "bench-noop"),
    broker="kafka://" + os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
    store="memory://",
    consumer_auto_offset_reset="earliest",
    topic_allow_declare=False,
    web_host="127.0.0.1",
    web_bind="127.0.0.1",
    web_port=int(os.environ.get("INTEREST_WEB_PORT", "6066")),
    autodiscover=False,
    broker_commit_interval=1.0,
    datadir=os.environ.get("INTEREST_STATE_DIR", "."),
)
events = app.topic(
    os.environ.get("INTEREST_EVENTS_TOPIC", "interest.events"),
    key_serializer="raw",
    value_serializer="raw",
)


@app.agent(events)
async def do_nothing(stream: faust.StreamT) -> None:
    async for _batch in stream.take_events(1000, within=0.05):
        pass


if __name__ == "__main__":
    app.main()

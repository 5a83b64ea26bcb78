"""A Faust agent that does nothing with its events: the per-event framework's own ceiling.

``python -m stream.dev.bench_noop worker`` with the worker's settings (``KAFKA_BOOTSTRAP_SERVERS``,
``INTEREST_EVENTS_TOPIC``, ``INTEREST_APP_ID``, ...): it consumes the topic in
``take_events(1000)`` batches through Faust's own consumer, acks them and nothing else.
``make bench`` times it on the same topic as the worker, so the ratio between the two is
measured in one run.
"""

from __future__ import annotations

import faust

from stream.settings import Settings


def create_noop_app(settings: Settings) -> faust.App:
    """The do-nothing agent's app on ``settings``' broker, topic, group and web port.

    >>> app = create_noop_app(Settings(bootstrap="127.0.0.1:1", app_id="noop"))
    >>> app.conf.id, [a.channel.get_topic_name() for a in app.agents.values()]
    ('noop', ['interest.events'])
    """
    app = faust.App(
        settings.app_id,
        broker=settings.broker_url,
        broker_credentials=settings.security.faust_credentials(),
        store="memory://",
        consumer_auto_offset_reset="earliest",
        topic_allow_declare=False,
        web_host=settings.web_host,
        web_bind=settings.web_host,
        web_port=settings.web_port,
        autodiscover=False,
        broker_commit_interval=settings.commit_interval_s,
        datadir=settings.state_dir,
    )
    events = app.topic(settings.events_topic, key_serializer="raw", value_serializer="raw")

    @app.agent(events)
    async def do_nothing(stream: faust.StreamT) -> None:
        async for _batch in stream.take_events(1000, within=0.05):
            pass

    return app


if __name__ == "__main__":
    create_noop_app(Settings.from_env()).main()

"""``interest-tracker forget``: erase a user's state and snapshots (GDPR-style erasure)."""

from __future__ import annotations

import argparse

from stream.cli.common import check_broker
from stream.settings import Settings

NAME = "forget"
REPORTS_AS = "interest-tracker"
HELP = "erase a user's state and snapshots (GDPR-style erasure)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--user", required=True, help="the user id, as produced")


def run(args: argparse.Namespace) -> int:
    from kafka import KafkaProducer

    from stream.app import CONTROL_HEADER, FORGET

    settings = Settings.from_env()
    check_broker(settings)
    producer = KafkaProducer(
        bootstrap_servers=settings.bootstrap, acks="all", **settings.kafka_client_config()
    )
    # Keyed by the raw id, the deletion reaches the user's partition, so the worker holding
    # the user; it deletes the state (a changelog tombstone) and republishes the snapshot
    # tombstone. The tombstone sent here makes the user disappear for subscribers at once.
    raw, published = args.user.encode(), settings.user_key(args.user).encode()
    producer.send(settings.events_topic, key=raw, value=b"", headers=[(CONTROL_HEADER, FORGET)])
    producer.send(settings.snapshots_topic, key=published, value=None)
    producer.flush()
    producer.close()
    print(
        f"forgot user {args.user}: state deletion sent to {settings.events_topic}, "
        f"tombstone published on {settings.snapshots_topic}"
    )
    return 0

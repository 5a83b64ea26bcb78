"""``interest-tracker catalog``: publish an item catalog to the compacted items topic.

Publish every item of FILE to the compacted items topic ($INTEREST_ITEMS_TOPIC), key = item id.
Events may then leave out categories for catalogued items. movielens: movies.csv
(movieId,title,genres); generic: a CSV with header item_id,categories[,title,text,tags],
categories and tags |-separated.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from models.priors.content import ContentConfig
from stream.catalog import (
    FORMATS,
    add_topics,
    encode_item,
    fill_categories,
    read_entries,
    validate_item,
)
from stream.cli.common import CommandError, check_broker, positive
from stream.settings import Settings

NAME = "catalog"
HELP = "publish an item catalog (item id -> categories, title, text, tags)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", metavar="FILE", required=True, help="catalog file")
    p.add_argument("--format", choices=FORMATS, default="generic", help="default generic")
    p.add_argument("--topic", help="items topic (default $INTEREST_ITEMS_TOPIC)")
    p.add_argument(
        "--topics",
        type=positive(int),
        metavar="N",
        help="fit N LDA topics on the items' text and publish each item's topics",
    )
    p.add_argument(
        "--fill-categories",
        choices=("tfidf", "embeddings"),
        help="give items without categories those of their nearest neighbours by text",
    )


def run(args: argparse.Namespace) -> int:
    from kafka import KafkaProducer

    from stream.topics import ensure_topics

    if not Path(args.data).is_file():
        raise CommandError(f"catalog file not found: {args.data}")
    try:
        items = list(read_entries(args.data, args.format))
        if args.fill_categories:
            n = fill_categories(items, args.fill_categories)
            print(f"filled the categories of {n} items from their nearest neighbours")
        if args.topics:
            for topic, terms in add_topics(items, ContentConfig(n_topics=args.topics)).items():
                print(f"{topic}: {' '.join(terms)}")
        items = [(i, validate_item(i, e)) for i, e in items]
    except (ValueError, KeyError, UnicodeDecodeError) as exc:
        raise CommandError(f"cannot read {args.data}: {exc}") from None
    settings = Settings.from_env()
    check_broker(settings)
    topic = args.topic or settings.items_topic
    if topic == settings.items_topic:
        ensure_topics(settings)
    producer = KafkaProducer(
        bootstrap_servers=settings.bootstrap, acks="all", **settings.kafka_client_config()
    )
    try:
        for item_id, entry in items:
            producer.send(topic, key=item_id.encode(), value=encode_item(entry))
        producer.flush()
    finally:
        producer.close()
    print(f"published {len(items)} items to {topic}")
    return 0

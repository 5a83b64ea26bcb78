"""The item catalog: the compacted topic ``interest.items`` (key = item id), read by every worker.

A catalog entry is a msgpack map ``{categories: [str], title?: str, text?: str, tags?: [str]}``.
Every worker reads the whole topic into a Faust ``GlobalTable`` (recovered before the worker
consumes events, then followed), so an event may leave out ``categories`` when its item is in
the catalog: :func:`resolve_categories` fills them in, or rejects the event with the DLQ reason
``unknown-item``. The categories are resolved once, when the event is applied, and stored in
the user's record: a later catalog update changes later events only.

``interest-tracker catalog --data movies.csv --format movielens|generic`` publishes a catalog.
"""

from __future__ import annotations

import csv
import logging
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import faust
from faust.tables import GlobalTable

from models.priors.content import (
    ContentConfig,
    TopicModel,
    item_text,
    nearest_categories,
    sentence_embeddings,
    tfidf_vectors,
)
from models.schema import OTHER
from stream.codec import (
    MAX_CATEGORIES,
    MAX_CATEGORY_BYTES,
    MAX_ID_BYTES,
    InvalidEvent,
    pack,
    unpack,
)

log = logging.getLogger(__name__)

CATALOG_TABLE = "interest-items"
FORMATS = ("movielens", "generic")
TEXT_FIELDS = ("title", "text")
LIST_FIELDS = ("tags", "topics")
INTERNED_FIELDS = ("categories", "topics")  # names the estimators key on
MAX_TEXT_BYTES = 8192


class CatalogTable(GlobalTable):
    """A Faust ``GlobalTable`` whose changelog is the items topic itself.

    Faust's partition assignor finds a global table's changelog by its name: it must be the
    items topic's, not the default ``<app>-<table>-changelog``.

    >>> app = faust.App("doc", autodiscover=False)  # nothing connects until it starts
    >>> table = catalog_table(app, "shop.items")
    >>> table._changelog_topic_name(), GlobalTable._changelog_topic_name(table)
    ('shop.items', 'doc-interest-items-changelog')
    """

    def _changelog_topic_name(self) -> str:
        topic = self._changelog_topic
        return topic.get_topic_name() if topic is not None else super()._changelog_topic_name()


def catalog_table(app: faust.App, topic: str) -> CatalogTable:
    """The app's catalog table over ``topic`` (one partition, read by every worker)."""
    table = CatalogTable(
        app,
        name=CATALOG_TABLE,
        default=None,
        beacon=app.tables.beacon,
        partitions=1,
        standby_buffer_size=1,  # apply catalog updates as they come
        recovery_buffer_size=1,  # Faust's advice for global tables
        is_global=True,
        changelog_topic=app.topic(
            topic, key_serializer="utf8", value_serializer="msgpack", partitions=1, compacting=True
        ),
        help="The item catalog: item id -> categories, title, text, tags.",
    )
    return app.tables.add(table)


def validate_item(item_id: str, entry: Mapping) -> dict:
    """A catalog entry checked and normalised; ``ValueError`` with the reason otherwise.

    >>> validate_item("7", {"categories": ["Comedy"], "title": "Toy Story (1995)", "x": 1})
    {'categories': ['Comedy'], 'title': 'Toy Story (1995)'}
    >>> validate_item("7", {"categories": []})
    Traceback (most recent call last):
    ...
    ValueError: item 7: categories must be a non-empty list of str other than '_other'
    """
    if not item_id or len(item_id.encode()) > MAX_ID_BYTES:
        raise ValueError(f"item id must be 1 to {MAX_ID_BYTES} bytes")
    return checked_entry(entry, f"item {item_id}")


def checked_entry(entry: Mapping, what: str = "catalog entry") -> dict:
    """``validate_item`` without the item id (``what`` names the entry in the error).

    >>> checked_entry({"categories": ["_other"]})
    Traceback (most recent call last):
    ...
    ValueError: catalog entry: categories must be a non-empty list of str other than '_other'
    """
    cats = entry.get("categories")
    if (
        not isinstance(cats, list)
        or not cats
        or len(cats) > MAX_CATEGORIES
        or not all(isinstance(c, str) and 0 < len(c.encode()) <= MAX_CATEGORY_BYTES for c in cats)
        or OTHER in cats
    ):
        raise ValueError(f"{what}: categories must be a non-empty list of str other than {OTHER!r}")
    out: dict = {"categories": list(cats)}
    for name in LIST_FIELDS:
        values = entry.get(name)
        if values is not None:
            if not isinstance(values, list) or not all(isinstance(t, str) for t in values):
                raise ValueError(f"{what}: {name} must be a list of str")
            out[name] = list(values)
    for name in TEXT_FIELDS:
        value = entry.get(name)
        if value is not None:
            if not isinstance(value, str) or len(value.encode()) > MAX_TEXT_BYTES:
                raise ValueError(f"{what}: {name} must be str of <= {MAX_TEXT_BYTES} bytes")
            out[name] = value
    return out


def resolve_categories(event: dict, catalog: Mapping[str, Mapping | None]) -> dict:
    """Join an event to its item's catalog entry (in place): categories when it has none,
    and the item's content ``topics`` when the entry has them.

    >>> resolve_categories({"item_id": "i1", "categories": None}, {"i1": {"categories": ["a"]}})
    {'item_id': 'i1', 'categories': ['a']}
    >>> cat = {"i1": {"categories": ["a"], "topics": ["topic-3"]}}
    >>> resolve_categories({"item_id": "i1", "categories": ["b"]}, cat)
    {'item_id': 'i1', 'categories': ['b'], 'topics': ['topic-3']}
    >>> resolve_categories({"item_id": "i2", "categories": None}, {})
    Traceback (most recent call last):
    ...
    stream.codec.InvalidEvent: unknown-item: no categories and item 'i2' is not in the catalog
    """
    entry = catalog.get(event["item_id"])
    if entry and entry.get("topics"):
        event["topics"] = list(entry["topics"])
    if event.get("categories"):
        return event
    if not entry or not entry.get("categories"):
        item = event["item_id"][:64]
        raise InvalidEvent("unknown-item", f"no categories and item {item!r} is not in the catalog")
    event["categories"] = list(entry["categories"])
    return event


def read_catalog(path: str | Path, fmt: str = "generic") -> Iterator[tuple[str, dict]]:
    """``(item_id, entry)`` pairs from a file, each checked (``validate_item``)."""
    for item_id, entry in read_entries(path, fmt):
        yield item_id, validate_item(item_id, entry)


def read_entries(path: str | Path, fmt: str = "generic") -> Iterator[tuple[str, dict]]:
    """``(item_id, entry)`` pairs from a file, unchecked (categories may be empty).

    ``movielens``: ``movies.csv`` (``movieId,title,genres``, genres ``|``-separated).
    ``generic``: a CSV with header ``item_id,categories`` and optional ``title``, ``text``,
    ``tags`` columns (categories and tags ``|``-separated).
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}: expected one of {', '.join(FORMATS)}")
    id_col, cat_col = ("movieId", "genres") if fmt == "movielens" else ("item_id", "categories")
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        missing = {id_col, cat_col} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
        for row in reader:
            if not row.get(id_col) or row.get(cat_col) is None:
                raise ValueError(f"{path} line {reader.line_num}: no {id_col} or no {cat_col}")
            entry: dict = {"categories": [c for c in row[cat_col].split("|") if c]}
            for name in TEXT_FIELDS:
                if row.get(name):
                    entry[name] = row[name]
            if row.get("tags"):
                entry["tags"] = [t for t in row["tags"].split("|") if t]
            yield row[id_col], entry


def add_topics(entries: list[tuple[str, dict]], config: ContentConfig) -> dict[str, list[str]]:
    """Fit LDA topics on the entries' text and give each entry its ``topics`` (in place).

    Returns each topic's top terms. Categories count as text too, for entries with little.
    """
    texts = [f"{item_text(e)} {' '.join(e['categories'])}" for _, e in entries]
    model = TopicModel(config).fit(texts)
    for (_, entry), text in zip(entries, texts, strict=True):
        entry["topics"] = model.labels(text)
    return model.top_terms()


def fill_categories(entries: list[tuple[str, dict]], method: str, neighbours: int = 5) -> int:
    """Give entries without categories those of their nearest catalogued neighbours by text
    (``tfidf`` or ``embeddings``); returns how many were filled."""
    texts = [item_text(e) for _, e in entries]
    vectors = sentence_embeddings(texts) if method == "embeddings" else tfidf_vectors(texts)
    known = [i for i, (_, e) in enumerate(entries) if e["categories"]]
    missing = [i for i, (_, e) in enumerate(entries) if not e["categories"]]
    if not missing or not known:
        return 0
    cats = [entries[i][1]["categories"] for i in known]
    filled = nearest_categories(vectors[known], cats, vectors[missing], neighbours)
    for i, c in zip(missing, filled, strict=True):
        entries[i][1]["categories"] = c
    return len(missing)


def encode_item(entry: Mapping) -> bytes:
    return pack(dict(entry))


def decode_item(blob: bytes) -> dict | None:
    """A catalog record's value as the catalog table holds it (``checked_entry``); None (the
    item counts as not in the catalog) when it is not a valid entry, which is logged.

    Category and topic names are interned (``INTERNED_FIELDS``): they become every user's
    estimator keys, and a catalog's 100,000 items otherwise held 100,000 copies of a few
    hundred names, each a cold object to compare keys with (the join's CPU per event, +8%
    before, +2% after; docs/RESULTS.md).

    >>> decode_item(encode_item({"categories": ["a"], "x": 1}))
    {'categories': ['a']}
    >>> [decode_item(b) for b in (b"not msgpack", encode_item({"categories": "shoes"}))]
    [None, None]
    >>> one, two = (decode_item(encode_item({"categories": ["shoes"]})) for _ in range(2))
    >>> one["categories"][0] is two["categories"][0]
    True
    """
    try:
        entry = unpack(blob)
    except Exception as exc:  # any undecodable producer's record: skip it, keep the rest
        log.warning("catalog record is not msgpack (%s): ignored", type(exc).__name__)
        return None
    if not isinstance(entry, dict):
        log.warning("catalog record is a %s, not a map: ignored", type(entry).__name__)
        return None
    try:  # checked as the publishing side checks it: any producer may write this topic
        checked = checked_entry(entry)
    except ValueError as err:
        log.warning("%s: ignored", err)
        return None
    for name in INTERNED_FIELDS:
        if name in checked:
            checked[name] = [sys.intern(v) for v in checked[name]]
    return checked

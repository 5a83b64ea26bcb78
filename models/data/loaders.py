"""Event-log loaders: Taobao UserBehavior, MovieLens ratings + movies, and a generic CSV/Parquet.

Every loader returns events as plain dicts with the fields of the event schema
(``user_id``, ``item_id``, ``categories``, ``event_type``, ``ts``), stably sorted by ``ts``:
the replay order of the evaluation protocol and of ``interest-tracker produce``.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from pathlib import Path

from models.schema import canonical_event_type

FORMATS = ("taobao", "movielens", "generic")


def sort_by_time(events: Iterable[dict]) -> list[dict]:
    """Stable sort by event time: ties keep the file's row order."""
    return sorted(events, key=lambda e: e["ts"])


def read_taobao(path: str | Path) -> Iterator[dict]:
    """Rows of ``user_id,item_id,category_id,behavior_type,timestamp`` (no header), file order.

    Examples
    --------
    >>> import tempfile, os
    >>> f = tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False)
    >>> _ = f.write("1,10,7,pv,1511544070\\n1,11,8,buy,1511544080\\n"); f.close()
    >>> [(e["item_id"], e["categories"], e["event_type"]) for e in read_taobao(f.name)]
    [('10', ['7'], 'view'), ('11', ['8'], 'purchase')]
    >>> os.unlink(f.name)
    """
    with open(path, newline="") as fh:
        for row in csv.reader(fh):
            if not row:
                continue
            user, item, category, behavior, ts = row[:5]
            yield {
                "user_id": user,
                "item_id": item,
                "categories": [category],
                "event_type": canonical_event_type(behavior),
                "ts": float(ts),
            }


def read_movielens_genres(movies_path: str | Path) -> dict[str, list[str]]:
    """``movieId -> [genre, ...]`` from a MovieLens ``movies.csv`` (genres split on ``|``)."""
    with open(movies_path, newline="", encoding="utf-8") as fh:
        return {row["movieId"]: row["genres"].split("|") for row in csv.DictReader(fh)}


def read_movielens(
    ratings_path: str | Path, movies_path: str | Path | None = None
) -> Iterator[dict]:
    """Ratings joined to their movies' genres, in ``ratings.csv`` row order.

    ``movies_path`` defaults to ``movies.csv`` beside the ratings file. Every rating is a
    ``rate`` event; the star rating is kept as ``rating`` (not as a weight: the evaluation
    protocol counts every event once).
    """
    ratings_path = Path(ratings_path)
    genres = read_movielens_genres(movies_path or ratings_path.with_name("movies.csv"))
    with open(ratings_path, newline="") as fh:
        for row in csv.DictReader(fh):
            yield {
                "user_id": row["userId"],
                "item_id": row["movieId"],
                "categories": genres.get(row["movieId"], ["(no genres listed)"]),
                "event_type": "rate",
                "ts": float(row["timestamp"]),
                "rating": float(row["rating"]),
            }


def read_generic(path: str | Path) -> Iterator[dict]:
    """CSV (with header) or Parquet with ``user_id,item_id,category,event_type,ts``.

    Several categories are joined by ``|``; an optional ``weight`` column is kept.
    """
    path = Path(path)
    if path.suffix in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        rows: Iterable[dict] = pq.read_table(path).to_pylist()
    else:
        fh = open(path, newline="", encoding="utf-8")  # noqa: SIM115 - closed below
        rows = csv.DictReader(fh)
    try:
        for row in rows:
            event = {
                "user_id": str(row["user_id"]),
                "item_id": str(row["item_id"]),
                "categories": [c for c in str(row["category"]).split("|") if c],
                "event_type": canonical_event_type(str(row["event_type"])),
                "ts": float(row["ts"]),
            }
            if row.get("weight") not in (None, ""):
                event["weight"] = float(row["weight"])
            yield event
    finally:
        if not isinstance(rows, list):
            fh.close()


def write_generic(events: Iterable[dict], path: str | Path) -> int:
    """Write events as the generic CSV (``user_id,item_id,category,event_type,ts``,
    categories joined by ``|``); returns the number of rows.

    Examples
    --------
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "ev.csv")
    >>> ev = {"user_id": "u", "item_id": "1", "categories": ["a", "b"], "event_type": "rate",
    ...       "ts": 5.0}
    >>> write_generic([ev], path), [e["categories"] for e in read_generic(path)]
    (1, [['a', 'b']])
    """
    n = 0
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["user_id", "item_id", "category", "event_type", "ts"])
        for e in events:
            w.writerow(
                [e["user_id"], e["item_id"], "|".join(e["categories"]), e["event_type"], e["ts"]]
            )
            n += 1
    return n


def load_events(
    path: str | Path, fmt: str = "generic", items: str | Path | None = None
) -> list[dict]:
    """Load a whole event file in replay order (stable sort by ``ts``).

    ``fmt`` is one of ``taobao``, ``movielens`` (``items`` = the movies file) or ``generic``.
    """
    if fmt == "taobao":
        rows = read_taobao(path)
    elif fmt == "movielens":
        rows = read_movielens(path, items)
    elif fmt == "generic":
        rows = read_generic(path)
    else:
        raise ValueError(f"unknown format {fmt!r}: expected one of {', '.join(FORMATS)}")
    return sort_by_time(rows)

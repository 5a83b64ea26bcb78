"""Event-log loaders: Taobao UserBehavior, MovieLens ratings + movies, and a generic CSV/Parquet.

Every loader returns events as plain dicts with the fields of the event schema
(``user_id``, ``item_id``, ``categories``, ``event_type``, ``ts``), stably sorted by ``ts``:
the replay order of the evaluation protocol and of ``interest-tracker produce``.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from models.schema import canonical_event_type

FORMATS = ("taobao", "movielens", "generic")


GENERIC_COLUMNS = ("user_id", "item_id", "category", "event_type", "ts")


class EventFileError(ValueError):
    """A row of an event file that cannot be read, named by file and line (or row).

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "ev.csv"
    >>> _ = path.write_text("user_id,item_id,category,event_type,ts\\nu,1,a,view,soon\\n")
    >>> load_events(path)
    Traceback (most recent call last):
    models.data.loaders.EventFileError: ev.csv line 2: ts 'soon' is not a number
    >>> issubclass(EventFileError, ValueError)  # the CLI reports it as a bad input
    True
    """


def sort_by_time(events: Iterable[dict]) -> list[dict]:
    """Stable sort by event time: ties keep the file's row order."""
    return sorted(events, key=lambda e: e["ts"])


def _text(value: object, name: str) -> str:
    """A required field's text: present (not None) and not empty."""
    if value is None or value == "":
        raise EventFileError(f"{name} is missing")
    return str(value)


def _number(value: object, name: str) -> float:
    """A required field as a finite float."""
    text = _text(value, name)
    try:
        number = float(text)
    except ValueError:
        raise EventFileError(f"{name} {value!r} is not a number") from None
    if not math.isfinite(number):
        raise EventFileError(f"{name} {value!r} is not a finite number")
    return number


def _categories(value: object) -> list[str]:
    cats = [c for c in _text(value, "category").split("|") if c]
    if not cats:
        raise EventFileError(f"category {value!r} names no category")
    return cats


def _located(rows: Iterable, where: Callable[[], str], read: Callable[[Any], dict]) -> Iterator:
    """``read(row)`` for each row; a row it refuses is named by ``where()`` (the reader's
    position, asked only then)."""
    for row in rows:
        try:
            event = read(row)
        except EventFileError as exc:
            raise EventFileError(f"{where()}: {exc}") from None
        if event is not None:
            yield event


def _require_columns(path: str | Path, found: Sequence[str] | None, needed: Sequence[str]) -> None:
    missing = [c for c in needed if c not in (found or ())]
    if missing:
        raise EventFileError(
            f"{Path(path).name}: missing column{'s' if len(missing) > 1 else ''} "
            f"{', '.join(map(repr, missing))} "
            f"(its header: {', '.join(found or ()) or 'none'}; expected {', '.join(needed)})"
        )


def read_taobao(path: str | Path) -> Iterator[dict]:
    """Rows of ``user_id,item_id,category_id,behavior_type,timestamp`` (no header), file order.

    Examples
    --------
    >>> import tempfile, os
    >>> f = tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False)
    >>> _ = f.write("1,10,7,pv,1511544070\\n1,11,8,buy,1511544080\\n"); f.close()
    >>> [(e["item_id"], e["categories"], e["event_type"]) for e in read_taobao(f.name)]
    [('10', ['7'], 'view'), ('11', ['8'], 'purchase')]
    >>> with open(f.name, "a") as fh:
    ...     _ = fh.write("1,12,9,pv\\n")
    >>> list(read_taobao(f.name))
    Traceback (most recent call last):
    models.data.loaders.EventFileError: ... line 3: 4 fields, expected 5 (...)
    >>> os.unlink(f.name)
    """

    def event(row: list[str]) -> dict | None:
        if not row:
            return None
        if len(row) < 5:
            raise EventFileError(f"{len(row)} fields, expected 5 (user,item,category,behavior,ts)")
        user, item, category, behavior, ts = row[:5]
        return {
            "user_id": _text(user, "user"),
            "item_id": _text(item, "item"),
            "categories": [_text(category, "category")],
            "event_type": canonical_event_type(_text(behavior, "behavior")),
            "ts": _number(ts, "ts"),
        }

    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        yield from _located(reader, lambda: f"{Path(path).name} line {reader.line_num}", event)


def read_movielens_genres(movies_path: str | Path) -> dict[str, list[str]]:
    """``movieId -> [genre, ...]`` from a MovieLens ``movies.csv`` (genres split on ``|``)."""
    name = Path(movies_path).name
    with open(movies_path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        _require_columns(movies_path, reader.fieldnames, ("movieId", "genres"))
        pairs = _located(
            reader,
            lambda: f"{name} line {reader.line_num}",
            lambda row: (_text(row["movieId"], "movieId"), _categories(row["genres"])),
        )
        genres = dict(pairs)
    if not genres:
        raise EventFileError(f"{name}: no movies")
    return genres


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
    unlisted = ["(no genres listed)"]

    def event(row: dict) -> dict:
        movie = _text(row["movieId"], "movieId")
        out = {
            "user_id": _text(row["userId"], "userId"),
            "item_id": movie,
            "categories": genres.get(movie, unlisted),
            "event_type": "rate",
            "ts": _number(row["timestamp"], "timestamp"),
        }
        if row.get("rating") not in (None, ""):
            out["rating"] = _number(row["rating"], "rating")
        return out

    with open(ratings_path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        _require_columns(ratings_path, reader.fieldnames, ("userId", "movieId", "timestamp"))
        yield from _located(reader, lambda: f"{ratings_path.name} line {reader.line_num}", event)


def read_generic(path: str | Path) -> Iterator[dict]:
    """CSV (with header) or Parquet with ``user_id,item_id,category,event_type,ts``.

    Several categories are joined by ``|``; an optional ``weight`` column is kept. A row that
    lacks a field, or whose ``ts`` or ``weight`` is not a finite number, is an
    :class:`EventFileError` naming its line (its row, in Parquet).
    """
    path = Path(path)
    if path.suffix in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        _require_columns(path, table.column_names, GENERIC_COLUMNS)
        rows = table.to_pylist()
        done = [0]  # rows read so far, for the message

        def counted(row: dict) -> dict:
            done[0] += 1
            return _generic_event(row)

        yield from _located(rows, lambda: f"{path.name} row {done[0]}", counted)
        return
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        _require_columns(path, reader.fieldnames, GENERIC_COLUMNS)
        yield from _located(reader, lambda: f"{path.name} line {reader.line_num}", _generic_event)


def _generic_event(row: dict) -> dict:
    event = {
        "user_id": _text(row["user_id"], "user_id"),
        "item_id": _text(row["item_id"], "item_id"),
        "categories": _categories(row["category"]),
        "event_type": canonical_event_type(_text(row["event_type"], "event_type")),
        "ts": _number(row["ts"], "ts"),
    }
    if row.get("weight") not in (None, ""):
        event["weight"] = _number(row["weight"], "weight")
    return event


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

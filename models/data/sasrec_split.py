"""MovieLens-1M as SASRec processed it, rebuilt from a published leave-last-out split.

SASRec's ``ml-1m.txt`` (users and items with at least 5 ratings, each user's ratings in time
order, ids renumbered; 6,040 users, 3,416 items, 999,611 ratings) is the data set that
SASRec, BERT4Rec, gSASRec and HSTU report on. gSASRec's repository publishes it split as
files of one line per user: ``train/input.txt`` (each user's items but the last two, or three
for the validation users), ``val/input.txt`` and ``val/output.txt`` (for 512 users, the items
but the last two, and the second-to-last) and ``test/output.txt`` (each user's last item).
Those files hold every rating of the validation users; of the others, all but the
second-to-last, which only the test inputs hold. asash/ml1m-sas-mapping recovers the original
MovieLens ids of the renumbered items (``sas_to_original_items.txt``), and ML-1M's
``movies.dat`` gives their genres.

This module joins them into the generic CSV (``user_id,item_id,category,event_type,ts``).
The published split has no timestamps: a user's events are one minute apart, in order.
``--complete-out`` also writes the validation users alone: with their whole sequences, the
last item ranked after all the others is exactly the papers' test case.

``--complete-with FILE`` fills in the missing items from SASRec's own file: its lines
``user item item ...`` (one per user; or ``user item``, one per rating), whole or cut to each
user's last three items. A line is used only where it agrees with the split (the item before
the missing one and the last; the whole line when it is longer), and the item it supplies must
be new to the user (a user rates a movie once).

    python -m models.data.sasrec_split --split DIR --item-map sas_to_original_items.txt \\
        --movies movies.dat --out ml1m.csv --complete-out ml1m-complete.csv
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

from models.data.loaders import write_generic

TS0 = 1_000_000_000.0  # the first event's time; a user's events are STEP_S apart
STEP_S = 60.0


def join_split(
    train: Sequence[list[str]],
    val_inputs: Sequence[list[str]],
    val_outputs: Sequence[str],
    test_outputs: Sequence[str],
) -> tuple[dict[int, list[str]], set[int]]:
    """Each user's items (users numbered from 1 in file order) and the users whose sequence
    is whole (the validation users). A validation line is matched to the user whose training
    line it extends by one item, in file order.

    >>> seqs, whole = join_split([["a"], ["b", "c"]], [["b", "c", "d"]], ["e"], ["x", "f"])
    >>> seqs, whole
    ({1: ['a', 'x'], 2: ['b', 'c', 'd', 'e', 'f']}, {2})
    """
    if len(train) != len(test_outputs) or len(val_inputs) != len(val_outputs):
        raise ValueError("the split's files disagree on their number of users")
    sequences: dict[int, list[str]] = {}
    whole: set[int] = set()
    v = 0
    for user, (items, last) in enumerate(zip(train, test_outputs, strict=True), start=1):
        if v < len(val_inputs) and val_inputs[v][:-1] == items:
            sequences[user] = [*val_inputs[v], val_outputs[v], last]
            whole.add(user)
            v += 1
        else:
            sequences[user] = [*items, last]
    if v != len(val_inputs):
        raise ValueError(f"{len(val_inputs) - v} validation lines match no user's training line")
    return sequences, whole


def sasrec_lines(lines: Iterable[list[str]]) -> dict[int, list[str]]:
    """Each user's items from SASRec's text file: one line per user, or one per rating.

    >>> sasrec_lines([["1", "a", "b", "c"], ["2", "d", "e", "f"]])
    {1: ['a', 'b', 'c'], 2: ['d', 'e', 'f']}
    >>> sasrec_lines([["1", "a"], ["1", "b"], ["2", "c"]])
    {1: ['a', 'b'], 2: ['c']}
    """
    lines = [line for line in lines if line]
    per_rating = all(len(line) == 2 for line in lines)
    users: dict[int, list[str]] = {}
    for line in lines:
        user = int(line[0])
        if per_rating:
            users.setdefault(user, []).append(line[1])
        elif user in users:
            raise ValueError(f"user {user} has two lines")
        else:
            users[user] = line[1:]
    return users


def complete(
    sequences: dict[int, list[str]], whole: set[int], lines: Mapping[int, list[str]]
) -> tuple[set[int], list[int]]:
    """Insert each incomplete user's second-to-last item from ``lines`` (in place); return
    the users now whole and the users whose line disagrees with the split.

    >>> seqs = {1: ["a", "b", "d"], 2: ["e", "f", "g"]}
    >>> complete(seqs, {2}, {1: ["b", "c", "d"], 2: ["x", "f", "g"]})
    ({1}, [2])
    >>> seqs[1]
    ['a', 'b', 'c', 'd']
    """
    filled, disagree = set(), []
    for user, line in sorted(lines.items()):
        known = sequences.get(user)
        if known is None or not _agrees(line, known, user in whole):
            disagree.append(user)
        elif user not in whole:
            sequences[user] = [*known[:-1], line[-2], known[-1]]
            filled.add(user)
    return filled, disagree


def _agrees(line: list[str], known: list[str], is_whole: bool) -> bool:
    if len(line) < 3:
        return False
    if is_whole:
        return line == known if len(line) > 3 else line == known[-3:]
    if len(line) > 3:
        return line[:-2] + line[-1:] == known and line[-2] not in known
    return line[0] == known[-2] and line[2] == known[-1] and line[1] not in known


def read_movies(path: str | Path) -> dict[str, list[str]]:
    """ML-1M ``movies.dat`` (``id::title::genre|genre``, Latin-1): id -> genres."""
    genres = {}
    with open(path, encoding="latin-1") as fh:
        for line in fh:
            if line.strip():
                movie, _title, names = line.rstrip("\n").split("::")
                genres[movie] = names.split("|")
    return genres


def events(
    sequences: Mapping[int, list[str]],
    item_map: Mapping[str, str],
    genres: Mapping[str, list[str]],
    users: Iterable[int] | None = None,
) -> Iterator[dict]:
    """The generic events of ``users`` (all by default): original item ids, their genres.

    >>> list(events({7: ["1"]}, {"1": "1198"}, {"1198": ["Action", "Adventure"]}))
    [{'user_id': '7', 'item_id': '1198', 'categories': ['Action', 'Adventure'], \
'event_type': 'rate', 'ts': 1000000000.0}]
    """
    for user in sorted(sequences) if users is None else sorted(users):
        for k, item in enumerate(sequences[user]):
            movie = item_map[item]
            yield {
                "user_id": str(user),
                "item_id": movie,
                "categories": genres[movie],
                "event_type": "rate",
                "ts": TS0 + STEP_S * k,
            }


def _lines(path: Path) -> list[list[str]]:
    return [line.split() for line in path.read_text().splitlines()]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m models.data.sasrec_split", description=__doc__)
    p.add_argument("--split", required=True, type=Path, help="folder with train/ val/ test/")
    p.add_argument("--item-map", required=True, type=Path, help="sas_to_original_items.txt")
    p.add_argument("--movies", required=True, type=Path, help="ML-1M movies.dat")
    p.add_argument("--out", required=True, help="every user, as generic CSV")
    p.add_argument("--complete-out", help="the users whose whole sequence is published")
    p.add_argument(
        "--complete-with",
        type=Path,
        help="SASRec's ml-1m.txt, whole or each line cut to its last three items",
    )
    args = p.parse_args(argv)
    sequences, whole = join_split(
        _lines(args.split / "train" / "input.txt"),
        _lines(args.split / "val" / "input.txt"),
        [line[0] for line in _lines(args.split / "val" / "output.txt")],
        [line[0] for line in _lines(args.split / "test" / "output.txt")],
    )
    if args.complete_with:
        filled, disagree = complete(sequences, whole, sasrec_lines(_lines(args.complete_with)))
        whole |= filled
        if disagree:
            users = ", ".join(map(str, disagree[:10])) + (" ..." if len(disagree) > 10 else "")
            raise SystemExit(f"{args.complete_with}: {len(disagree)} lines disagree: users {users}")
    item_map = dict(line for line in _lines(args.item_map) if len(line) == 2)
    genres = read_movies(args.movies)
    n = write_generic(events(sequences, item_map, genres), args.out)
    items = len({i for seq in sequences.values() for i in seq})
    print(f"{len(sequences):,} users, {items:,} items, {n:,} events ({len(whole)} users whole)")
    if args.complete_out:
        write_generic(events(sequences, item_map, genres, whole), args.complete_out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

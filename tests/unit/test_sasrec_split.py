"""ML-1M rebuilt from a published leave-last-out split (``models.data.sasrec_split``)."""

from __future__ import annotations

import pytest

from models.data.loaders import read_generic
from models.data.sasrec_split import join_split, main

pytestmark = pytest.mark.unit


def _split_files(root, train, val_in, val_out, test_out):
    for name, lines in (
        ("train/input.txt", [" ".join(s) for s in train]),
        ("val/input.txt", [" ".join(s) for s in val_in]),
        ("val/output.txt", val_out),
        ("test/output.txt", test_out),
    ):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n")


def test_validation_users_are_whole_and_the_others_lack_their_second_to_last_item():
    # users 1..4 with items u1..; users 2 and 4 are validation users
    full = {1: list("abcd"), 2: list("efgh"), 3: list("ijk"), 4: list("lmnop")}
    train = [full[1][:-2], full[2][:-3], full[3][:-2], full[4][:-3]]
    val_in = [full[2][:-2], full[4][:-2]]
    val_out = [full[2][-2], full[4][-2]]
    test_out = [full[u][-1] for u in (1, 2, 3, 4)]
    seqs, whole = join_split(train, val_in, val_out, test_out)
    assert whole == {2, 4}
    assert seqs[2] == full[2] and seqs[4] == full[4]
    assert seqs[1] == ["a", "b", "d"] and seqs[3] == ["i", "k"]  # the test item kept, last


def test_a_validation_line_that_extends_no_training_line_is_an_error():
    with pytest.raises(ValueError, match="match no user"):
        join_split([["a"], ["b"]], [["c", "d"]], ["e"], ["x", "y"])
    with pytest.raises(ValueError, match="number of users"):
        join_split([["a"]], [], [], ["x", "y"])


def test_the_generic_csv_has_original_ids_genres_and_increasing_times(tmp_path):
    _split_files(tmp_path, [["1"], ["2"]], [["2", "1"]], ["2"], ["2", "1"])
    (tmp_path / "map.txt").write_text("1 1198\n2 1\n")
    (tmp_path / "movies.dat").write_bytes(
        "1::Toy Story (1995)::Animation|Children's|Comedy\n"
        "1198::Raiders of the Lost Ark (1981)::Action|Adventure\n".encode("latin-1")
    )
    out, whole = tmp_path / "all.csv", tmp_path / "whole.csv"
    argv = ["--split", str(tmp_path), "--item-map", str(tmp_path / "map.txt")]
    argv += ["--movies", str(tmp_path / "movies.dat"), "--out", str(out)]
    assert main([*argv, "--complete-out", str(whole)]) == 0
    rows = list(read_generic(out))
    assert [(e["user_id"], e["item_id"]) for e in rows] == [
        ("1", "1198"),
        ("1", "1"),
        ("2", "1"),
        ("2", "1198"),
        ("2", "1"),
        ("2", "1198"),
    ]
    assert rows[0]["categories"] == ["Action", "Adventure"] and rows[0]["event_type"] == "rate"
    ts = [e["ts"] for e in rows if e["user_id"] == "2"]
    assert ts == sorted(ts) and len(set(ts)) == len(ts)
    assert {e["user_id"] for e in read_generic(whole)} == {"2"}


def _ml(tmp_path, full, val_users):
    """The split files of ``full`` (user -> items) with ``val_users`` whole, and the map and
    movies files for items 1..9; the arguments for ``main``."""
    users = sorted(full)
    train = [full[u][: -3 if u in val_users else -2] for u in users]
    val_in = [full[u][:-2] for u in users if u in val_users]
    val_out = [full[u][-2] for u in users if u in val_users]
    _split_files(tmp_path, train, val_in, val_out, [full[u][-1] for u in users])
    (tmp_path / "map.txt").write_text("".join(f"{i} {i}\n" for i in range(1, 10)))
    movies = "".join(f"{i}::M{i} (2000)::Drama\n" for i in range(1, 10))
    (tmp_path / "movies.dat").write_text(movies)
    return ["--split", str(tmp_path), "--item-map", str(tmp_path / "map.txt"), "--movies",
            str(tmp_path / "movies.dat"), "--out", str(tmp_path / "all.csv")]  # fmt: skip


def _items_by_user(path):
    users: dict[str, list[str]] = {}
    for e in read_generic(path):
        users.setdefault(e["user_id"], []).append(e["item_id"])
    return users


FULL = {1: ["1", "2", "3", "4", "5"], 2: ["6", "7", "8", "9"], 3: ["9", "8", "7", "6", "5"]}


@pytest.mark.parametrize(
    "lines",
    [
        "1 3 4 5\n2 7 8 9\n",  # each line cut to its last three items (user 3 left as it is)
        "1 1 2 3 4 5\n2 6 7 8 9\n3 9 8 7 6 5\n",  # SASRec's file, one line per user
        "".join(f"{u} {i}\n" for u in (1, 2) for i in FULL[u]),  # one line per rating
    ],
)
def test_sasrecs_own_lines_fill_in_the_missing_second_to_last_items(tmp_path, lines):
    argv = _ml(tmp_path, FULL, val_users={3})
    (tmp_path / "ends.txt").write_text(lines)
    whole = tmp_path / "whole.csv"
    assert main([*argv, "--complete-with", str(tmp_path / "ends.txt")]) == 0
    main([*argv, "--complete-with", str(tmp_path / "ends.txt"), "--complete-out", str(whole)])
    assert _items_by_user(tmp_path / "all.csv") == {str(u): s for u, s in FULL.items()}
    assert set(_items_by_user(whole)) == {"1", "2", "3"}


@pytest.mark.parametrize(
    "lines, user",
    [
        ("1 3 4 5\n2 7 8 1\n", "2"),  # user 2's last item is 9, not 1
        ("1 2 4 5\n", "1"),  # the item before the missing one is 3
        ("1 3 2 5\n", "1"),  # item 2 is already user 1's
        ("3 9 8 6 6 5\n", "3"),  # a whole user's line must equal the split's
        ("7 1 2 3\n", "7"),  # no such user
    ],
)
def test_a_line_that_disagrees_with_the_split_stops_the_build_and_names_the_user(
    tmp_path, lines, user
):
    argv = _ml(tmp_path, FULL, val_users={3})
    (tmp_path / "ends.txt").write_text(lines)
    with pytest.raises(SystemExit, match=rf"1 lines disagree: users {user}$"):
        main([*argv, "--complete-with", str(tmp_path / "ends.txt")])
    assert not (tmp_path / "all.csv").exists()

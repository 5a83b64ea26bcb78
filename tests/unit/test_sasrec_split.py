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

"""Bad input files and options of the offline commands: one line naming the problem (the
file and line where a row is at fault), exit status 1 (2 for a bad option), no traceback."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from models.data.loaders import EventFileError, load_events
from stream.cli.entry import main

pytestmark = pytest.mark.unit

HEADER = "user_id,item_id,category,event_type,ts"


def events_csv(path: Path, n: int = 40, extra: str = "", prefix: str = "") -> Path:
    rows = [HEADER] + [f"u{i % 4},i{i % 7},{'abc'[i % 3]},view,{1000 + i}" for i in range(n)]
    path.write_text(prefix + "\n".join(rows) + "\n" + extra, encoding="utf-8")
    return path


def run(capsys, *argv: str) -> tuple[int, str]:
    """Exit status and stderr of ``interest-tracker ARGV`` (usage errors exit through
    argparse: their status is returned too)."""
    try:
        status = main([str(a) for a in argv])
    except SystemExit as exc:
        status = exc.code
    return status, capsys.readouterr().err


# The commands that talk to the broker report as the program (stream.cli's REPORTS_AS).
REPORTS_AS_PROGRAM = ("produce",)


def one_line(err: str, command: str, *words: str) -> bool:
    lines = err.strip().splitlines()
    prog = "interest-tracker" + ("" if command in REPORTS_AS_PROGRAM else f" {command}")
    return (
        len(lines) == 1
        and lines[0].startswith(f"{prog}: error:")
        and all(w in lines[0] for w in words)
        and "Traceback" not in err
    )


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        ("u9,i1,a,view\n", "line 42: ts is missing"),  # a short row
        ("u9,i1,a,view,nan\n", "line 42: ts 'nan' is not a finite number"),
        ("u9,i1,a,view,soon\n", "line 42: ts 'soon' is not a number"),
        ("u9,i1,,view,1100\n", "line 42: category is missing"),
        ("u9,i1,||,view,1100\n", "line 42: category '||' names no category"),
        (f"{HEADER}\n", "line 42: ts 'ts' is not a number"),  # a header repeated
    ],
)
def test_a_bad_row_is_named_by_its_line(tmp_path, extra, reason):
    path = events_csv(tmp_path / "events.csv", extra=extra)
    with pytest.raises(EventFileError) as exc:
        load_events(path, "generic")
    assert str(exc.value) == f"events.csv {reason}"


def test_a_missing_column_is_named_with_the_header_found(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text("user_id,item_id,cat,event_type,ts\nu,i,a,view,1\n")
    with pytest.raises(EventFileError, match="missing column 'category' .*its header: user_id"):
        load_events(path, "generic")


def test_a_byte_order_mark_is_not_part_of_the_first_column(tmp_path):
    plain = load_events(events_csv(tmp_path / "plain.csv"), "generic")
    marked = load_events(events_csv(tmp_path / "bom.csv", prefix="\ufeff"), "generic")
    assert marked == plain
    taobao = tmp_path / "taobao.csv"
    taobao.write_text("\ufeff1,10,7,pv,1511544070\n", encoding="utf-8")
    assert load_events(taobao, "taobao")[0]["user_id"] == "1"


def test_parquet_nulls_are_named_by_their_row(tmp_path):
    table = pa.table(
        {
            "user_id": ["u1", "u2"],
            "item_id": ["i1", "i2"],
            "category": ["a", None],
            "event_type": ["view", "view"],
            "ts": [1.0, 2.0],
        }
    )
    pq.write_table(table, tmp_path / "events.parquet")
    with pytest.raises(EventFileError, match=r"^events.parquet row 2: category is missing$"):
        load_events(tmp_path / "events.parquet", "generic")


def test_movielens_blames_the_file_at_fault(tmp_path):
    (tmp_path / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,1,4.0,100\n")
    (tmp_path / "movies.csv").write_text("movieId,title,genre\n1,Heat,Action\n")
    with pytest.raises(EventFileError, match="^movies.csv: missing column 'genres'"):
        load_events(tmp_path / "ratings.csv", "movielens")
    (tmp_path / "movies.csv").write_text("movieId,title,genres\n")
    with pytest.raises(EventFileError, match="^movies.csv: no movies$"):
        load_events(tmp_path / "ratings.csv", "movielens")
    (tmp_path / "movies.csv").write_text("movieId,title,genres\n1,Heat,Action|Crime\n")
    (tmp_path / "ratings.csv").write_text("userId,movieId,rating,time\n1,1,4.0,100\n")
    with pytest.raises(EventFileError, match="^ratings.csv: missing column 'timestamp'"):
        load_events(tmp_path / "ratings.csv", "movielens")


@pytest.mark.parametrize("command", ["train", "evaluate", "prior", "produce"])
def test_every_command_reports_a_bad_row_on_one_line(tmp_path, capsys, monkeypatch, command):
    monkeypatch.setattr("stream.cli.produce.check_broker", lambda settings: None)  # no broker
    data = events_csv(tmp_path / "events.csv", extra="u9,i1,a,view\n")
    out = {"train": ["--out", tmp_path / "m.pt"], "prior": ["--out", tmp_path / "p.json"]}
    status, err = run(capsys, command, "--data", data, *out.get(command, []))
    assert status == 1 and one_line(err, command, "events.csv line 42: ts is missing"), err


def test_a_file_that_is_not_a_checkpoint_is_one_line(tmp_path, capsys):
    data = events_csv(tmp_path / "events.csv")
    notes = tmp_path / "notes.pt"
    notes.write_text("not a model\n")
    for extra in (["--rows", "popularity,transformer"], ["--item-level"]):
        status, err = run(capsys, "evaluate", "--data", data, "--checkpoint", notes, *extra)
        assert status == 1 and one_line(err, "evaluate", "not a sequence-model checkpoint"), err
        assert "weights_only" not in err  # torch's advice to load it unsafely is not passed on


@pytest.mark.parametrize(
    ("argv", "status", "words"),
    [
        (["--max-seconds", "inf"], 2, ["--max-seconds", "finite number > 0"]),
        (["--lr", "inf"], 2, ["--lr", "finite number > 0"]),
        (["--seed", "-5"], 2, ["--seed", "from 0 to 4294967295"]),
        (["--device", "meta"], 1, ["--device must be cpu or cuda"]),
        (["--out", "{data}/m.pt"], 1, ["is a file, not a directory"]),
    ],
)
def test_train_refuses_bad_options_before_reading_the_data(tmp_path, capsys, argv, status, words):
    data = events_csv(tmp_path / "events.csv")
    argv = [a.format(data=data) for a in argv]
    out = [] if "--out" in argv else ["--out", tmp_path / "m.pt"]
    got, err = run(capsys, "train", "--data", data, *out, *argv)
    assert got == status and one_line(err, "train", *words), err
    assert not (tmp_path / "m.pt").exists()


def test_train_refuses_a_log_too_short_to_validate(tmp_path, capsys):
    data = tmp_path / "events.csv"
    data.write_text(HEADER + "\n" + "".join(f"u1,i1,a,view,{1000 + i}\n" for i in range(5)))
    status, err = run(capsys, "train", "--data", data, "--out", tmp_path / "m.pt")
    assert status == 1 and one_line(err, "train", "no validation targets"), err
    assert not (tmp_path / "m.pt").exists()


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--rows", "popularity,transformer"], ["the transformer row needs --checkpoint"]),
        (["--rows", "fused"], ["the fused row needs --checkpoint"]),
        (["--item-level", "--rows", "popularity"], ["--item-level has its own"]),
        (["--json", "{data}/r.json"], ["is a file, not a directory"]),
    ],
)
def test_evaluate_refuses_options_that_cannot_give_what_they_ask(tmp_path, capsys, argv, words):
    data = events_csv(tmp_path / "events.csv")
    status, err = run(capsys, "evaluate", "--data", data, *[a.format(data=data) for a in argv])
    assert status == 1 and one_line(err, "evaluate", *words), err


def test_prior_out_that_cannot_be_a_file_fails_first_and_leaves_nothing(tmp_path, capsys):
    data = events_csv(tmp_path / "events.csv")
    (tmp_path / "adir").mkdir()
    for out, words in ((tmp_path / "adir", "not a directory"), (data / "p.json", "is a file")):
        status, err = run(capsys, "prior", "--data", data, "--out", out)
        assert status == 1 and one_line(err, "prior", words), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adir", "events.csv"]
    assert not any((tmp_path / "adir").iterdir())
    status, _ = run(capsys, "prior", "--data", data, "--out", tmp_path / "new" / "p.json")
    assert status == 0 and (tmp_path / "new" / "p.json").is_file()


@pytest.mark.parametrize(
    ("argv", "status", "words"),
    [
        (["--synthetic", "--categories", "3"], 1, ["categories must be at least 4"]),
        (["--synthetic", "--users", "0"], 2, ["--users", "> 0"]),
        (["--synthetic", "--seed", "-1"], 2, ["--seed", "from 0"]),
        (["--data", "{data}", "--limit", "-5"], 2, ["--limit", "> 0"]),
        (["--data", "{data}", "--progress", "-1"], 2, ["--progress", "> 0"]),
    ],
)
def test_produce_refuses_numbers_it_cannot_use(tmp_path, capsys, monkeypatch, argv, status, words):
    sent = []
    monkeypatch.setattr("stream.cli.produce.check_broker", lambda settings: None)  # no broker
    monkeypatch.setattr("stream.clients.Producer.__init__", lambda *a, **k: sent.append(a))
    data = events_csv(tmp_path / "events.csv")
    got, err = run(capsys, "produce", *[a.format(data=data) for a in argv])
    lines = err.strip().splitlines()
    assert got == status and len(lines) == 1 and "Traceback" not in err, err
    assert "error:" in lines[0] and all(w in lines[0] for w in words), err
    assert sent == []  # refused before anything was sent


def test_catalog_names_a_short_row_before_it_needs_a_broker(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")  # nothing listens there
    path = tmp_path / "items.csv"
    path.write_text("item_id,categories\n1,a\n2\n")
    status, err = run(capsys, "catalog", "--data", path)
    assert status == 1 and one_line(err, "catalog", "items.csv line 3"), err
    status, err = run(capsys, "catalog", "--data", path, "--topics", "0")
    assert status == 2 and one_line(err, "catalog", "--topics", "> 0"), err


@pytest.mark.parametrize(
    "command", [["worker"], ["subscribe", "--timeout", "1"], ["forget", "--user", "u1"]]
)
def test_a_bad_setting_stops_a_command_on_one_line(capsys, monkeypatch, command):
    monkeypatch.setenv("INTEREST_TOP_K", "0")
    status, err = run(capsys, *command)
    lines = err.strip().splitlines()
    assert status == 1 and len(lines) == 1, err
    assert lines[0].endswith("error: bad setting: INTEREST_TOP_K must be 1 or more, got 0")

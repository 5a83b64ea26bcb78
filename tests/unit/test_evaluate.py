"""The replay harness, the item-level protocol and the ``evaluate`` command.

The protocol test reproduces the reference figures of shared/data/README.md to the third
decimal (popularity, Markov-1, decayed user histogram on taobao-head and ml-latest-small).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import types
from pathlib import Path

import numpy as np
import pytest

import models
from models.data.loaders import load_events
from models.evaluation import evaluate as ev_mod
from models.evaluation.evaluate import evaluate
from models.evaluation.item_eval import (
    ItemSplit,
    evaluate_items,
    hr_ndcg,
    popularity_ranks,
    rank_dense,
    scorer_ranks,
)
from models.evaluation.replay import JSON_KEYS, ReplayContext, replay
from models.evaluation.vocabulary import Vocabulary
from stream.cli import evaluate as cli_evaluate
from stream.cli.common import add_command

pytestmark = pytest.mark.unit

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
TAOBAO = DATA / "taobao-head" / "UserBehavior.csv"
ML = DATA / "ml-latest-small" / "ratings.csv"


def event(user, cats, ts, item="i", event_type="view") -> dict:
    return {
        "user_id": user,
        "item_id": item,
        "categories": cats,
        "event_type": event_type,
        "ts": ts,
    }


class Spy:
    """Predicts a fixed distribution; records what it is shown."""

    name = "spy"

    def __init__(self, p):
        self.p = np.asarray(p, dtype=float)
        self.calls: list[tuple] = []

    def predict(self, query):
        self.calls.append(("predict", dict(query)))
        return self.p

    def learn(self, e):
        self.calls.append(("learn", e["ts"]))


def test_replay_warms_up_on_80_percent_then_predicts_before_learning():
    events = [event("u", ["a"], float(i)) for i in range(11)]
    ctx = ReplayContext.build(events)
    assert ctx.split == 8  # floor(0.8 * 11)
    spy = Spy([1.0])
    row = replay(spy, ctx)
    kinds = [c[0] for c in spy.calls]
    assert kinds == ["learn"] * 8 + ["predict", "learn"] * 3
    # the prediction sees only who and when, never the item, categories or type
    assert spy.calls[8] == ("predict", {"user_id": "u", "ts": 8.0})
    assert spy.calls[9] == ("learn", 8.0)
    assert row.n == 3 and row.n_warm == 3


def test_replay_metrics_hand_computed_with_a_constant_predictor():
    # warm-up (5 of 10 events): u:a x4, v:b; scored: u:(a,b) (u has 4 earlier events: cold),
    # v:a (cold), u:c (5 earlier: warm), w:c, w:c (cold)
    events = [event("u", ["a"], float(i)) for i in range(4)]
    events += [event("v", ["b"], 4.0)]
    events += [event("u", ["a", "b"], 5.0), event("v", ["a"], 6.0), event("u", ["c"], 7.0)]
    events += [event("w", ["c"], 100.0 + i) for i in range(2)]
    ctx = ReplayContext.build(events, warmup=0.5)
    assert ctx.split == 5 and ctx.vocab.names == ["a", "b", "c"]
    p = np.array([0.5, 0.3, 0.2])
    row = replay(Spy(p), ctx)
    nll = [
        -(math.log(0.5) + math.log(0.3)) / 2,
        -math.log(0.5),
        -math.log(0.2),
        -math.log(0.2),
        -math.log(0.2),
    ]
    assert row.values["nll"] == pytest.approx(np.mean(nll))
    assert row.values["nll_warm"] == pytest.approx(-math.log(0.2))
    assert row.values["hit@1"] == pytest.approx(2 / 5)  # a is top: u:(a,b) and v:a hit
    assert row.values["hit@1_warm"] == 0.0
    assert row.values["hit@5"] == 1.0
    assert (row.n, row.n_warm, row.n_cold) == (5, 1, 4)
    assert row.values["nll_cold"] == pytest.approx(np.mean(nll[:4]))  # each user's first 5
    assert row.values["hit@1_cold"] == pytest.approx(2 / 4)

    def kl(q):
        return sum(qi * math.log(qi / pi) for qi, pi in zip(q, p, strict=True) if qi > 0)

    def mis(q):
        return sum(
            qi * math.log(qi / (0.99 * pi + 0.01 * qi)) for qi, pi in zip(q, p, strict=True) if qi
        )

    # q_future: u from (a,b): (a,b), c -> a 1/4, b 1/4, c 1/2; v from a: a; u from c: c;
    # w from its first c: c, c; w from its second: c
    qs = [[0.25, 0.25, 0.5], [1, 0, 0], [0, 0, 1], [0, 0, 1], [0, 0, 1]]
    assert row.values["kl_future"] == pytest.approx(np.mean([kl(q) for q in qs]))
    assert row.values["miscalibration"] == pytest.approx(np.mean([mis(q) for q in qs]))
    assert row.values["seconds"] >= 0


def test_future_mix_horizon_is_20_events_of_the_user():
    events = [event("u", ["a"], float(i)) for i in range(30)]
    events += [event("u", ["b"], 30.0 + i) for i in range(20)]
    ctx = ReplayContext.build(events)  # split 40: u's events 40..49 are all b
    idx, val = ctx.futures[40]
    assert (idx.tolist(), val.tolist()) == ([1], [1.0])
    ctx = ReplayContext.build(events, warmup=0.5)  # split 25: 25..44 -> 5 a, 15 b
    idx, val = ctx.futures[25]
    assert val.tolist() == pytest.approx([0.25, 0.75])


class PerUserCounts:
    """A per-user predictor (own counts only) with a batched ``predict_many``."""

    name = "per-user"

    def __init__(self, vocab):
        self.vocab, self.counts, self.batches = vocab, {}, []

    def predict(self, query):
        c = self.counts.get(query["user_id"], np.zeros(len(self.vocab))) + 0.1
        return c / c.sum()

    def predict_many(self, queries):
        self.batches.append(len(queries))
        return np.stack([self.predict(q) for q in queries])

    def learn(self, e):
        c = self.counts.setdefault(e["user_id"], np.zeros(len(self.vocab)))
        c[self.vocab.encode(e["categories"])] += 1.0


def test_prefetched_batches_score_exactly_as_one_by_one():
    rng = np.random.default_rng(1)
    events = [event(f"u{rng.integers(6)}", [str(rng.integers(5))], float(i)) for i in range(400)]
    ctx = ReplayContext.build(events)
    plain = replay(PerUserCounts(ctx.vocab), ctx)
    inner = PerUserCounts(ctx.vocab)
    wrapped = ev_mod.PrefetchedPredictor(inner)
    batched = replay(wrapped, ctx, prefetch=wrapped.prefetch, chunk_size=32)
    for k, v in plain.values.items():
        if k != "seconds":
            assert batched.values[k] == pytest.approx(v, abs=1e-12, nan_ok=True), k
    assert max(inner.batches) == 6 and sum(inner.batches) == 80  # all 80 scored, in batches
    assert sum(c.sum() for c in inner.counts.values()) == 400  # every event learned once


@pytest.fixture(scope="module")
def taobao_events():
    if not TAOBAO.is_file():
        pytest.skip(f"shared data not found at {TAOBAO} (see shared/data/README.md)")
    return load_events(TAOBAO, "taobao")


@pytest.fixture(scope="module")
def ml_events():
    if not ML.is_file():
        pytest.skip(f"shared data not found at {ML} (see shared/data/README.md)")
    return load_events(ML, "movielens", ML.with_name("movies.csv"))


# shared/data/README.md, "Reference figures"
REFERENCE = {
    "taobao": {
        "popularity": {"nll": 6.074, "hit@1": 0.053},
        "markov-1": {"nll": 4.693, "hit@1": 0.407},
        "user-histogram": {"nll": 3.687, "hit@1": 0.285, "hit@5": 0.615},
    },
    "ml": {
        "popularity": {"nll": 2.570, "hit@1": 0.374},
        "markov-1": {"nll": 2.522, "hit@1": 0.427},
        "user-histogram": {"nll": 2.434, "hit@1": 0.523, "hit@5": 0.947},
    },
}


@pytest.mark.parametrize("dataset", ["taobao", "ml"])
def test_baselines_reproduce_the_reference_figures(dataset, request):
    events = request.getfixturevalue(f"{dataset}_events")
    report = evaluate(events, dataset, rows=list(REFERENCE[dataset]))
    assert len(Vocabulary.from_events(events)) == {"taobao": 2914, "ml": 20}[dataset]
    got = {r.name: r.values for r in report.rows}
    for name, expected in REFERENCE[dataset].items():
        for metric, value in expected.items():
            assert round(got[name][metric], 3) == pytest.approx(value, abs=1e-9), (
                f"{dataset} {name} {metric}: {got[name][metric]:.5f} != {value}"
            )


def test_all_rows_run_on_a_slice_and_the_json_has_the_agreed_shape(taobao_events, tmp_path):
    events = taobao_events[:4000]
    report = evaluate(events, "taobao-head")
    names = [r.name for r in report.rows]
    assert names == [
        "popularity",
        "markov-1",
        "user-histogram",
        "river-classifier",
        "online",
        "collaborative",
    ]
    assert any("transformer, fused: omitted" in n for n in report.notes)
    path = tmp_path / "out" / "report.json"
    report.write_json(path)
    doc = json.loads(path.read_text())
    assert set(doc) == {"dataset", "events", "rows"}
    assert doc["dataset"] == "taobao-head" and doc["events"] == 4000
    for row in doc["rows"]:
        assert list(row) == ["name", *JSON_KEYS]
        assert all(isinstance(row[k], float) for k in JSON_KEYS)
    table = report.markdown()
    assert "| online |" in table and "hit@10_warm" in table


def test_sequence_hook_builds_transformer_and_fused_rows(monkeypatch, tmp_path):
    seen = {}

    def seq_predictor(checkpoint, categories):
        seen["categories"] = categories
        return Spy(np.full(len(categories), 1 / len(categories)))

    def fused_predictor(sequence, online, categories):
        fused = Spy(np.full(len(categories), 1 / len(categories)))
        fused.note = "defaults"
        return fused

    fake_seq = types.SimpleNamespace(evaluation_predictor=seq_predictor)
    fake_fusion = types.SimpleNamespace(evaluation_predictor=fused_predictor)
    monkeypatch.setitem(sys.modules, "models.sequence", fake_seq)
    monkeypatch.setitem(sys.modules, "models.fusion", fake_fusion)
    monkeypatch.setattr(models, "sequence", fake_seq, raising=False)
    monkeypatch.setattr(models, "fusion", fake_fusion, raising=False)
    ckpt = tmp_path / "model.pt"
    ckpt.write_bytes(b"")
    events = [
        event(u, [c], float(i))
        for i, (u, c) in enumerate(zip("uvuvuvuvuv", "ababcbabab", strict=True))
    ]
    report = evaluate(events, "toy", checkpoint=ckpt, rows=["transformer", "fused"])
    assert [r.name for r in report.rows] == ["transformer", "fused"]
    assert seen["categories"] == ["a", "b", "c"]
    assert report.notes == ["fused: defaults"]
    assert report.rows[0].values["nll"] == pytest.approx(math.log(3))
    only = evaluate(events, "toy", checkpoint=ckpt, rows=["fused"])
    assert [r.name for r in only.rows] == ["fused"]

    def broken(checkpoint, categories):
        raise RuntimeError("Missing key(s) in state_dict")

    monkeypatch.setattr(fake_seq, "evaluation_predictor", broken)
    with pytest.raises(ValueError, match="cannot load checkpoint .*Missing key"):
        evaluate(events, "toy", checkpoint=ckpt, rows=["transformer"])


def test_sequence_rows_are_omitted_with_a_note_when_the_module_lacks_the_hook(monkeypatch):
    empty = types.SimpleNamespace()
    monkeypatch.setitem(sys.modules, "models.sequence", empty)
    monkeypatch.setattr(models, "sequence", empty, raising=False)
    ctx = ReplayContext.build([event("u", ["a"], float(i)) for i in range(5)])
    notes: list[str] = []
    assert ev_mod.sequence_rows(ctx, None, notes) == []
    assert notes == ["transformer, fused: omitted (no --checkpoint given)"]
    notes.clear()
    assert ev_mod.sequence_rows(ctx, __file__, notes) == []
    assert "has no evaluation_predictor" in notes[0]


# -- item level --------------------------------------------------------------------------------
def test_item_ranks_match_a_brute_force_full_ranking():
    rng = np.random.default_rng(0)
    events = [
        {"user_id": int(u), "item_id": int(i)}
        for u, i in zip(rng.integers(0, 40, 600), rng.zipf(1.5, 600) % 50, strict=True)
    ]
    split = ItemSplit.build(events)
    counts = np.zeros(len(split.items))
    for h in split.histories:
        np.add.at(counts, h, 1.0)
    fast = popularity_ranks(split)
    dense = scorer_ranks(lambda hs: np.tile(counts, (len(hs), 1)), split, batch_size=7)
    assert fast.tolist() == dense.tolist()
    for u, (h, t) in enumerate(zip(split.histories, split.targets.tolist(), strict=True)):
        others = [
            j
            for j in range(len(counts))
            if j != t and j not in set(h.tolist()) and (counts[j], -j) > (counts[t], -t)
        ]
        assert fast[u] == len(others)


def test_hr_ndcg_and_masking_hand_computed():
    hr, ndcg = hr_ndcg(np.array([0, 9, 10, 3]))
    assert hr == 0.75
    assert ndcg == pytest.approx((1 + 1 / math.log2(11) + 1 / math.log2(5)) / 4)
    scores = np.array([[5.0, 4.0, 3.0, 2.0]])
    assert rank_dense(scores, np.array([3]), [np.array([0, 1])]).tolist() == [1]
    assert rank_dense(scores, np.array([0]), [np.array([0])]).tolist() == [0]  # target kept


def test_item_level_on_movielens_popularity(ml_events):
    report = evaluate_items(ml_events, "ml-latest-small")
    row, transition = report.rows
    assert (row.name, transition.name) == ("popularity", "transition")
    assert row.users == 610
    assert 0.0 < row.ndcg < row.hr < 0.2
    assert report.notes == ["transformer: omitted (no --checkpoint given)"]


# -- the command -------------------------------------------------------------------------------
def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="interest-tracker")
    add_command(p.add_subparsers(dest="command"), cli_evaluate)
    return p


def write_generic(path: Path, n: int = 60) -> Path:
    rows = ["user_id,item_id,category,event_type,ts"]
    for i in range(n):
        rows.append(f"u{i % 4},it{i % 7},{'abc'[i % 3]}|{'xy'[i % 2]},view,{1000 + i}")
    path.write_text("\n".join(rows) + "\n")
    return path


def test_command_prints_the_table_and_writes_json(tmp_path, capsys):
    data = write_generic(tmp_path / "events.csv")
    out = tmp_path / "r.json"
    args = parser().parse_args(
        ["evaluate", "--data", str(data), "--json", str(out), "--rows", "popularity,markov-1"]
    )
    assert args.func(args) == 0
    stdout = capsys.readouterr().out
    assert "| popularity |" in stdout and "| markov-1 |" in stdout
    doc = json.loads(out.read_text())
    assert doc["dataset"] == "events" and doc["events"] == 60
    assert [r["name"] for r in doc["rows"]] == ["popularity", "markov-1"]


def test_command_item_level_and_limit(tmp_path, capsys):
    data = write_generic(tmp_path / "events.csv")
    args = parser().parse_args(["evaluate", "--data", str(data), "--item-level", "--limit", "40"])
    assert args.func(args) == 0
    stdout = capsys.readouterr().out
    assert "40 events" in stdout and "| popularity |" in stdout and "NDCG@10" in stdout


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--data", "/no/such/file.csv"], "data file not found"),
        (["--data", "{data}", "--checkpoint", "/no/such.pt"], "checkpoint not found"),
        (["--data", "{data}", "--rows", "popularity,nope"], "unknown rows nope"),
        (["--data", "{data}", "--format", "taobao"], "cannot read"),
    ],
)
def test_command_fails_with_one_line(tmp_path, capsys, argv, message):
    data = write_generic(tmp_path / "events.csv")
    args = parser().parse_args(["evaluate", *[a.format(data=data) for a in argv]])
    assert args.func(args) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and err.startswith("interest-tracker evaluate")


@pytest.mark.parametrize(
    "argv", [[], ["--data", "x", "--limit", "0"], ["--data", "x", "--format", "xml"]]
)
def test_bad_arguments_exit_2_with_one_line(capsys, argv):
    with pytest.raises(SystemExit) as exc:
        parser().parse_args(["evaluate", *argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("interest-tracker evaluate: error:")

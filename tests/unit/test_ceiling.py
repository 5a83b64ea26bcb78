"""The in-sample ceilings of a log's next-category NLL, against hand-computed values and rows."""

from __future__ import annotations

import math
import random

import pytest

from models.data.loaders import write_generic
from models.evaluation import ceiling
from models.evaluation.baselines import DecayedHistogram, Popularity
from models.evaluation.replay import ReplayContext, replay

pytestmark = pytest.mark.unit


def _events(sequences: dict[str, list[list[str]]]) -> list[dict]:
    """Users' category sequences, interleaved one event per user per round, 1 s apart."""
    out, ts = [], 0.0
    for round_ in range(max(len(s) for s in sequences.values())):
        for uid, seq in sequences.items():
            if round_ < len(seq):
                ts += 1.0
                out.append(
                    {
                        "user_id": uid,
                        "item_id": f"i{ts}",
                        "categories": seq[round_],
                        "event_type": "view",
                        "ts": ts,
                    }
                )
    return out


def _mixed_log(users: int = 40, per_user: int = 30, seed: int = 0) -> list[dict]:
    """Users with their own favourite categories and some drift: something for every row."""
    rng = random.Random(seed)
    seqs = {}
    for u in range(users):
        own = rng.sample("abcdefgh", 3)
        seqs[f"u{u}"] = [
            [rng.choice(own if j < per_user // 2 else own[1:] + ["h"])]
            if rng.random() < 0.8
            else [rng.choice("abcdefgh"), rng.choice("xy")]
            for j in range(per_user)
        ]
    return _events(seqs)


def test_a_user_who_repeats_one_category_leaves_nothing_to_win():
    ctx = ReplayContext.build(_events({"u": [["a"]] * 10, "v": [["b"]] * 10}))
    for row in ceiling.ceilings(ctx, horizons=(1, 3)):
        assert row["nll"] == pytest.approx(0.0)


def test_the_next_event_ceiling_is_the_split_over_the_item_categories():
    ctx = ReplayContext.build(_events({"u": [["a"], ["a", "b", "c"], ["a", "b"], ["d"]] * 5}))
    scored = [ctx.targets[i] for i in range(ctx.split, len(ctx.events))]
    expected = sum(math.log(len(t)) for t in scored) / len(scored)
    assert ceiling.horizon_ceiling(ctx, 1)["nll"] == pytest.approx(expected)


def test_cold_and_warm_slices_follow_the_users_earlier_events():
    # u's 16 events come first: its scored ones have many before them (warm); v's 4 events
    # come last, all scored, all among its first 5 (cold)
    events = _events({"u": [["a"]] * 16}) + [
        {**e, "ts": e["ts"] + 100} for e in _events({"v": [["a"], ["a", "b"], ["b"], ["c"]]})
    ]
    ctx = ReplayContext.build(events, warmup=0.7)  # scores the last 6: u's last 2, v's 4
    row = ceiling.horizon_ceiling(ctx, 1)
    assert (row["n"], row["n_cold"]) == (6, 4)
    assert row["nll_warm"] == pytest.approx(0.0)  # u's scored events: one category each
    assert row["nll_cold"] == pytest.approx(math.log(2) / 4)  # only v's second is split


def test_no_row_of_evaluate_comes_below_the_user_ceiling():
    ctx = ReplayContext.build(_mixed_log())
    best_per_user = ceiling.user_ceiling(ctx)["nll"]
    for predictor in (Popularity(ctx.vocab), DecayedHistogram(ctx.vocab)):
        assert replay(predictor, ctx).values["nll"] > best_per_user


def test_knowing_more_of_the_order_lowers_the_ceiling():
    ctx = ReplayContext.build(_mixed_log(seed=1))
    values = [ceiling.horizon_ceiling(ctx, k)["nll"] for k in (1, 2, 5, 30)]
    assert values == sorted(values) and values[0] < values[-1]


def test_the_command_prints_the_rows_and_rejects_bad_horizons(tmp_path, capsys):
    path = tmp_path / "log.csv"
    write_generic(_mixed_log(users=10, per_user=10), path)
    out_json = tmp_path / "c.json"
    assert ceiling.main(["--data", str(path), "--horizons", "1,5", "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    assert "| the next event's categories |" in out and "| the next 5 events' mix |" in out
    assert "| the user's scored mix |" in out
    assert out_json.read_text().count('"name"') == 3
    for bad in ("0,5", "one"):
        with pytest.raises(SystemExit) as exc:
            ceiling.main(["--data", str(path), "--horizons", bad])
        assert exc.value.code == 2
    with pytest.raises(ValueError, match="at least 1"):
        ceiling.horizon_ceiling(ReplayContext.build(_mixed_log(users=2, per_user=5)), 0)

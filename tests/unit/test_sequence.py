"""The sequence model, its encoder/collate, checkpoints, the scorer, training and the CLI."""

from __future__ import annotations

import argparse
import os
import random

import numpy as np
import pytest
import torch
from torch.ao.nn.quantized.dynamic import Linear as QuantizedLinear

from models.evaluation.predictors import CollaborativePredictor, OnlinePredictor
from models.evaluation.vocabulary import Vocabulary
from models.fusion import BASES, FusionParams, checkpoint_key
from models.records import HistoryField
from models.sequence import (
    OOV,
    PAD,
    SequenceConfig,
    SequenceEncoder,
    SequenceModel,
    collate,
    item_bucket,
    load_checkpoint,
    save_checkpoint,
)
from models.sequence.samples import build_samples, split_points
from models.sequence.scorer import (
    SequencePredictor,
    SequenceScorer,
    evaluation_predictor,
    item_scorer,
)
from models.sequence.train import TrainConfig, train
from models.tracker import TrackerConfig, replay
from stream.codec import LZ4_MARK, encode_record, stored_record
from stream.scoring import ScorerProcess, score_histories
from stream.settings import Settings

pytestmark = pytest.mark.unit

CATS = ["a", "b", "c", "d", "e"]
TYPES = ["view", "click", "cart", "fav", "purchase", "rate", "pv", "buy"]


def make_events(n: int, seed: int = 0, user: str = "u", t0: float = 0.0) -> list[dict]:
    rng = random.Random(seed)
    ts = t0
    out = []
    for _ in range(n):
        ts += rng.choice([1.0, 30.0, 600.0, 86400.0])
        k = rng.choice([1, 1, 2])
        out.append(
            {
                "user_id": user,
                "item_id": str(rng.randrange(40)),
                "categories": rng.sample(CATS, k),
                "event_type": rng.choice(TYPES),
                "ts": ts,
            }
        )
    return out


@pytest.fixture(autouse=True)
def one_thread():
    """Tests share 2 cores with other work: one torch thread avoids spin-wait stalls."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def tiny():
    torch.manual_seed(0)
    config = SequenceConfig.tiny(n_item_buckets=128, max_len=16).with_vocab(len(CATS) + 2)
    encoder = SequenceEncoder(CATS, config.n_item_buckets, config.max_len)
    return SequenceModel(config).eval(), encoder


# ----------------------------------------------------------------------------- encoding


def test_encoder_ids_are_stable_and_oov_is_one():
    enc = SequenceEncoder(CATS, 128, 16)
    assert enc.category_index("a") == 2 and enc.category_index("never") == OOV
    assert item_bucket("x1", 128) == 84  # crc32 of "x1": the same in every process
    assert item_bucket(7, 128) == item_bucket("7", 128)
    s = enc.encode([{"item_id": "new", "category": "zz", "event_type": "weird", "ts": 1.0}])
    assert s.categories == [(OOV,)] and s.event_types == [1] and s.gaps == [1]
    assert 1 <= s.items[0] < 128


def test_encode_keeps_last_l_and_uses_the_gap_before_it():
    enc = SequenceEncoder(CATS, 128, max_len=4)
    events = make_events(10)
    s = enc.encode(events)
    assert len(s) == 4
    assert s.gaps == enc.encode(events[-5:]).gaps  # the first kept event knows its predecessor
    assert s.gaps[0] != 1


def test_collate_pads_to_longest_in_batch_not_to_l():
    enc = SequenceEncoder(CATS, 128, max_len=50)
    seqs = [enc.encode(make_events(n, seed=n)) for n in (3, 7, 5)]
    x, y = collate(seqs, device="cpu")
    assert y is None
    assert x["items"].shape == (3, 7) and x["mask"].sum(1).tolist() == [3, 7, 5]
    assert x["categories"].shape[:2] == (3, 7) and x["categories"].shape[2] == 2
    assert (x["items"][~x["mask"]] == PAD).all()
    xt, yt = collate([enc.encode(make_events(6), targets=True)])
    assert yt["items"].shape == (1, 6) and yt["items"][0, -1] == PAD  # last event: no target


# ----------------------------------------------------------------------------- masks


def _garble(x: dict, rows_cols: torch.Tensor) -> dict:
    g = {k: v.clone() for k, v in x.items()}
    gen = torch.Generator().manual_seed(1)
    n = int(rows_cols.sum())
    g["items"][rows_cols] = torch.randint(1, 128, (n,), generator=gen)
    g["event_types"][rows_cols] = torch.randint(1, 8, (n,), generator=gen)
    g["gaps"][rows_cols] = torch.randint(1, 32, (n,), generator=gen)
    g["categories"][rows_cols] = torch.randint(1, 7, (n, g["categories"].shape[2]), generator=gen)
    return g


@pytest.mark.parametrize("pad_side", ["left", "right"])
def test_padded_inputs_never_change_real_outputs(tiny, pad_side):
    model, enc = tiny
    seqs = [enc.encode(make_events(n, seed=n)) for n in (16, 4, 9)]
    x, _ = collate(seqs, pad_side=pad_side)
    with torch.no_grad():
        ref, _ = model(x)
        out, _ = model(_garble(x, ~x["mask"]))
    m = x["mask"]
    for head in ("category", "item"):
        assert torch.equal(ref[head][m], out[head][m])
    assert torch.isfinite(ref["category"][..., 1:]).all()  # padded rows too: no NaN
    assert torch.isfinite(out["category"][..., 1:]).all()


def test_left_and_right_padding_agree_with_unbatched(tiny):
    model, enc = tiny
    seqs = [enc.encode(make_events(n, seed=n)) for n in (5, 12, 1)]
    xl, _ = collate(seqs, pad_side="left")
    xr, _ = collate(seqs, pad_side="right")
    with torch.no_grad():
        left, _ = model(xl)
        right, _ = model(xr)
        last = model.predict_last(xl)["category"]
        probs = model.predict_last(xl, probs=True)["category"]
        torch.testing.assert_close(probs, torch.softmax(last, -1))
        for b, s in enumerate(seqs):
            alone, _ = model(collate([s])[0])
            n = len(s)
            torch.testing.assert_close(left["category"][b, -n:], alone["category"][0])
            torch.testing.assert_close(right["category"][b, :n], alone["category"][0])
            torch.testing.assert_close(last[b], alone["category"][0, -1])


def test_causal_future_events_never_change_the_past(tiny):
    model, enc = tiny
    events = make_events(10)
    with torch.no_grad():
        full, _ = model(collate([enc.encode(events)])[0])
        prefix, _ = model(collate([enc.encode(events[:6])])[0])
    torch.testing.assert_close(full["category"][0, :6], prefix["category"][0])


# ----------------------------------------------------------------------------- OOV, checkpoints


def test_unseen_items_and_categories_are_scored(tiny):
    model, enc = tiny
    scorer = SequenceScorer(model, enc, device="cpu", num_threads=1, top_k=3)
    hist = [{"item_id": "brand-new", "categories": ["unseen"], "event_type": "view", "ts": 1.0}]
    dist = scorer.score([hist])[0]
    assert len(dist) == 4 and abs(sum(dist.values()) - 1.0) < 1e-6
    p = scorer.predict_proba([hist, []], ["a", "x", "y"])
    assert p.shape == (2, 3) and np.allclose(p.sum(1), 1.0)
    assert p[0, 1] == pytest.approx(p[0, 2])  # x and y share the OOV bucket
    # the copy head's mass on an OOV category of the history goes to it by name
    seen_x = [{**hist[0], "categories": ["x"]}, {**hist[0], "categories": ["a"], "ts": 2.0}]
    q = scorer.predict_proba([seen_x], ["a", "x", "y"])[0]
    assert q[1] > q[2] and q.sum() == pytest.approx(1.0)
    assert "x" in scorer.score([seen_x])[0]


def test_checkpoint_round_trip_reproduces_logits_exactly(tiny, tmp_path):
    model, enc = tiny
    path = tmp_path / "seq.pt"
    version = save_checkpoint(path, model, enc, {"epochs": 1}, {"note": "x"})
    raw = torch.load(path, weights_only=True)  # plain containers only
    assert raw["version"] == version and raw["encoder"]["categories"] == CATS
    ck = load_checkpoint(path, map_location="cpu")
    assert ck.version == version and ck.metadata == {"epochs": 1} and ck.extra == {"note": "x"}
    assert ck.model.config == model.config and ck.encoder.vocab == enc.vocab
    x, _ = collate([enc.encode(make_events(12))])
    with torch.no_grad():
        a, _ = model(x)
        b, _ = ck.model(x)
    assert torch.equal(a["category"], b["category"]) and torch.equal(a["item"], b["item"])
    assert save_checkpoint(tmp_path / "again.pt", ck.model, ck.encoder) == version


def test_scorer_reload_picks_up_a_new_checkpoint(tiny, tmp_path):
    model, enc = tiny
    path = tmp_path / "seq.pt"
    v1 = save_checkpoint(path, model, enc)
    scorer = SequenceScorer.from_checkpoint(path, device="cpu", num_threads=1)
    hist = make_events(5)
    before = scorer.score_array([hist])
    assert scorer.version == v1 and scorer.reload_if_changed() is False
    torch.manual_seed(1)
    other = SequenceModel(model.config)
    v2 = save_checkpoint(path, other, enc)
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))  # coarse mtime clocks
    assert v2 != v1
    assert scorer.reload_if_changed() is True
    assert scorer.version == v2 and scorer.reload_if_changed() is False
    assert scorer.encoder.fingerprint == enc.fingerprint  # same vocabulary: cached ids valid
    assert not np.allclose(before, scorer.score_array([hist]))


def test_scorer_int8_and_empty_history(tiny):
    model, enc = tiny
    fp32 = SequenceScorer(model, enc, device="cpu", num_threads=1, prior=[0, 1, 2, 3, 4, 5, 6])
    int8 = SequenceScorer(model, enc, device="cpu", num_threads=1, quantize=True)
    hists = [make_events(n, seed=n) for n in (3, 20)]
    a, b = fp32.score_array(hists), int8.score_array(hists)
    assert np.allclose(a.sum(1), 1.0) and np.allclose(b, a, atol=0.02)
    assert not np.array_equal(a, b)  # int8 arithmetic: close, not the same

    def quantized(scorer):
        return sum(isinstance(m, QuantizedLinear) for m in scorer._state.model.modules())

    assert quantized(int8) > 0 and quantized(fp32) == 0
    assert np.allclose(fp32.score_array([[]])[0], np.arange(7) / 21)


def test_the_stream_scores_a_stored_record_as_its_live_history(tiny):
    """A user the worker no longer holds live goes to the scorer as its stored bytes."""
    model, enc = tiny
    scorer = SequenceScorer(model, enc, device="cpu", num_threads=1, top_k=3)
    events = make_events(40, seed=3)
    for e in events[::3]:
        e["ts"] += 0.125  # times stored in milliseconds
    record = replay(events, TrackerConfig(history=16))
    live = [h[: HistoryField.MOVED] for h in record.history]
    stored = score_histories(scorer, [encode_record(record)], 2)
    assert stored == score_histories(scorer, [live], 2)
    assert len(stored[0][0]) == 4  # the top 3 categories and _other
    longer = replay(make_events(60, seed=3), TrackerConfig(history=50))
    compressed = stored_record(encode_record(longer))  # as the table holds a long record
    assert compressed[:1] == LZ4_MARK
    as_events = [h[: HistoryField.MOVED] for h in longer.history]
    assert score_histories(scorer, [compressed], 2) == score_histories(scorer, [as_events], 2)


def test_a_scorer_process_reads_a_live_record_from_its_bytes(tiny):
    """A live user goes to a scorer process as its record's bytes (read there, not in the
    worker), kept for the commit window's write; they score as its history's tuples."""
    from stream.app import create_app
    from stream.scoring import StreamScorer
    from stream.settings import Settings

    model, enc = tiny
    sequence = SequenceScorer(model, enc, device="cpu", num_threads=1, top_k=3)
    _, pipeline = create_app(Settings(bootstrap="127.0.0.1:1", app_id="t"))
    scorer = StreamScorer(pipeline, sequence)
    record = pipeline.record("u")
    for e in make_events(30, seed=4):
        record.apply({**e, "user_id": "u"})
    pipeline.records.changed("u")
    blob = scorer.history("u", as_bytes=True)
    tuples = scorer.history("u", as_bytes=False)
    assert blob == encode_record(record) and len(tuples) == 30
    assert score_histories(sequence, [blob], 2) == score_histories(sequence, [tuples], 2)
    assert pipeline.records.encoded["u"] is blob  # the window's write reuses them
    record.apply({**make_events(1, seed=5)[0], "user_id": "u", "ts": 2e9})
    pipeline.records.changed("u")
    assert "u" not in pipeline.records.encoded and scorer.history("u", True) != blob
    assert scorer.history("nobody", as_bytes=True) is None


def test_the_stream_keeps_the_estimates_of_the_most_recently_scored_users_only(tiny, monkeypatch):
    """The worker's sequence estimates are bounded: the least recently scored go first."""
    import asyncio

    from stream import scoring
    from stream.app import create_app
    from stream.settings import Settings

    model, enc = tiny
    monkeypatch.setattr(scoring, "SEQUENCE_USERS", 3)
    _, pipeline = create_app(Settings(bootstrap="127.0.0.1:1", app_id="t", scorer_batch=2))
    scorer = scoring.StreamScorer(pipeline, SequenceScorer(model, enc, device="cpu"))
    for u, e in enumerate(make_events(5, seed=1)):
        pipeline.record(f"u{u}").apply({**e, "user_id": f"u{u}"})

    async def score(users):
        for uid in users:
            scorer.mark(uid)
        while scorer.dirty:
            await scorer.score_pending(asyncio.get_running_loop())

    asyncio.run(score(["u0", "u1", "u2", "u3"]))
    assert list(pipeline.sequence) == ["u1", "u2", "u3"]
    asyncio.run(score(["u1", "u4"]))  # u1 scored again: now the most recent but one
    assert list(pipeline.sequence) == ["u3", "u1", "u4"]


def test_the_scorer_process_runs_below_the_worker_and_scores_the_same(tiny, tmp_path):
    """INTEREST_SCORER_NICE: the scorer's process takes the CPU that ingestion leaves: in the
    idle scheduling class by default, or at a niceness below the worker's."""
    model, enc = tiny
    path = tmp_path / "seq.pt"
    save_checkpoint(path, model, enc)
    options = dict(path=path, device="cpu", num_threads=1, top_k=3)
    hists = [
        [(e["item_id"], e["categories"], e["event_type"], e["ts"]) for e in make_events(n, seed=n)]
        for n in (3, 20)
    ]
    here = score_histories(SequenceScorer.from_checkpoint(**options), hists, 2)
    default = Settings(bootstrap=None).scorer_nice
    for nice, policy, niceness in ((default, os.SCHED_IDLE, 0), (7, os.SCHED_OTHER, 7)):
        proc = ScorerProcess(options, nice=nice)
        try:
            assert proc.executor.submit(os.sched_getscheduler, 0).result() == policy
            assert proc.executor.submit(os.nice, 0).result() == os.nice(0) + niceness
            assert proc.score_histories(hists, 2) == here
        finally:
            proc.executor.shutdown()


def test_evaluation_predictor_follows_the_harness_protocol(tiny, tmp_path):
    model, enc = tiny
    path = tmp_path / "seq.pt"
    save_checkpoint(path, model, enc)
    pred = evaluation_predictor(path, ["a", "b", "c", "new"])
    assert isinstance(pred, SequencePredictor) and pred.name == "transformer"
    events = make_events(30)
    for e in events:
        p = pred.predict({"user_id": e["user_id"], "ts": e["ts"]})
        assert p.shape == (4,) and abs(p.sum() - 1.0) < 1e-9
        pred.learn(e)
    kept = enc.encode(pred.history("u"))  # L kept, each with the gap before it
    whole = enc.encode(events)  # the last L encoded from the whole history at once
    assert len(pred.history("u")) == 16
    assert kept.gaps == whole.gaps and len(set(whole.gaps)) > 1
    assert kept.items == whole.items and kept.categories == whole.categories


def test_item_scorer_hook_ranks_items_by_the_item_head(tiny, tmp_path):
    model, enc = tiny
    path = tmp_path / "seq.pt"
    save_checkpoint(path, model, enc)
    items = [str(i) for i in range(300)]  # 300 ids in 128 buckets: some collide
    score = item_scorer(path, items)
    out = score([make_events(10), []])
    assert out.shape == (2, 300) and np.isfinite(out).all()
    assert "a category checkpoint" in score.note and "hashed item buckets" in score.note
    b = [item_bucket(i, 128) for i in items]
    j, k = next((j, k) for j in range(300) for k in range(j + 1, 300) if b[j] == b[k])
    assert out[0, j] == out[0, k]  # same bucket, same score
    x, _ = collate([enc.encode(make_events(10))])
    with torch.no_grad():
        full = model(x)[0]["item"][0, -1]
    np.testing.assert_allclose(out[0], full[b].numpy(), rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------- training


def test_tiny_model_overfits_a_50_event_sequence():
    torch.manual_seed(0)
    cycle = ["a", "b", "c", "d", "e", "c", "a"]
    events = [
        {
            "item_id": f"i{i % 11}",
            "categories": [cycle[i % 7]],
            "event_type": "view",
            "ts": 60.0 * i,
        }
        for i in range(50)
    ]
    config = SequenceConfig.tiny(n_item_buckets=64, max_len=50).with_vocab(len(CATS) + 2)
    enc = SequenceEncoder(CATS, 64, 50)
    model = SequenceModel(config)
    x, y = collate([enc.encode(events, targets=True)])
    opt = torch.optim.AdamW(model.parameters(), lr=3e-2)
    for _ in range(150):
        _, loss = model(x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        logits, _ = model(x)
        final = model.losses(x, y)
    assert final["category"].item() < 0.05
    pred = logits["category"][0, :-1].argmax(-1)
    target = y["categories"][0, :-1, 0]
    assert (pred == target).float().mean().item() == 1.0


def test_training_split_never_uses_the_last_20_percent():
    events = []
    for u in range(4):
        events += make_events(50, seed=u, user=f"u{u}")
    events.sort(key=lambda e: e["ts"])
    n_fit, n_train = split_points(len(events))
    assert (n_fit, n_train) == (144, 160)
    enc = SequenceEncoder(CATS, 128, 16)
    tr, va = build_samples(events, enc, n_fit, n_train, stride=8)
    n_targets_tr = sum(1 for s in tr for t in s.target_items if t)
    n_targets_va = sum(1 for s in va for t in s.target_items if t)
    assert n_targets_tr == n_fit - 4 and n_targets_va == n_train - n_fit  # each target once


def test_train_writes_a_loadable_checkpoint(tmp_path):
    events = []
    for u in range(6):
        events += make_events(40, seed=u, user=f"u{u}")
    events.sort(key=lambda e: e["ts"])
    out = tmp_path / "m.pt"
    res = train(
        events,
        SequenceConfig.tiny(max_len=16, n_item_buckets=128),
        TrainConfig(epochs=2, batch_size=8, seed=3),
        device="cpu",
        out=out,
        progress=False,
    )
    assert res.metadata["epochs"] == 2 and res.metadata["best_val_loss"] > 0
    ck = load_checkpoint(out)
    assert ck.version == res.version and ck.metadata["n_train_events"] == 173
    assert len(ck.extra["category_prior"]) == ck.encoder.n_categories
    res2 = train(
        events,
        SequenceConfig.tiny(max_len=16, n_item_buckets=128),
        TrainConfig(epochs=2, batch_size=8, seed=3, fit_fusion=False),
        device="cpu",
        progress=False,
    )
    x, _ = collate([ck.encoder.encode(events[:10])])
    with torch.no_grad():  # seeded: the same weights again
        assert torch.equal(ck.model(x)[0]["category"], res2.model(x)[0]["category"])


def _tail_nll(predictor, events, n_fit: int, n_train: int) -> float:
    """Mean over the tail events of the mean -log p of their categories, as the fit reports."""
    total = 0.0
    for i, e in enumerate(events[:n_train]):
        if i >= n_fit:
            p = predictor.predict(e)[predictor.vocab.encode(e["categories"])]
            total -= float(np.log(np.maximum(p, 1e-9)).mean())
        predictor.learn(e)
    return total / (n_train - n_fit)


def test_fusion_is_fitted_on_the_online_and_the_collaborative_rows(tmp_path):
    """Both fits score their base as ``evaluate`` does, a category new in the tail included
    (a prior over the categories seen so far gave it probability 0)."""
    events = []
    for u in range(6):
        events += make_events(40, seed=u, user=f"u{u}")
    events.sort(key=lambda e: e["ts"])
    n_fit, n_train = split_points(len(events))
    events[n_fit + 1] = {**events[n_fit + 1], "categories": ["z"]}  # first seen in the tail
    res = train(
        events,
        SequenceConfig.tiny(max_len=16, n_item_buckets=128),
        TrainConfig(epochs=1, batch_size=8, seed=3),
        device="cpu",
        out=tmp_path / "m.pt",
        progress=False,
    )
    extra = load_checkpoint(tmp_path / "m.pt").extra
    assert res.metadata["fusion"] == "fitted"
    vocab = Vocabulary(c for e in events[:n_train] for c in e["categories"])
    bases = {
        "online": OnlinePredictor(vocab),
        "collaborative": CollaborativePredictor(vocab, split=n_fit),
    }
    for base in BASES:
        fit = FusionParams.from_dict(extra[checkpoint_key(base)])
        assert fit.n_events == n_train - n_fit
        expected = _tail_nll(bases[base], events, n_fit, n_train)
        assert fit.nll_online == pytest.approx(expected, rel=1e-9)


# ----------------------------------------------------------------------------- CLI


def _cli(argv: list[str]) -> int:
    from stream.cli import train as cli_train
    from stream.cli.common import add_command

    parser = argparse.ArgumentParser(prog="interest-tracker")
    add_command(parser.add_subparsers(dest="command", required=True), cli_train)
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_train_choices_are_the_models_own():
    """The CLI repeats them so that it parses without importing torch; they must agree."""
    from models.sequence.config import CONFIG_NAMES, OBJECTIVES
    from models.sequence.device import PRECISIONS
    from models.sequence.train import EXCLUDE_SEEN, SPLITS
    from stream.cli import train as cli_train

    assert cli_train.CONFIGS == CONFIG_NAMES and cli_train.OBJECTIVES == OBJECTIVES
    assert cli_train.SPLITS == SPLITS and cli_train.PRECISIONS == PRECISIONS
    assert cli_train.EXCLUDE_SEEN == EXCLUDE_SEEN


def test_cli_train_missing_file_is_one_line_error(tmp_path, capsys):
    rc = _cli(["train", "--data", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "m.pt")])
    err = capsys.readouterr().err
    assert rc != 0 and err.count("\n") == 1 and "not found" in err


def test_cli_train_runs_tiny(tmp_path, capsys):
    data = tmp_path / "ev.csv"
    lines = ["user_id,item_id,category,event_type,ts"]
    for u in range(3):
        for e in make_events(30, seed=u, user=f"u{u}"):
            lines.append(
                f"{e['user_id']},{e['item_id']},{'|'.join(e['categories'])},view,{e['ts']}"
            )
    data.write_text("\n".join(lines) + "\n")
    out = tmp_path / "m.pt"
    argv = ["train", "--data", str(data), "--out", str(out), "--config", "tiny", "--epochs", "1"]
    rc = _cli([*argv, "--max-len", "8", "--device", "cpu", "--quiet"])
    assert rc == 0 and out.is_file()
    line = capsys.readouterr().out
    # the category recipe trains in fp32 on any CPU: bf16 gained it nothing (docs/RESULTS.md)
    assert "wrote" in line and "category objective" in line and ", fp32," in line
    assert _cli([*argv, "--epochs", "0"]) == 2

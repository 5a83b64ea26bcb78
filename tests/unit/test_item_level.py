"""Item level: item vocabulary, leave-last-out split, full-ranking metrics, item → category
mapping, and training the item objective on a planted next-item rule."""

from __future__ import annotations

import argparse
import json
import random
import time
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from models.evaluation.item_eval import (
    ItemSplit,
    evaluate_items,
    hr_ndcg,
    mrr,
    popularity_ranks,
    rank_dense,
    transition_row,
    transition_scorer,
)
from models.sequence import (
    OOV,
    PAD,
    SequenceConfig,
    SequenceEncoder,
    SequenceModel,
    collate,
    load_checkpoint,
    save_checkpoint,
)
from models.sequence.losses import dense_cross_entropy, softmax_cross_entropy
from models.sequence.samples import build_leave_last_out_samples, leave_last_out
from models.sequence.scorer import SequenceScorer, item_category_probs
from models.sequence.train import TrainConfig, decide_exclude_seen, train
from models.sequence.validation import evaluate_loss, ranking_batches, validation_ranking

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def one_thread():
    """Tests share 2 cores with other work: one torch thread avoids spin-wait stalls."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def ev(user, item, cats, ts):
    return {"user_id": user, "item_id": item, "categories": cats, "event_type": "rate", "ts": ts}


def planted(n_users=120, n_items=40, length=16, seed=0):
    """Every user walks the permutation ``next = (7 * item + 3) % n_items`` from a random start;
    a user's last items are spread over the whole catalog, so popularity cannot find them."""
    rng = random.Random(seed)
    events, t = [], 0.0
    for u in range(n_users):
        item = rng.randrange(n_items)
        for _ in range(length):
            t += 1.0
            events.append(ev(f"u{u}", f"i{item}", [f"c{item % 4}"], t))
            item = (7 * item + 3) % n_items
    events.sort(key=lambda e: e["ts"])
    return events


# ----------------------------------------------------------------------------- vocabulary


def test_item_vocabulary_keeps_frequent_items_and_shares_one_oov_row(tmp_path):
    events = [ev("u", i, ["a"], float(k)) for k, i in enumerate(["x", "y", "x", "z", "x", "y"])]
    cfg = SequenceConfig.tiny(max_len=8)
    enc = SequenceEncoder.from_events(events, cfg, min_item_count=2)
    assert enc.items == ["x", "y"] and enc.n_item_buckets == 4  # pad, OOV, x, y
    assert [enc.item_index(i) for i in ("x", "y", "z", "never")] == [2, 3, OOV, OOV]
    assert enc.encode(events).items == [2, 3, 2, OOV, 2, 3]
    model = SequenceModel(replace(cfg, n_categories=enc.n_categories, n_item_buckets=4))
    path = tmp_path / "m.pt"
    save_checkpoint(path, model, enc)
    ck = load_checkpoint(path)
    assert ck.encoder.items == ["x", "y"] and ck.encoder.item_index("z") == OOV
    assert ck.encoder.fingerprint == enc.fingerprint
    assert ck.model.item_emb.weight.shape[0] == 4
    # the item table is tied to the output layer: one matrix for both
    x, _ = collate([enc.encode(events)])
    with torch.no_grad():
        logits = ck.model.eval()(x)[0]["item"][0, -1]
        h = ck.model._trunk(x)[0][0, -1]
    want = h @ ck.model.item_emb.weight.T + ck.model.item_bias
    torch.testing.assert_close(logits[1:], want[1:])


def test_catalog_above_the_limit_falls_back_to_hashing():
    events = [ev("u", i, ["a"], float(i)) for i in range(20)]
    cfg = SequenceConfig.tiny(max_len=8, n_item_buckets=64)
    enc = SequenceEncoder.from_events(events, cfg, min_item_count=1, max_item_vocab=10)
    assert enc.hashed_items and enc.n_item_buckets == 64
    assert 1 <= enc.item_index("3") < 64


def test_old_checkpoint_format_is_refused_with_a_clear_error(tmp_path):
    enc = SequenceEncoder(["a"], 16, 4)
    model = SequenceModel(SequenceConfig.tiny(n_item_buckets=16, max_len=4).with_vocab(3))
    path = tmp_path / "old.pt"
    save_checkpoint(path, model, enc)
    ck = torch.load(path, weights_only=True)
    ck["format_version"] = 1
    torch.save(ck, path)
    with pytest.raises(ValueError, match="older than this code.*retrain"):
        load_checkpoint(path)


def test_chunked_full_softmax_matches_plain_cross_entropy_and_its_gradients():
    torch.manual_seed(0)
    h = torch.randn(37, 8, requires_grad=True)
    w = torch.randn(11, 8, requires_grad=True)
    b = torch.randn(11, requires_grad=True)
    t = torch.randint(0, 11, (37,))
    chunked = softmax_cross_entropy(h, w, b, t, chunk=5)
    plain = F.cross_entropy(h @ w.T + b, t)
    torch.testing.assert_close(chunked, plain)
    for g1, g2 in zip(
        torch.autograd.grad(chunked, (h, w, b)), torch.autograd.grad(plain, (h, w, b)), strict=True
    ):
        torch.testing.assert_close(g1, g2)


def test_full_softmax_keeps_its_loss_exact_where_the_target_is_far_below_the_rest():
    torch.manual_seed(0)
    h = torch.randn(12, 4, requires_grad=True)
    w = (torch.randn(9, 4) * 60.0).requires_grad_()  # logit gaps in the hundreds
    b = torch.zeros(9, requires_grad=True)
    t = (h @ w.T).argmin(1).detach()  # each row's least likely class: softmax ~ 0 there
    chunked = softmax_cross_entropy(h, w, b, t, chunk=5)
    plain = F.cross_entropy(h @ w.T + b, t)
    assert plain.item() > 100.0
    torch.testing.assert_close(chunked, plain)
    for g1, g2 in zip(
        torch.autograd.grad(chunked, (h, w, b)), torch.autograd.grad(plain, (h, w, b)), strict=True
    ):
        torch.testing.assert_close(g1, g2)


def test_full_softmax_without_gradients_gives_the_same_loss_and_refuses_backward():
    torch.manual_seed(0)
    h, w, b = torch.randn(9, 4), torch.randn(6, 4), torch.randn(6)
    t = torch.randint(0, 6, (9,))
    with torch.no_grad():
        loss = softmax_cross_entropy(h, w, b, t, chunk=4)
    torch.testing.assert_close(loss, F.cross_entropy(h @ w.T + b, t))
    h.requires_grad_(True)
    with torch.no_grad():
        frozen = softmax_cross_entropy(h, w, b, t, chunk=4)
    assert not frozen.requires_grad  # no graph, so no silent backward through stale gradients


def test_full_softmax_leaves_out_the_items_seen_before_each_position_but_never_the_target():
    torch.manual_seed(0)
    items = torch.tensor([[2, 3, 4, 2, 5, 0], [6, 6, 1, 3, 0, 0]])  # 1 = OOV, never left out
    seen = torch.where(items <= 1, -1, items - 1)  # columns: item rows without padding
    row = torch.tensor([0, 0, 0, 0, 1, 1, 1])
    pos = torch.tensor([0, 1, 3, 4, 0, 1, 3])
    t = torch.tensor([2, 3, 3, 6, 5, 0, 2])  # row 2's target (item 4) was seen: kept
    h = torch.randn(7, 4, requires_grad=True)
    w = torch.randn(7, 4, requires_grad=True)
    b = torch.randn(7, requires_grad=True)
    left_out = torch.zeros(7, 7, dtype=torch.bool)
    for i, (r, p) in enumerate(zip(row.tolist(), pos.tolist(), strict=True)):
        for item in items[r, : p + 1].tolist():
            left_out[i, item - 1] = item > 1 and item - 1 != t[i]
    assert left_out[3].nonzero()[:, 0].tolist() == [1, 2, 3, 4]  # items 2-5 before position 4
    assert not left_out[5, 0]  # OOV row
    plain = F.cross_entropy((h @ w.T + b).masked_fill(left_out, float("-inf")), t)
    chunked = softmax_cross_entropy(h, w, b, t, chunk=3, excluded=(seen, row, pos))
    # the accelerator's path, on all 6 columns of the windows (the last beyond every position)
    dense = dense_cross_entropy(h, w, b, t, excluded=(seen, row, pos))
    for loss in (chunked, dense):
        torch.testing.assert_close(loss, plain)
        for g1, g2 in zip(
            torch.autograd.grad(loss, (h, w, b)),
            torch.autograd.grad(plain, (h, w, b), retain_graph=True),
            strict=True,
        ):
            torch.testing.assert_close(g1, g2)


def test_the_accelerators_loss_traces_as_one_graph():
    """What ``train --compile`` compiles on CUDA: no value read back to the host, so no graph
    break (reading the last position there broke it and recompiled as positions changed)."""
    import torch._dynamo as dynamo

    seen = torch.tensor([[3, -1, 2, 4], [0, 1, -1, -1]])
    row, pos, t = torch.tensor([0, 0, 1]), torch.tensor([1, 3, 0]), torch.tensor([2, 1, 4])
    h, w, b = torch.randn(3, 4), torch.randn(6, 4), torch.randn(6)
    found = dynamo.explain(dense_cross_entropy)(h, w, b, t, (seen, row, pos))
    assert (found.graph_count, found.graph_break_count) == (1, 0), found.break_reasons


def test_the_item_recipes_training_step_traces_as_one_graph_and_computes_the_eager_loss():
    """What ``train --compile`` compiles on CUDA: the item objective's forward with its full
    softmax and the seen items left out, batches with padding and without, no graph break
    (``fullgraph``), the loss eager mode computes."""
    events, count = [], {}
    for e in planted(n_users=30, n_items=40, length=12):  # users u0-u9 keep 6 events
        count[e["user_id"]] = count.get(e["user_id"], 0) + 1
        if count[e["user_id"]] <= (6 if int(e["user_id"][1:]) < 10 else 12):
            events.append(e)
    cfg = SequenceConfig.for_objective("tiny", "item", max_len=8)
    enc = SequenceEncoder.from_events(events, cfg, min_item_count=1)
    cfg = replace(cfg, n_categories=enc.n_categories, n_item_buckets=enc.n_item_buckets)
    torch.manual_seed(0)
    model = SequenceModel(replace(cfg, exclude_seen=True)).eval()  # no dropout: equal numbers
    samples = build_leave_last_out_samples(events, enc, stride=8)[0]
    full = [s for s in samples if len(s) == 8][:6]
    short = [s for s in samples if len(s) < 8][:2]
    assert len(full) == 6 and short
    traced = torch.compile(model, backend="eager", fullgraph=True, dynamic=True)
    for batch in (full, full[:3] + short):
        x, y = collate(batch)
        assert bool(x["mask"].all()) == (batch is full)
        torch.testing.assert_close(traced(x, y)[1], model(x, y)[1])


def test_seen_items_are_left_out_only_where_the_full_softmax_trains_and_repeats_are_rare():
    no_repeats = planted(n_users=30, n_items=40, length=4)  # walks of 4 steps: no repeats
    walks = planted(n_users=30, n_items=4, length=12)  # 4 items: mostly repeats
    cfg = SequenceConfig.for_objective("tiny", "item", max_len=16)
    enc = SequenceEncoder.from_events(no_repeats + walks, cfg, min_item_count=1)

    def samples(events):
        return build_leave_last_out_samples(events, enc, stride=16)[0]

    assert decide_exclude_seen("auto", cfg, samples(no_repeats)) is True
    assert decide_exclude_seen("auto", cfg, samples(walks)) is False
    assert decide_exclude_seen("off", cfg, samples(no_repeats)) is False
    sampled = replace(cfg, item_negatives=64)
    assert decide_exclude_seen("auto", sampled, samples(no_repeats)) is False
    with pytest.raises(ValueError, match="needs the item head trained by the full softmax"):
        decide_exclude_seen("on", sampled, samples(no_repeats))
    with pytest.raises(ValueError, match="exclude_seen must be one of"):
        TrainConfig(exclude_seen="yes")


def test_a_model_that_leaves_seen_items_out_never_predicts_them():
    cfg = replace(SequenceConfig.for_objective("tiny", "item", max_len=8), n_item_buckets=12)
    torch.manual_seed(0)
    model = SequenceModel(replace(cfg, exclude_seen=True).with_vocab(4)).eval()
    x = {
        "items": torch.tensor([[0, 1, 5, 7], [3, 4, 5, 6]]),
        "mask": torch.tensor([[False, True, True, True], [True, True, True, True]]),
        "categories": torch.zeros(2, 4, 1, dtype=torch.long),
        "event_types": torch.zeros(2, 4, dtype=torch.long),
        "gaps": torch.zeros(2, 4, dtype=torch.long),
    }
    logits = model.predict_last(x, ("item",))["item"]
    assert torch.isinf(logits[0, [0, 5, 7]]).all() and torch.isfinite(logits[0, 1])  # OOV kept
    assert torch.isinf(logits[1, [3, 4, 5, 6]]).all()
    assert torch.isfinite(logits[0, [2, 3, 4, 6, 8, 9, 10, 11]]).all()


def test_chunked_full_softmax_under_cpu_bf16_autocast_stays_close_to_fp32():
    """bf16 products, fp32 log-sum-exp and accumulation: loss and gradients within ~1%."""
    torch.manual_seed(0)
    h = (torch.randn(300, 16) * 0.5).requires_grad_()
    w = (torch.randn(50, 16) * 0.5).requires_grad_()
    b = torch.zeros(50, requires_grad=True)
    t = torch.randint(0, 50, (300,))
    plain = F.cross_entropy(h @ w.T + b, t)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = softmax_cross_entropy(h, w, b, t, chunk=64)
    assert low.dtype == torch.float32
    torch.testing.assert_close(low, plain, rtol=1e-2, atol=1e-3)
    for g1, g2 in zip(
        torch.autograd.grad(low, (h, w, b)), torch.autograd.grad(plain, (h, w, b)), strict=True
    ):
        assert g1.dtype == torch.float32
        assert float((g1 - g2).norm() / g2.norm()) < 0.02


def test_attention_dropout_is_its_own_setting_and_old_configs_keep_theirs():
    from models.sequence.model import SequenceModel

    item = SequenceModel(SequenceConfig.for_objective("tiny", "item", dropout=0.2))
    assert item.blocks[0].attn.dropout == 0.0 and item.blocks[0].attn.resid_dropout.p == 0.2
    old = SequenceConfig.from_dict({"dropout": 0.3})  # a checkpoint from before the setting
    assert old.attn_dropout is None
    assert SequenceModel(old.with_vocab(4)).blocks[0].attn.dropout == 0.3


def test_training_precision_is_checked():
    with pytest.raises(ValueError, match="precision must be one of"):
        TrainConfig(precision="fp16")


# ----------------------------------------------------------------------------- split


def test_leave_last_out_never_shows_the_test_item_and_validates_on_the_one_before():
    events = []
    rng = random.Random(1)
    for u in range(6):
        for k in range(rng.randint(1, 30)):  # unique item per event: traceable
            events.append(ev(f"u{u}", f"u{u}-{k}", ["a"], rng.random()))
    events.sort(key=lambda e: e["ts"])
    splits = leave_last_out(events)
    enc = SequenceEncoder.from_events(events, SequenceConfig.tiny(max_len=8), min_item_count=1)
    train_s, val_s = build_leave_last_out_samples(events, enc, stride=4, splits=splits)
    test_items = {enc.item_index(events[t]["item_id"]) for _, _, t in splits.values() if t >= 0}
    val_items = {enc.item_index(events[v]["item_id"]) for _, v, _ in splits.values() if v >= 0}
    train_targets = {t for s in train_s for t in s.target_items}
    seen_train = {i for s in train_s for i in s.items} | train_targets
    assert not seen_train & test_items  # the test item is nowhere in training
    assert not train_targets & val_items  # nor are validation targets trained on
    assert not {i for s in val_s for i in s.items} & (test_items | val_items)
    assert sorted(s.target_items[-1] for s in val_s) == sorted(val_items)
    assert all(not any(s.target_items[:-1]) for s in val_s)  # one target per validation window
    for user, (tr, v, t) in splits.items():
        idx = [i for i, e in enumerate(events) if e["user_id"] == user]
        assert t == (idx[-1] if len(idx) >= 2 else -1)
        assert v == (idx[-2] if len(idx) >= 3 else -1)
        assert tr == idx[: len(idx) - (t >= 0) - (v >= 0)]
    # every training target is used once: positions 1.. of each user's training events
    n_targets = sum(1 for s in train_s for t in s.target_items if t)
    assert n_targets == sum(max(0, len(tr) - 1) for tr, _, _ in splits.values())


def test_one_pass_validation_matches_the_loss_pass_and_ignores_sample_order():
    """The item loss and the ranks of the validation targets come from one forward pass of
    each window's last position: the same loss as the full loss pass, whatever the order."""
    events = planted(n_users=40, length=12)
    cfg = SequenceConfig.for_objective("tiny", "item", max_len=8, n_embd=16)
    enc = SequenceEncoder.from_events(events, cfg, min_item_count=1)
    cfg = replace(cfg, n_item_buckets=enc.n_item_buckets).with_vocab(enc.n_categories)
    _, val_s = build_leave_last_out_samples(events, enc, stride=8)
    cuts = [3, 8, 5, 2] * 10  # windows of several lengths, each ending at its target
    val_s = [s.window(max(0, len(s) - k), len(s)) for s, k in zip(val_s, cuts, strict=True)]
    torch.manual_seed(0)
    model = SequenceModel(cfg)
    cpu = torch.device("cpu")
    batches = ranking_batches(val_s, cpu, batch_size=7)
    one_pass = validation_ranking(model, batches)
    loss_pass = evaluate_loss(model, val_s, cpu, batch_size=5)
    assert one_pass["item"] == pytest.approx(loss_pass["item"], rel=1e-5)
    reordered = validation_ranking(model, ranking_batches(val_s[::-1], cpu, batch_size=3))
    assert reordered == pytest.approx(one_pass, rel=1e-6)
    assert validation_ranking(model, batches) == one_pass  # batches collated once, reused
    assert 0.0 <= one_pass["ndcg@10"] <= one_pass["hr@10"] <= 1.0


# ----------------------------------------------------------------------------- metrics


def test_full_ranking_metrics_match_hand_computed_ranks():
    scores = np.array([[0.9, 0.5, 0.7, 0.1], [0.2, 0.2, 0.2, 0.9], [0.0, 1.0, 0.5, 0.5]])
    targets = np.array([1, 2, 3])
    hist = [np.array([0]), np.array([3]), np.array([])]
    # row 0: item 0 masked, 2 ahead -> rank 1; row 1: 3 masked, 0 and 1 tie ahead by id -> 2;
    # row 2: 1 ahead, 2 ties and sorts first -> 2
    ranks = rank_dense(scores, targets, [h.astype(np.int64) for h in hist])
    assert ranks.tolist() == [1, 2, 2]
    hr, ndcg = hr_ndcg(ranks, k=2)
    assert hr == pytest.approx(1 / 3) and ndcg == pytest.approx((1 / np.log2(3)) / 3)
    assert mrr(ranks) == pytest.approx((1 / 2 + 1 / 3 + 1 / 3) / 3)


def test_transition_row_follows_the_last_item_where_popularity_does_not():
    seqs = {f"u{k}": "pab" for k in range(4)}  # after a comes b (seen once, in h's history)
    seqs |= {f"k{k}": "qxy" for k in range(5)}  # q is popular
    seqs["h"] = "abqr"
    events = [
        ev(u, i, ["c"], float(t))
        for t, (u, s) in enumerate((u, s) for u, s in seqs.items())
        for i in s
    ]
    events = [dict(e, ts=float(n)) for n, e in enumerate(events)]
    split = ItemSplit.build(events)
    u_rows = [r for r, u in enumerate(split.users) if u.startswith("u")]
    b = split.items.index("b")
    assert all(split.targets[r] == b for r in u_rows)
    assert (popularity_ranks(split)[u_rows] > 0).all()  # q (and x) are more popular than b
    row = transition_row(split)
    score = transition_scorer(split)
    ranks = rank_dense(
        score([split.items.index("a")] * len(u_rows)),
        split.targets[u_rows],
        [split.histories[r] for r in u_rows],
    )
    assert (ranks == 0).all()
    assert row.name == "transition" and row.users == len(seqs)
    # k: nothing ever followed x, y (popularity 0) ties with r, which sorts first: rank 4;
    # h: after q comes x, then p by popularity, then r: rank 2
    assert row.mrr == pytest.approx((4 * 1.0 + 5 * (1 / 5) + 1 / 3) / 10)


# ----------------------------------------------------------------------------- item -> category


def test_item_implied_category_distribution_sums_to_one():
    enc = SequenceEncoder(
        ["a", "b", "c"], 0, 8, items=["x", "y", "z"], item_categories=[[2], [2, 3], [OOV]]
    )
    w = enc.item_category_weights().to_dense()
    assert w.shape == (enc.n_item_buckets, enc.n_categories)
    torch.testing.assert_close(w[1:].sum(1), torch.ones(enc.n_item_buckets - 1))
    assert w[PAD].sum() == 0 and w[3].tolist() == [0.0, 0.0, 0.5, 0.5, 0.0]
    logits = torch.randn(5, enc.n_item_buckets)
    logits[:, PAD] = float("-inf")
    p = item_category_probs(logits, enc.item_category_weights())
    torch.testing.assert_close(p.sum(1), torch.ones(5))
    p_items = torch.softmax(logits, -1)
    assert p[0, 2] == pytest.approx(float(p_items[0, 2] + p_items[0, 3] / 2 + p_items[0, 1] / 3))


# ----------------------------------------------------------------------------- training


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_item_objective_learns_a_planted_next_item_rule_popularity_cannot(tmp_path, precision):
    events = planted()
    cfg = SequenceConfig.for_objective("tiny", "item", max_len=16, n_embd=32)
    tc = TrainConfig(
        precision=precision,
        epochs=30,
        batch_size=32,
        lr=1e-2,
        weight_decay=0.0,
        warmup_steps=5,
        patience=30,
        split="leave-last-out",
        seed=0,
    )
    out = tmp_path / "item.pt"
    res = train(events, cfg, tc, device="cpu", out=out, progress=False)
    assert res.metadata["objective"] == "item" and res.metadata["n_items"] == 40
    assert res.metadata["precision"] == precision
    report = evaluate_items(events, "planted", out)
    rows = {r.name: r for r in report.rows}
    assert not any("category checkpoint" in n for n in report.notes)  # trained for items
    assert rows["transformer"].ndcg > 0.8
    assert rows["popularity"].ndcg < 0.2
    # the checkpoint serves categories from its items: each row a distribution
    scorer = SequenceScorer.from_checkpoint(out, device="cpu", num_threads=1)
    probs = scorer.score_array([events[:5], []])
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    # and the top predicted next items: the rule's successor first
    hist = [ev("n", f"i{i}", ["c0"], float(k)) for k, i in enumerate([5, 38, 29])]
    top = scorer.top_items([hist, []], 3)
    assert top[0][0][0] == f"i{(7 * 29 + 3) % 40}" and len(top[0]) == 3 and top[1] == []
    assert top[0][0][1] > top[0][1][1] > 0


def test_joint_objective_mixes_the_item_implied_categories_and_sampled_softmax_trains():
    events = planted(n_users=60, length=12)
    cfg = SequenceConfig.for_objective("tiny", "joint", max_len=12)
    tc = TrainConfig(
        epochs=3, batch_size=16, seed=0, full_softmax_max_items=10, sampled_negatives=16
    )
    res = train(events, cfg, tc, device="cpu", progress=False)
    assert res.model.config.item_negatives == 16  # 40 items > 10: sampled softmax
    assert 0.0 <= res.extra["item_category_mix"] <= 1.0
    first, last = res.metadata["history"][0], res.metadata["history"][-1]
    assert last["val_item"] < first["val_item"]  # the sampled item loss does teach the head
    scorer = SequenceScorer(
        res.model,
        res.encoder,
        device="cpu",
        num_threads=1,
        extra=res.extra,
        prior=res.extra["category_prior"],
    )
    np.testing.assert_allclose(scorer.score_array([events[:6]]).sum(1), 1.0, atol=1e-5)


def test_top_items_setting_defaults_off_and_rejects_negatives():
    from stream.settings import Settings

    assert Settings.from_env({}).top_items == 0
    assert Settings.from_env({"INTEREST_TOP_ITEMS": "5"}).top_items == 5
    with pytest.raises(ValueError, match="INTEREST_TOP_ITEMS"):
        Settings.from_env({"INTEREST_TOP_ITEMS": "-1"})


def _cli(argv: list[str]) -> int:
    from stream.cli import evaluate as cli_evaluate
    from stream.cli import train as cli_train
    from stream.cli.common import add_command

    parser = argparse.ArgumentParser(prog="interest-tracker")
    sub = parser.add_subparsers(dest="command", required=True)
    add_command(sub, cli_train)
    add_command(sub, cli_evaluate)
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_item_recipe_trains_and_evaluates_to_json(tmp_path, capsys):
    from models.data.loaders import write_generic

    data = tmp_path / "planted.csv"
    write_generic(planted(n_users=40, length=10), data)
    ck, js = tmp_path / "ck.pt", tmp_path / "item.json"
    argv = ["train", "--data", str(data), "--objective", "item", "--split", "leave-last-out"]
    argv += ["--out", str(ck), "--config", "tiny", "--epochs", "2", "--max-len", "8"]
    assert _cli([*argv, "--device", "cpu", "--precision", "fp32", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "item objective, leave-last-out split" in out and "fp32" in out
    rc = _cli(
        ["evaluate", "--item-level", "--data", str(data), "--checkpoint", str(ck)]
        + ["--json", str(js), "--no-progress"]
    )
    assert rc == 0
    rows = {r["name"]: r for r in json.loads(js.read_text())["rows"]}
    assert set(rows) == {"popularity", "transition", "transformer"}
    assert all({"hr@10", "ndcg@10", "mrr"} <= set(r) for r in rows.values())
    assert _cli([*argv, "--min-item-count", "0"]) == 2


def test_gpu_check_script_measures_each_stage_and_keeps_figures_of_a_cut_run(tmp_path, capsys):
    """``models.bench.gpu`` (one call on a lent GPU) runs on the CPU too: the quality stage
    trains the item recipe and ranks it beside the baselines; a stage past the deadline is
    reported as skipped, not lost silently."""
    from models.bench import gpu
    from models.data.loaders import write_generic

    data = tmp_path / "planted.csv"
    write_generic(planted(n_users=40, length=10), data)
    out = tmp_path / "gpu"
    argv = ["--data", str(data), "--out", str(out), "--device", "cpu", "--stages", "quality"]
    assert gpu.main([*argv, "--quality-configs", "tiny", "--train-seconds", "20"]) == 0
    result = json.loads((out / "gpu.json").read_text())
    assert result["errors"] == {} and result["environment"]["device"] == "cpu"
    q = result["quality"]
    assert [r["name"] for r in q["rows"]] == ["popularity", "transition", "transformer tiny"]
    assert q["runs"][0]["epochs"] >= 1 and q["runs"][0]["n_parameters"] > 0
    assert (out / "item-tiny.pt").is_file()
    assert "| transformer tiny |" in capsys.readouterr().out
    assert gpu.main([*argv, "--deadline-s", "0"]) == 0
    assert json.loads((out / "gpu.json").read_text())["errors"] == {
        "quality": "skipped: past the deadline"
    }


def test_gpu_check_script_keeps_each_stages_figures_when_another_fails_or_is_cut(
    tmp_path, monkeypatch
):
    """A stage that raises is reported and the next still runs; one that finishes past the
    deadline keeps its figures; the stage after it is skipped, and gpu.json holds all three."""
    from models.bench import gpu

    def broken(*args):
        raise RuntimeError("no kernel image")

    figures = [
        {"config": "small", "mode": "eager", "L": 50, "batch": 256, "model_seq_per_s": 9e4}
        | {"scorer_seq_per_s": 8e4, "scorer_ms": 3.2}
    ]

    def slow_scorer(device, seconds):
        time.sleep(0.6)  # finishes past the 0.3 s deadline
        return figures

    monkeypatch.setattr(gpu, "throughput", broken)
    monkeypatch.setattr(gpu, "scorer", slow_scorer)
    out = tmp_path / "gpu"
    argv = ["--data", "unused.csv", "--out", str(out), "--device", "cpu", "--deadline-s", "0.3"]
    assert gpu.main([*argv, "--stages", "throughput,scorer,quality"]) == 0
    result = json.loads((out / "gpu.json").read_text())
    assert result["errors"] == {
        "throughput": "RuntimeError: no kernel image",
        "quality": "skipped: past the deadline",
    }
    assert result["scorer"] == figures
    assert set(result["stage_seconds"]) == {"throughput", "scorer", "quality"}

"""The sparse logs of ``models.data.sparse``: what a user keeps, in which order."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from models.data.sparse import sparsify

pytestmark = pytest.mark.unit


def _log(users: int = 400, per_user: int = 30) -> list[dict]:
    rng = random.Random(3)
    return [
        {"user_id": f"u{u}", "item_id": f"i{rng.randrange(500)}", "ts": rng.random() * 1e6}
        for u in range(users)
        for _ in range(per_user)
    ]


def test_split_keeps_every_event_once_with_its_user_behind_each_pseudo_user():
    events = _log()
    out = sparsify(events, 1.7, seed=5, mode="split")
    assert Counter((e["item_id"], e["ts"]) for e in out) == Counter(
        (e["item_id"], e["ts"]) for e in events
    )
    owner = {(e["item_id"], e["ts"]): e["user_id"] for e in events}
    assert all(owner[(e["item_id"], e["ts"])] == e["user_id"].split("~")[0] for e in out)
    per_user = Counter(e["user_id"] for e in out)
    assert 1.55 < len(out) / len(per_user) < 1.85  # mean 1 + Poisson(0.7), cut at the ends
    assert [e["ts"] for e in out] == sorted(e["ts"] for e in out)


def test_sample_keeps_one_group_per_user_and_nothing_else():
    events = _log()
    out = sparsify(events, 1.7, seed=5, mode="sample")
    assert {e["user_id"] for e in out} == {e["user_id"] for e in events}
    assert 1.55 < len(out) / 400 < 1.85
    assert {(e["user_id"], e["ts"]) for e in out} <= {(e["user_id"], e["ts"]) for e in events}


def test_sparsify_rejects_what_it_cannot_do():
    with pytest.raises(ValueError, match="mode"):
        sparsify(_log(2, 2), mode="thin")
    with pytest.raises(ValueError, match="at least 1"):
        sparsify(_log(2, 2), mean_events=0.5)

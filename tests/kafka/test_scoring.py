"""The sequence model inside a real worker: fused snapshots and a checkpoint hot swap."""

from __future__ import annotations

import os
import shutil
import time
from collections import defaultdict
from pathlib import Path

import pytest

from models.data.loaders import load_events
from models.sequence import SequenceConfig
from models.sequence.train import TrainConfig, train
from stream.clients import snapshot_consumer
from stream.codec import decode_snapshot
from stream.settings import Settings

pytestmark = pytest.mark.kafka
N_EVENTS = 3000


def _tiny_checkpoint(events: list[dict], path: Path, seed: int) -> str:
    result = train(
        events,
        SequenceConfig.tiny(max_len=20),
        TrainConfig(epochs=1, seed=seed, fit_fusion=False),
        device="cpu",
        out=path,
        progress=False,
    )
    return result.version


def _snapshots_until(settings: Settings, done, timeout: float = 120) -> list[dict]:
    consumer = snapshot_consumer(settings, timeout_s=1.0)
    seen: list[dict] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            for msg in consumer:
                if not msg.key.startswith(b"__"):
                    seen.append(decode_snapshot(msg.value))
            if done(seen):
                break
    finally:
        consumer.close()
    return seen


def test_worker_fuses_the_sequence_model_and_swaps_checkpoints_without_losing_events(
    tmp_path, shared_data, make_settings, make_worker, make_producer
):
    events = load_events(shared_data / "taobao-head" / "UserBehavior.csv", "taobao")[:N_EVENTS]
    version_a = _tiny_checkpoint(events, tmp_path / "a.pt", seed=0)
    version_b = _tiny_checkpoint(events, tmp_path / "b.pt", seed=1)
    assert version_a != version_b
    live = tmp_path / "live.pt"
    shutil.copy(tmp_path / "a.pt", live)

    # A record cache of 16 users and a scorer every 1.5 s, after the 1 s window that evicts
    # them: most users are scored from their stored bytes, read in the scorer's process (the
    # test fails when that reading is broken), the rest from their live records.
    env, settings = make_settings(
        INTEREST_CHECKPOINT=str(live), INTEREST_SCORER_MS="1500", INTEREST_CACHE_USERS="16"
    )
    half = N_EVENTS // 2
    counts: dict[str, int] = defaultdict(int)
    for e in events:
        counts[e["user_id"]] += 1

    with make_worker(env) as worker, make_producer(settings) as producer:
        producer.send_many(events[:half])
        producer.flush()
        first = _snapshots_until(
            settings, lambda seen: any("sequence" in s["sources"] for s in seen)
        )
        fused = [s for s in first if "sequence" in s["sources"]]
        assert fused, f"no fused snapshot:\n{worker.tail()}"
        assert all(s["model"]["sequence"] == version_a for s in fused)
        w = fused[-1]["sources"]
        assert w["online"]["weight"] + w["sequence"]["weight"] == pytest.approx(1.0)
        assert abs(sum(fused[-1]["distribution"].values()) - 1.0) < 1e-9

        tmp = live.with_suffix(".tmp")
        shutil.copy(tmp_path / "b.pt", tmp)
        os.replace(tmp, live)  # an atomic swap, as `interest-tracker train --out` does
        time.sleep(3)  # the scorer looks for a new checkpoint every 2 s
        producer.send_many(events[half:])
        producer.flush()

        def all_final(seen: list[dict]) -> bool:
            latest = {}
            for s in seen:
                latest[s["user_id"]] = max(latest.get(s["user_id"], 0), s["n_events"])
            return latest == dict(counts) and any(s["model"]["sequence"] == version_b for s in seen)

        seen = _snapshots_until(settings, all_final)
    final: dict[str, int] = {}
    for s in seen:
        final[s["user_id"]] = max(final.get(s["user_id"], 0), s["n_events"])
    assert final == dict(counts), "events were lost or counted twice across the swap"
    assert any(s["model"]["sequence"] == version_b for s in seen), "swap not reported"

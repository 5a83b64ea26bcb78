"""Training throughput of the item recipe on a MovieLens-1M-shaped synthetic log.

``python -m models.bench.train [--config small] [--steps 40]`` builds 6,040 users and 3,416
items with ML-1M-like history lengths (about 1M events, log-normal lengths, at least 5 each)
and Zipf-like item popularity, no item twice in a user's history (a rating log, so the recipe
leaves each user's earlier items out of the softmax, as on ML-1M), runs that many optimisation
steps of ``train --objective item --split leave-last-out`` with its default recipe, and
prints tokens/s (wall clock and per CPU-second of this process), the time one epoch takes and
how many epochs fit in a budget.
Only shapes matter here, not what is learned.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.sequence.config import CONFIG_NAMES
from models.sequence.device import pick_device
from models.sequence.encoding import collate
from models.sequence.model import SequenceModel
from models.sequence.samples import shuffled_batches
from models.sequence.train import (
    _compiled_step,
    _param_groups,
    _prepare_data,
    model_config,
    recipe_configs,
    training_precision,
)

ML1M_USERS, ML1M_ITEMS, ML1M_EVENTS = 6040, 3416, 1_000_209


def ml1m_shaped(seed: int = 0, scale: float = 1.0) -> list[dict]:
    """Events of ML-1M's shape: ``scale`` × 6,040 users, 3,416 items, ~``scale`` × 1M events."""
    rng = np.random.default_rng(seed)
    n_users = max(1, int(ML1M_USERS * scale))
    lengths = np.maximum(5, rng.lognormal(mean=4.55, sigma=1.05, size=n_users)).astype(int)
    lengths = np.minimum(lengths, 2314)
    ranks = np.arange(1, ML1M_ITEMS + 1)
    pop = 1.0 / ranks**0.8
    pop /= pop.sum()
    events, ts = [], 0.0
    for u, n in enumerate(lengths.tolist()):
        items = rng.choice(ML1M_ITEMS, size=n, p=pop, replace=False)  # rated once, as ML-1M
        for it in items.tolist():
            ts += 1.0
            events.append(
                {
                    "user_id": str(u),
                    "item_id": str(it),
                    "categories": [f"g{it % 18}"],
                    "event_type": "rate",
                    "ts": ts,
                }
            )
    return events


def prepare(events: list[dict]) -> Any:
    """The item recipe's training windows of ``events`` (the same for every size)."""
    cfg, tc = recipe_configs("small", "item", split="leave-last-out")
    return _prepare_data(events, cfg, tc)


def _precision(device: torch.device, compile: bool, precision: str) -> str:
    amp = "bf16 autocast" if precision == "bf16" else "fp32"
    return amp + (", torch.compile" if compile and device.type == "cuda" else ", eager")


def run(
    config: str = "small",
    steps: int = 40,
    seed: int = 0,
    budget_s: float = 2400.0,
    device: str | None = "cpu",
    events: list[dict] | None = None,
    data: Any = None,
    compile: bool = False,
    warmup: int = 2,
) -> dict:
    """Time ``steps`` training steps of the item recipe; returns the measured figures.

    ``device`` None picks CUDA when present (bf16 autocast there, as on CPUs with native bf16;
    ``compile``: also ``torch.compile``). The first ``warmup`` steps (allocators, compilation)
    are timed apart. ``data``: ``prepare(events)`` done once for several sizes.
    """
    random.seed(seed)
    torch.manual_seed(seed)
    events = ml1m_shaped(seed) if events is None else events
    cfg, tc = recipe_configs(
        config, "item", split="leave-last-out", max_seconds=budget_s, compile=compile
    )
    data = _prepare_data(events, cfg, tc) if data is None else data
    dev = pick_device(device)
    # sized to the vocabularies; seen items left out as `train` decided on these windows
    model_cfg = replace(model_config(cfg, data.encoder, tc), exclude_seen=data.config.exclude_seen)
    model = SequenceModel(model_cfg).to(dev)
    precision = training_precision(dev, tc.precision, cfg.objective)
    step = _compiled_step(model, dev, tc.compile, precision)
    optim = torch.optim.AdamW(
        _param_groups(model, tc.weight_decay), lr=tc.lr, betas=(0.9, 0.98), fused=dev.type == "cuda"
    )
    batches = shuffled_batches(data.train, tc.batch_size, random.Random(seed), tc.length_buckets)
    epoch_tokens = sum(len(s) for s in data.train)
    tokens, wall, cpu, warmup_s = 0, 0.0, 0.0, 0.0
    for i, batch in enumerate(batches[: steps + warmup]):
        t0, c0 = time.perf_counter(), time.process_time()
        x, y = collate(batch, device=dev)
        loss = step(x, y)
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            wall += time.perf_counter() - t0
            cpu += time.process_time() - c0
            tokens += sum(len(s) for s in batch)
        else:
            warmup_s += time.perf_counter() - t0
    tps = tokens / wall
    return {
        "config": config,
        "device": str(dev),
        "precision": _precision(dev, tc.compile, precision),
        "n_parameters": model.num_parameters(),
        "exclude_seen": model_cfg.exclude_seen,
        "events": len(events),
        "train_windows": len(data.train),
        "tokens_per_epoch": epoch_tokens,
        "threads": torch.get_num_threads(),
        "warmup_steps": warmup,
        "warmup_s": warmup_s,
        "tokens_per_s": tps,
        "tokens_per_cpu_s": tokens / cpu,
        "epoch_s": epoch_tokens / tps,
        "epochs_in_budget": math.floor(budget_s / (epoch_tokens / tps)),
        "budget_s": budget_s,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m models.bench.train", description=__doc__.splitlines()[0]
    )
    p.add_argument("--config", default="small", choices=CONFIG_NAMES)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--budget-s", type=float, default=2400.0)
    p.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    p.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = p.parse_args(argv)
    r = run(args.config, args.steps, budget_s=args.budget_s, device=args.device)
    print(
        f"{r['config']} on {r['device']}: {r['n_parameters']:,} parameters, "
        f"{'seen items left out, ' if r['exclude_seen'] else ''}"
        f"{r['events']:,} events, "
        f"{r['tokens_per_epoch']:,} tokens/epoch, {r['threads']} threads: "
        f"{r['tokens_per_s']:,.0f} tokens/s ({r['tokens_per_cpu_s']:,.0f} per CPU-second), "
        f"{r['epoch_s']:.0f} s/epoch, {r['epochs_in_budget']} epochs in {r['budget_s']:.0f} s"
    )
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(r, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

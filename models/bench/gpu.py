"""One accelerator check, sized for a short GPU lease: everything in a single call.

``python -m models.bench.gpu --data ml-small.csv --format generic --out DIR`` runs, in order:

1. ``throughput``: training tokens/s of the item recipe for each ``--configs`` entry on the
   ML-1M-shaped synthetic log of :mod:`models.bench.train` (bf16 autocast on CUDA, as
   ``train`` runs there), and one size again under ``torch.compile``;
2. ``quality``: ``train --objective item --split leave-last-out`` of each
   ``--quality-configs`` entry on ``--data`` in a budget of ``--train-seconds``, then the
   item-level evaluation (full ranking) with the popularity and transition rows beside it;
3. ``scorer``: the stream scorer's sequences/s (:mod:`models.bench.scorer`; bf16 on CUDA) for
   ``small`` and ``base``.

Each stage runs only when ``--deadline-s`` still leaves it room; ``DIR/gpu.json`` is rewritten
after every stage (a cut-off run keeps what it measured) and a Markdown summary is printed
last. On a machine without CUDA the same stages run on the CPU (the test of this script).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import torch

from models.bench import scorer as scorer_bench
from models.bench import train as train_bench
from models.data.loaders import load_events
from models.evaluation.item_eval import (
    ItemRow,
    ItemSplit,
    popularity_row,
    transformer_item_rows,
    transition_row,
)
from models.sequence.config import CONFIG_NAMES, SequenceConfig
from models.sequence.device import pick_device
from models.sequence.train import recipe_configs, train


def environment(device: torch.device) -> dict[str, Any]:
    """What the figures were measured on."""
    env: dict[str, Any] = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": str(device),
        "cpu_threads": torch.get_num_threads(),
    }
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
        env["bf16"] = torch.cuda.is_bf16_supported()
    return env


def throughput(
    configs: list[str], steps: int, device: torch.device, warmup: int = 15
) -> list[dict[str, Any]]:
    """Training tokens/s of each config on one shared ML-1M-shaped log; on CUDA also the
    second config (``base`` by default) under ``torch.compile``. ``warmup`` steps come before
    the timed ones: new lengths load kernels (and recompile) the first time they appear."""
    events = train_bench.ml1m_shaped(0)
    shared = {"device": str(device), "events": events, "data": train_bench.prepare(events)}
    rows = [train_bench.run(c, steps, warmup=warmup, **shared) for c in configs]
    if device.type == "cuda" and configs:
        c = configs[min(1, len(configs) - 1)]
        try:
            rows.append(train_bench.run(c, steps, compile=True, warmup=warmup, **shared))
        except Exception as exc:  # compilation is optional: report it, keep the other rows
            rows.append({"config": c, "compile_error": f"{type(exc).__name__}: {exc}"[:500]})
    return rows


def scorer(device: torch.device, seconds: float) -> list[dict[str, Any]]:
    """Scorer sequences/s of the ``small`` and ``base`` sizes."""
    rows = []
    for name in ("small", "base"):
        for row in scorer_bench.run_benchmark(
            seconds=seconds, device=str(device), config=SequenceConfig.named(name)
        ):
            rows.append({"config": name, **row})
    return rows


def quality(
    data: str,
    fmt: str,
    configs: list[str],
    train_seconds: float,
    device: torch.device,
    out: Path,
    deadline: float,
) -> dict[str, Any]:
    """Item-level table on ``data``: the baselines, then each config trained in the budget."""
    events = sorted(load_events(data, fmt), key=lambda e: e["ts"])
    split = ItemSplit.build(events)
    rows: list[ItemRow] = [popularity_row(split), transition_row(split)]
    runs: list[dict[str, Any]] = []
    notes: list[str] = []
    for name in configs:
        # leave the evaluation a tenth of the training budget, and never start past the end
        left = deadline - time.monotonic()
        budget = min(train_seconds, 0.85 * left)
        if budget < 10:
            notes.append(f"{name}: skipped, {left:.0f} s left")
            continue
        cfg, tc = recipe_configs(name, "item", split="leave-last-out", max_seconds=budget)
        ck = out / f"item-{name}.pt"
        res = train(events, cfg, tc, device=device, out=ck, progress=False, log=print)
        m = res.metadata
        row = transformer_item_rows(split, ck, notes)[0]
        row.name = f"transformer {name}"
        rows.append(row)
        runs.append(
            {
                "config": name,
                "n_parameters": m["n_parameters"],
                "budget_s": budget,
                "seconds": m["seconds"],
                "epochs": m["epochs"],
                "best_epoch": m["best_epoch"],
                "tokens_per_s": m["tokens_per_s"],
            }
        )
    return {
        "data": Path(data).name,
        "events": len(events),
        "users": len(split.targets),
        "items": len(split.items),
        "rows": [r.to_json() for r in rows],
        "runs": runs,
        "notes": notes,
    }


def summary(result: dict[str, Any]) -> str:
    """The figures as Markdown tables."""
    env = result.get("environment", {})
    lines = [f"environment: {json.dumps(env)}", ""]
    if result.get("throughput"):
        lines += [
            "| config | parameters | device | precision | tokens/s | warm-up s | ML-1M epoch s |",
            "|---|---:|---|---|---:|---:|---:|",
        ]
        for r in result["throughput"]:
            if "compile_error" in r:
                lines.append(f"| {r['config']} | torch.compile failed: {r['compile_error']} |")
                continue
            lines.append(
                f"| {r['config']} | {r['n_parameters']:,} | {r['device']} | {r['precision']} "
                f"| {r['tokens_per_s']:,.0f} | {r['warmup_s']:.1f} | {r['epoch_s']:.1f} |"
            )
        lines.append("")
    if result.get("scorer"):
        lines += [
            "| config | mode | L | batch | model seq/s | scorer seq/s | scorer ms |",
            "|---|---|---:|---:|---:|---:|---:|",
        ]
        for r in result["scorer"]:
            lines.append(
                f"| {r['config']} | {r['mode']} | {r['L']} | {r['batch']} "
                f"| {r['model_seq_per_s']:,.0f} | {r['scorer_seq_per_s']:,.0f} "
                f"| {r['scorer_ms']:.2f} |"
            )
        lines.append("")
    q = result.get("quality")
    if q:
        lines += [
            f"{q['data']}: {q['events']:,} events, {q['users']:,} users, {q['items']:,} items",
            "",
            "| row | HR@10 | NDCG@10 | MRR |",
            "|---|---:|---:|---:|",
        ]
        for r in q["rows"]:
            lines.append(
                f"| {r['name']} | {r['hr@10']:.4f} | {r['ndcg@10']:.4f} | {r['mrr']:.4f} |"
            )
        lines += ["", "| config | parameters | budget s | s | epochs | best | tokens/s |"]
        lines.append("|---|---:|---:|---:|---:|---:|---:|")
        for r in q["runs"]:
            lines.append(
                f"| {r['config']} | {r['n_parameters']:,} | {r['budget_s']:.0f} "
                f"| {r['seconds']:.0f} | {r['epochs']} | {r['best_epoch']} "
                f"| {r['tokens_per_s']:,.0f} |"
            )
        lines += [f"note: {n}" for n in q["notes"]]
    if result.get("errors"):
        lines += ["", *(f"error in {k}: {v}" for k, v in result["errors"].items())]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m models.bench.gpu", description=__doc__.splitlines()[0]
    )
    p.add_argument("--data", required=True, help="event file for the quality stage")
    p.add_argument("--format", default="generic", help="its format (default: generic)")
    p.add_argument("--out", required=True, help="folder for gpu.json")
    p.add_argument("--checkpoints", default=None, help="folder for the checkpoints (--out)")
    p.add_argument("--configs", default="small,base,large", help="sizes timed (comma-separated)")
    p.add_argument("--quality-configs", default="base,large", help="sizes trained on --data")
    p.add_argument("--steps", type=int, default=30, help="timed training steps per config")
    p.add_argument("--warmup", type=int, default=15, help="untimed training steps before them")
    p.add_argument("--scorer-seconds", type=float, default=0.5)
    p.add_argument("--train-seconds", type=float, default=90.0, help="budget per config")
    p.add_argument("--deadline-s", type=float, default=420.0, help="stop starting stages after")
    p.add_argument("--device", default=None, help="torch device (default: cuda if present)")
    p.add_argument("--stages", default="throughput,quality,scorer")
    args = p.parse_args(argv)
    configs, quality_configs = args.configs.split(","), args.quality_configs.split(",")
    for c in configs + quality_configs:
        if c not in CONFIG_NAMES:
            p.error(f"unknown config {c!r}")
    unknown = set(args.stages.split(",")) - {"throughput", "quality", "scorer"}
    if unknown:
        p.error(f"unknown stage(s): {', '.join(sorted(unknown))}")
    start = time.monotonic()
    deadline = start + args.deadline_s
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ck_dir = Path(args.checkpoints or args.out)
    ck_dir.mkdir(parents=True, exist_ok=True)
    device = pick_device(args.device)
    result: dict[str, Any] = {"environment": environment(device), "errors": {}}
    stages = {
        "throughput": lambda: throughput(configs, args.steps, device, args.warmup),
        "scorer": lambda: scorer(device, args.scorer_seconds),
        "quality": lambda: quality(
            args.data, args.format, quality_configs, args.train_seconds, device, ck_dir, deadline
        ),
    }
    for name in args.stages.split(","):
        t0 = time.monotonic()
        if t0 > deadline:
            result["errors"][name] = "skipped: past the deadline"
        else:
            try:
                result[name] = stages[name]()
            except Exception as exc:  # a failed stage must not cost the others' figures
                result["errors"][name] = f"{type(exc).__name__}: {exc}"
        result.setdefault("stage_seconds", {})[name] = time.monotonic() - t0
        (out / "gpu.json").write_text(json.dumps(result, indent=2) + "\n")
        print(f"stage {name}: {time.monotonic() - t0:.0f} s", flush=True)
    print(summary(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

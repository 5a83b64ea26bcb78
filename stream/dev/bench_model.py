"""The sequence model's part of ``python -m stream.dev.bench``: the checkpoint its scorer rows
run and the Transformer scorer's own table."""

from __future__ import annotations

from pathlib import Path


def scorer_rows() -> tuple[list[dict], str]:
    """The Transformer scorer table (``models.bench.scorer``): rows and their Markdown."""
    from models.bench import scorer as bench_scorer

    rows = bench_scorer.run_benchmark(seconds=0.5, rounds=3)
    return rows, bench_scorer.markdown(rows)


def write_checkpoint(path: Path) -> Path:
    """An untrained small Transformer checkpoint: the scorer's cost does not need training."""
    import torch

    from models.sequence import SequenceConfig, SequenceEncoder, SequenceModel, save_checkpoint

    torch.manual_seed(0)
    cats = [f"cat-{i}" for i in range(500)]
    cfg = SequenceConfig.small().with_vocab(len(cats) + 2)
    encoder = SequenceEncoder(cats, cfg.n_item_buckets, cfg.max_len)
    save_checkpoint(path, SequenceModel(cfg).eval(), encoder)
    return path

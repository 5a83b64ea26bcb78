"""``interest-tracker plot``: the dashboard's charts as an image file, for reports.

Draw a user's interest (bars, radar, short vs long term, heatmap of recent snapshots) or the
population's (donut, bars, partitions heatmap) from the snapshot topic, read from its beginning
until idle for --timeout seconds.

``plot --user ID --out FILE.png`` draws the user's current distribution (bars and radar), the
short-term vs long-term horizons and a heatmap of the user's recent snapshots (drift marked);
``plot --population --out FILE.png`` draws the population distribution (donut and bars) and a
heatmap of the per-partition distributions. Both read the snapshot topic from its beginning
(a compacted topic keeps each user's latest snapshot, and the older ones not compacted yet)
until it has been idle for ``--timeout`` seconds or ``--max-seconds`` have passed.
matplotlib renders off-screen (Agg); the format follows the file's suffix (png, svg, pdf...).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from models.schema import OTHER, POPULATION_PREFIX
from stream.cli.common import CommandError, check_broker, positive
from stream.settings import Settings

OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
GREY = "#BBBBBB"


def top_entries(dist: Mapping[str, float], k: int) -> list[tuple[str, float]]:
    """The ``k`` most probable categories, then ``_other`` holding the rest (as on the page).

    >>> top_entries({"a": 0.5, "b": 0.2, "c": 0.2, "_other": 0.1}, 2)
    [('a', 0.5), ('b', 0.2), ('_other', 0.30000000000000004)]
    """
    cats = sorted((c for c in dist if c != OTHER), key=lambda c: (-dist[c], c))
    out = [(c, dist[c]) for c in cats[:k]]
    rest = sum(dist[c] for c in cats[k:]) + dist.get(OTHER, 0.0)
    if rest > 1e-6:
        out.append((OTHER, rest))
    return out


def heatmap_matrix(
    history: Sequence[Mapping], rows: int = 12
) -> tuple[list[str], list[list[float]]]:
    """Categories × snapshots: the ``rows`` categories of largest mean mass, then ``_other``.

    >>> labels, m = heatmap_matrix([{"distribution": {"a": 0.75, "_other": 0.25}},
    ...                             {"distribution": {"a": 0.25, "b": 0.5, "_other": 0.25}}])
    >>> labels, m
    (['a', 'b', '_other'], [[0.75, 0.25], [0.0, 0.5], [0.25, 0.25]])
    """
    mean: dict[str, float] = {}
    for snap in history:
        for c, p in (snap.get("distribution") or {}).items():
            if c != OTHER:
                mean[c] = mean.get(c, 0.0) + p / len(history)
    labels = sorted(mean, key=lambda c: (-mean[c], c))[:rows]
    matrix = [[(s.get("distribution") or {}).get(c, 0.0) for s in history] for c in labels]
    other = [
        max(0.0, 1.0 - sum((s.get("distribution") or {}).get(c, 0.0) for c in labels))
        for s in history
    ]
    return [*labels, OTHER], [*matrix, other]


def _name(c: str, width: int = 24) -> str:
    c = "other" if c == OTHER else c
    return c if len(c) <= width else c[: width - 1] + "…"


# -- reading -----------------------------------------------------------------------------------
def collect(
    settings: Settings,
    user: str | None,
    topic: str | None = None,
    idle_s: float = 3.0,
    max_s: float = 60.0,
) -> tuple[list[dict], dict[str, dict]]:
    """(the user's snapshots by version, latest population snapshot per partition key)."""
    from stream.clients import iterate_snapshots

    deadline = time.monotonic() + max_s
    history: dict[int, dict] = {}
    population: dict[str, dict] = {}
    for snap in iterate_snapshots(
        settings, from_beginning=True, timeout_s=idle_s, topic=topic, include_population=True
    ):
        uid = str(snap.get("user_id", ""))
        if uid.startswith(POPULATION_PREFIX):
            if not snap.get("deleted"):
                population[uid[len(POPULATION_PREFIX) :]] = snap
        elif user is not None and uid == user:
            if snap.get("deleted"):
                history.clear()  # the user was forgotten: older snapshots no longer apply
            else:
                history[int(snap.get("version", len(history)))] = snap
        if time.monotonic() > deadline:
            print(f"plot: stopped reading after {max_s:g}s (--max-seconds)", file=sys.stderr)
            break
    return [history[v] for v in sorted(history)], population


# -- drawing -----------------------------------------------------------------------------------
def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise CommandError("plot needs matplotlib: pip install matplotlib") from None
    return plt


def _bars(ax, entries: Sequence[tuple[str, float]], title: str) -> None:
    labels = [_name(c) for c, _ in entries][::-1]
    values = [p for _, p in entries][::-1]
    colours = [GREY if c == OTHER else OKABE_ITO[0] for c, _ in entries][::-1]
    ax.barh(labels, values, color=colours)
    for y, p in enumerate(values):
        ax.text(p, y, f" {100 * p:.1f}%", va="center", fontsize=8, color="#444")
    ax.set_xlim(0, max(values + [1e-9]) * 1.25)
    ax.set_title(title, fontsize=11, loc="left")
    ax.tick_params(labelsize=8)
    ax.spines[["top", "right"]].set_visible(False)


def _radar(ax, entries: Sequence[tuple[str, float]]) -> None:
    import math

    cats = [(c, p) for c, p in entries if c != OTHER]
    ax.set_title("Radar of the top categories", fontsize=11, loc="left", pad=24)
    if len(cats) < 3:
        ax.set_axis_off()
        ax.text(0.5, 0.5, f"a radar needs 3+ categories ({len(cats)})", ha="center", va="center")
        return
    angles = [2 * math.pi * i / len(cats) for i in range(len(cats))]
    values = [p for _, p in cats]
    ax.set_theta_offset(math.pi / 2)
    ax.set_theta_direction(-1)
    ax.plot([*angles, angles[0]], [*values, values[0]], color=OKABE_ITO[0], linewidth=2)
    ax.fill([*angles, angles[0]], [*values, values[0]], color=OKABE_ITO[0], alpha=0.25)
    ax.set_xticks(angles)
    ax.set_xticklabels([_name(c, 14) for c, _ in cats], fontsize=8)
    ax.tick_params(axis="y", labelsize=7)


def _horizons(ax, short: Mapping[str, float], long_: Mapping[str, float]) -> None:
    cats = sorted(
        {c for c in (*short, *long_) if c != OTHER},
        key=lambda c: -(short.get(c, 0.0) + long_.get(c, 0.0)),
    )[:8][::-1]
    ys = range(len(cats))
    ax.barh([y + 0.2 for y in ys], [short.get(c, 0.0) for c in cats], 0.4, color=OKABE_ITO[1])
    ax.barh([y - 0.2 for y in ys], [long_.get(c, 0.0) for c in cats], 0.4, color=OKABE_ITO[0])
    ax.set_yticks(list(ys), [_name(c) for c in cats], fontsize=8)
    ax.legend(["short-term", "long-term"], fontsize=8, loc="lower right", frameon=False)
    ax.set_title("Short-term vs long-term", fontsize=11, loc="left")
    ax.tick_params(labelsize=8)
    ax.spines[["top", "right"]].set_visible(False)


def _heatmap(
    ax, fig, labels: list[str], matrix: list[list[float]], columns: list[str], vmax: float = 1.0
) -> Any:
    image = ax.imshow(matrix, aspect="auto", cmap="Blues", vmin=0.0, vmax=vmax)
    ax.set_yticks(range(len(labels)), [_name(c) for c in labels], fontsize=8)
    step = max(1, len(columns) // 12)
    ax.set_xticks(range(0, len(columns), step), columns[::step], fontsize=8)
    fig.colorbar(image, ax=ax, fraction=0.025, pad=0.01, label="probability")
    return image


def render_user(snapshots: Sequence[Mapping], out: Path, top: int = 10, history: int = 40) -> None:
    """Bars, radar, horizons and the heatmap of ``snapshots`` (one user's, oldest first)."""
    plt = _pyplot()
    latest = snapshots[-1]
    recent = list(snapshots)[-history:]
    entries = top_entries(latest.get("distribution") or {}, top)
    fig = plt.figure(figsize=(15, 10), layout="constrained")
    grid = fig.add_gridspec(2, 3, height_ratios=[1, 1])
    _bars(fig.add_subplot(grid[0, 0]), entries, "Current distribution")
    _radar(fig.add_subplot(grid[0, 1], projection="polar"), entries)
    _horizons(
        fig.add_subplot(grid[0, 2]), latest.get("short_term") or {}, latest.get("long_term") or {}
    )
    ax = fig.add_subplot(grid[1, :])
    labels, matrix = heatmap_matrix(recent)
    _heatmap(ax, fig, labels, matrix, [f"v{s.get('version')}" for s in recent])
    for i, snap in enumerate(recent):
        if snap.get("drift"):
            ax.axvline(i, color=OKABE_ITO[5], linestyle="--", linewidth=1)
            ax.plot(i, -0.5, marker="v", color=OKABE_ITO[5], markersize=9, clip_on=False)
    ax.set_title(
        f"Interest over the last {len(recent)} snapshots (dashed: interest shift)",
        fontsize=11,
        loc="left",
    )
    fig.suptitle(
        f"user {latest.get('user_id')} — version {latest.get('version')}, "
        f"{latest.get('n_events')} events, entropy {latest.get('entropy', 0.0):.2f} nats"
        + (", drift detected" if latest.get("drift") else ""),
        fontsize=13,
    )
    fig.savefig(out, dpi=110)
    plt.close(fig)


def merge_population(partitions: Mapping[str, Mapping]) -> dict[str, float]:
    """Mean of the partitions' published distributions (they carry no mass to weight by).

    >>> merge_population({"p0": {"distribution": {"a": 1.0}},
    ...                   "p1": {"distribution": {"a": 0.5, "b": 0.5}}})
    {'a': 0.75, 'b': 0.25}
    """
    merged: dict[str, float] = {}
    for snap in partitions.values():
        for c, p in (snap.get("distribution") or {}).items():
            merged[c] = merged.get(c, 0.0) + p / len(partitions)
    return merged


def render_population(partitions: Mapping[str, Mapping], out: Path, top: int = 8) -> None:
    """Donut and bars of the merged population, heatmap of partitions × categories."""
    plt = _pyplot()
    merged = merge_population(partitions)
    entries = top_entries(merged, top)
    fig = plt.figure(figsize=(15, 9), layout="constrained")
    grid = fig.add_gridspec(2, 2, height_ratios=[3, 2])
    ax = fig.add_subplot(grid[0, 0])
    colours = [GREY if c == OTHER else OKABE_ITO[i % 8] for i, (c, _) in enumerate(entries)]
    ax.pie(
        [p for _, p in entries],
        colors=colours,
        startangle=90,
        counterclock=False,
        wedgeprops={"width": 0.4, "edgecolor": "white"},
    )
    ax.legend(
        [f"{_name(c)} — {100 * p:.1f}%" for c, p in entries],
        loc="center left",
        bbox_to_anchor=(1.0, 0.5),
        fontsize=8,
        frameon=False,
    )
    ax.set_title("Population interest", fontsize=11, loc="left")
    _bars(fig.add_subplot(grid[0, 1]), top_entries(merged, 15), "Top categories")
    keys = sorted(partitions, key=lambda k: (len(k), k))
    labels, matrix = heatmap_matrix([partitions[k] for k in keys])
    top = max((p for row in matrix[:-1] for p in row), default=0.0)
    ax = fig.add_subplot(grid[1, :])
    _heatmap(ax, fig, labels[:-1], matrix[:-1], keys, max(top, 1e-9))
    ax.set_title("Top categories by partition", fontsize=11, loc="left")
    fig.suptitle(f"population over {len(keys)} partition(s)", fontsize=13)
    fig.savefig(out, dpi=110)
    plt.close(fig)


# -- the command -------------------------------------------------------------------------------
def _check_out(path: str) -> Path:
    out = Path(path)
    if not out.parent.is_dir():
        raise CommandError(f"no such directory: {out.parent}")
    suffix = out.suffix.lower().lstrip(".")
    plt = _pyplot()
    supported = plt.figure().canvas.get_supported_filetypes()
    plt.close("all")
    if suffix not in supported:
        raise CommandError(
            f"--out {path}: unknown image format {suffix!r} (use one of {', '.join(supported)})"
        )
    return out


def run(args: argparse.Namespace) -> int:
    """Draw the chart ``args`` ask for; 0 on success."""
    out = _check_out(args.out)
    settings = Settings.from_env()
    check_broker(settings)
    topic = args.topic or settings.snapshots_topic
    snapshots, population = collect(
        settings, args.user, topic, idle_s=args.timeout, max_s=args.max_seconds
    )
    if args.population:
        if not population:
            raise CommandError(f"no population snapshot in {topic} (workers publish every 5 s)")
        render_population(population, out, top=min(args.top, 8))
        print(f"wrote {out}: population of {len(population)} partition(s)")
    else:
        if not snapshots:
            raise CommandError(f"no snapshot of user {args.user!r} in {topic}")
        render_user(snapshots, out, top=args.top, history=args.history)
        print(f"wrote {out}: {len(snapshots)} snapshot(s) of user {args.user}")
    return 0


NAME = "plot"
HELP = "draw a user's or the population's interest charts to an image (matplotlib)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--user", metavar="ID", help="the user to draw")
    which.add_argument("--population", action="store_true", help="draw the population instead")
    p.add_argument("--out", metavar="FILE", required=True, help="image file (.png, .svg, .pdf)")
    p.add_argument(
        "--top", type=positive(int), default=10, help="categories shown before 'other' (10)"
    )
    p.add_argument(
        "--history", type=positive(int), default=40, help="snapshots in the heatmap (40)"
    )
    p.add_argument(
        "--timeout", type=positive(float), default=3.0, help="stop after N s without a message (3)"
    )
    p.add_argument(
        "--max-seconds", type=positive(float), default=60.0, help="stop reading after N s (60)"
    )
    p.add_argument("--topic", help="snapshot topic (default $INTEREST_SNAPSHOTS_TOPIC)")

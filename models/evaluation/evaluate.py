"""The offline replay harness behind ``interest-tracker evaluate`` (DESIGN.md §Evaluation).

Events are replayed in stable time order. The first ``floor(0.8 n)`` are warm-up (learned
only); every later event is predicted from the state built on all earlier events, scored, and
then learned. A row is one :class:`~models.evaluation.baselines.Predictor` replayed on its own; its
``predict`` sees only ``{"user_id", "ts"}`` of the event it must predict, never its item,
categories or type.

Per row: ``nll``, ``hit@1/5/10`` over all scored events, over warm users' events (the user
has at least 5 earlier events) and over the cold slice (each user's first 5 events),
``kl_future`` = ``KL(q_future ‖ p)`` with ``q_future`` the user's category mix over their
next 20 events (the predicted one included), Steck's
``miscalibration`` ``KL(q_future ‖ 0.99 p + 0.01 q_future)``, and ``seconds`` (wall time of the
whole replay of the row, scoring included).

The ``transformer`` and ``fused`` rows come from ``models.sequence`` / ``models.fusion`` through
:func:`sequence_rows`, imported lazily; without a checkpoint they are left out with a note,
never faked.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from models.evaluation.baselines import (
    DecayedHistogram,
    MarkovOne,
    Popularity,
    Predictor,
    RiverClassifier,
)
from models.evaluation.hooks import sequence_hook
from models.evaluation.predictors import CollaborativePredictor, OnlinePredictor
from models.evaluation.replay import (
    WARM_MIN_EVENTS,
    WARMUP_FRACTION,
    PrefetchedPredictor,
    ReplayContext,
    Row,
    replay,
)
from models.evaluation.report import JsonReport
from models.evaluation.vocabulary import Vocabulary
from models.fusion import checkpoint_key

ROW_ORDER = (
    "popularity",
    "markov-1",
    "user-histogram",
    "river-classifier",
    "online",
    "collaborative",
    "transformer",
    "fused",
)


def baseline_predictors(vocab: Vocabulary) -> list[Predictor]:
    """The four baselines of the table, in row order."""
    return [Popularity(vocab), MarkovOne(vocab), DecayedHistogram(vocab), RiverClassifier(vocab)]


def sequence_rows(
    ctx: ReplayContext,
    checkpoint: str | Path | None,
    notes: list[str],
    progress: bool = False,
    wanted: Iterable[str] = ("transformer", "fused"),
) -> list[Row]:
    """Hook for the ``transformer`` and ``fused`` rows (lazy imports, optional checkpoint).

    The contract, kept small so either side can adapt:

    - ``models.sequence.evaluation_predictor(checkpoint, categories) -> Predictor``: the
      Transformer alone, as a predictor whose vectors follow ``categories`` (= ``ctx.vocab.names``,
      sorted names) and whose ``predict`` gets ``{"user_id", "ts"}`` only. Its predictions
      must depend only on the user's own past events: the harness batches them through its
      ``predict_many(queries) -> [n, C]`` when it has one (:class:`PrefetchedPredictor`).
    - ``models.fusion.evaluation_predictor(sequence, online, categories) -> Predictor``: the
      fused estimate, given a fresh Transformer predictor and a fresh base predictor
      (:func:`fusion_base`).

    A missing checkpoint or hook leaves the rows out, with the reason in ``notes``;
    a checkpoint that does not load raises ``ValueError`` with the reason.
    """
    wanted = set(wanted)
    signature = "evaluation_predictor(checkpoint, categories)"
    make_seq = sequence_hook(
        checkpoint, "evaluation_predictor", signature, "transformer, fused", notes
    )
    if make_seq is None:
        return []
    names = ctx.vocab.names

    def load() -> PrefetchedPredictor:
        try:
            return PrefetchedPredictor(make_seq(checkpoint, names))
        except ValueError:  # load_checkpoint's own reason names the file
            raise
        except Exception as exc:  # a stale or foreign checkpoint: one line, not a traceback
            raise ValueError(f"cannot load checkpoint {checkpoint}: {exc}") from exc

    rows = []
    if "transformer" in wanted:
        seq = load()
        rows.append(_replay_noted(seq, ctx, notes, progress, "transformer", seq.prefetch))
    if "fused" not in wanted:
        return rows
    from models import fusion  # looked up at call time: the hook may be replaced

    make_fused = getattr(fusion, "evaluation_predictor", None)
    if make_fused is None:
        notes.append(
            "fused: omitted (models.fusion has no "
            "evaluation_predictor(sequence, online, categories))"
        )
        return rows
    seq = load()
    fused = make_fused(seq, fusion_base(seq, ctx), names)
    rows.append(_replay_noted(fused, ctx, notes, progress, "fused", seq.prefetch))
    return rows


def fusion_base(seq: Predictor, ctx: ReplayContext) -> OnlinePredictor:
    """The estimate the ``fused`` row fuses the Transformer with: the ``collaborative`` row's
    when the checkpoint has weights fitted for it (as a worker with a collaborative prior
    does), else the ``online`` row's."""
    if checkpoint_key("collaborative") in getattr(seq, "checkpoint_extra", {}):
        return CollaborativePredictor(ctx.vocab, ctx.split)
    return OnlinePredictor(ctx.vocab)


def _replay_noted(
    predictor: Predictor,
    ctx: ReplayContext,
    notes: list[str],
    progress: bool = False,
    name: str | None = None,
    prefetch: Callable[[list[dict]], None] | None = None,
) -> Row:
    """:func:`replay`, under ``name``, passing on the predictor's ``note`` (if any) to ``notes``."""
    row = replay(predictor, ctx, progress, prefetch)
    row.name = name or row.name
    note = getattr(predictor, "note", "")
    if note:
        notes.append(f"{row.name}: {note}")
    return row


@dataclass
class Report(JsonReport):
    """The evaluation of one dataset: rows in table order and notes on what was left out.

    Examples
    --------
    >>> evs = [{"user_id": u, "categories": [c], "event_type": "view", "ts": float(i)}
    ...        for i, (u, c) in enumerate(zip("uvuvuvuvuv", "abababcaba"))]
    >>> rep = evaluate(evs, "toy", rows=["popularity"])
    >>> print(rep.markdown().splitlines()[0])
    **toy**: 10 events, 2 scored (last 20%), 0 from warm users ..., 2 cold (a user's first 5)
    >>> [(r["name"], r["hit@1"], r["nll_warm"]) for r in rep.to_json()["rows"]]
    [('popularity', 0.5, None)]
    """

    dataset: str
    events: int
    rows: list[Row]
    notes: list[str] = field(default_factory=list)
    scored: int = 0

    def to_json(self) -> dict:
        """``{"dataset", "events", "rows": [{"name", *JSON_KEYS}]}``."""
        return {
            "dataset": self.dataset,
            "events": self.events,
            "rows": [r.to_json() for r in self.rows],
        }

    def markdown(self) -> str:
        """The table, with a header line naming the data and the scored events."""
        head = (
            f"**{self.dataset}**: {self.events:,} events, {self.scored:,} scored "
            f"(last {1 - WARMUP_FRACTION:.0%}), {self.rows[0].n_warm if self.rows else 0:,} "
            f"from warm users (>= {WARM_MIN_EVENTS} earlier events), "
            f"{self.rows[0].n_cold if self.rows else 0:,} cold (a user's first {WARM_MIN_EVENTS})"
            "\n\n"
        )
        return head + markdown_table(self.rows)


TABLE_COLUMNS = (
    "nll",
    "hit@1",
    "hit@5",
    "hit@10",
    "nll_warm",
    "hit@1_warm",
    "hit@5_warm",
    "hit@10_warm",
    "nll_cold",
    "hit@1_cold",
    "hit@5_cold",
    "kl_future",
    "miscalibration",
    "seconds",
)


def markdown_table(rows: Sequence[Row]) -> str:
    """Rows as a Markdown table (3 decimals; seconds with 1).

    Examples
    --------
    >>> print(markdown_table([Row("x", {"nll": 1.23456, "seconds": 2.0})]).splitlines()[2])
    | x | 1.235 | - | - | - | - | - | - | - | - | - | - | - | - | 2.0 |
    """
    lines = [
        "| row | " + " | ".join(TABLE_COLUMNS) + " |",
        "|---|" + "---:|" * len(TABLE_COLUMNS),
    ]
    for r in rows:
        cells = []
        for k in TABLE_COLUMNS:
            v = r.values.get(k)
            if v is None or (isinstance(v, float) and math.isnan(v)):
                cells.append("-")
            else:
                cells.append(f"{v:.1f}" if k == "seconds" else f"{v:.3f}")
        lines.append(f"| {r.name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def evaluate(
    events: list[dict],
    dataset: str = "events",
    checkpoint: str | Path | None = None,
    rows: Iterable[str] | None = None,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> Report:
    """Replay ``events`` (already in time order) through every row; a :class:`Report`.

    ``rows`` restricts the evaluation to some row names (all by default).

    Examples
    --------
    >>> evs = [{"user_id": u, "categories": [c], "event_type": "view", "ts": float(i)}
    ...        for i, (u, c) in enumerate(zip("uvuvuvuvuv", "abababcaba"))]
    >>> rep = evaluate(evs, "toy", rows=["popularity", "markov-1"])
    >>> [r.name for r in rep.rows], rep.scored, rep.notes
    (['popularity', 'markov-1'], 2, [])
    """
    if not events:
        raise ValueError("no events to evaluate")
    wanted = set(ROW_ORDER if rows is None else rows)
    unknown = wanted - set(ROW_ORDER)
    if unknown:
        raise ValueError(f"unknown rows: {', '.join(sorted(unknown))}")
    ctx = ReplayContext.build(events)
    if ctx.n_scored == 0:
        raise ValueError("too few events: nothing left after the 80% warm-up")
    notes: list[str] = []
    predictors = [p for p in baseline_predictors(ctx.vocab) if p.name in wanted]
    if "online" in wanted:
        predictors.append(OnlinePredictor(ctx.vocab))
    if "collaborative" in wanted:
        predictors.append(CollaborativePredictor(ctx.vocab, ctx.split))
    out = []
    for predictor in predictors:
        out.append(_replay_noted(predictor, ctx, notes, progress))
        if log is not None:
            log(f"{out[-1].name}: {out[-1].values['seconds']:.1f}s")
    if wanted & {"transformer", "fused"}:
        out.extend(sequence_rows(ctx, checkpoint, notes, progress, wanted))
    return Report(dataset, len(events), out, notes, scored=ctx.n_scored)

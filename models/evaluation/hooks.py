"""How the evaluation harnesses find the sequence model: a hook of ``models.sequence``, looked
up at call time, so that torch is imported only when a checkpoint is given."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path


def sequence_hook(
    checkpoint: str | Path | None, hook: str, signature: str, rows: str, notes: list[str]
) -> Callable | None:
    """``models.sequence.<hook>``; ``None``, with a note on ``rows``, without a checkpoint or
    the hook. A checkpoint path that is not a file raises ``FileNotFoundError``.

    >>> notes = []
    >>> sequence_hook(None, "item_scorer", "item_scorer(checkpoint, items)", "transformer", notes)
    >>> notes
    ['transformer: omitted (no --checkpoint given)']
    """
    if checkpoint is None:
        notes.append(f"{rows}: omitted (no --checkpoint given)")
        return None
    if not Path(checkpoint).is_file():
        raise FileNotFoundError(f"checkpoint not found: {checkpoint}")
    from models import sequence

    make = getattr(sequence, hook, None)
    if make is None:
        notes.append(f"{rows}: omitted (models.sequence has no {signature})")
    return make

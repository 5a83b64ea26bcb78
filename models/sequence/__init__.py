"""The Transformer over a user's last events: config, encoding, model, checkpoints, scoring,
training.

The offline harnesses find the sequence model through two hooks of this package:
``evaluation_predictor(checkpoint, categories)`` (the ``transformer`` row of
``models.evaluation.evaluate``) and ``item_scorer(checkpoint, items)`` (the item-level rows of
``models.evaluation.item_eval``).
"""

from models.sequence.checkpoint import LoadedCheckpoint, load_checkpoint, save_checkpoint
from models.sequence.config import OOV, PAD, SequenceConfig
from models.sequence.encoding import (
    EncodedEvent,
    EncodedSequence,
    SequenceEncoder,
    collate,
    event_type_index,
    item_bucket,
)
from models.sequence.model import SequenceModel
from models.sequence.scorer import (
    SequencePredictor,
    SequenceScorer,
    evaluation_predictor,
    item_scorer,
)

__all__ = [
    "OOV",
    "PAD",
    "EncodedEvent",
    "EncodedSequence",
    "LoadedCheckpoint",
    "SequenceConfig",
    "SequenceEncoder",
    "SequenceModel",
    "SequencePredictor",
    "SequenceScorer",
    "collate",
    "evaluation_predictor",
    "event_type_index",
    "item_bucket",
    "item_scorer",
    "load_checkpoint",
    "save_checkpoint",
]

"""Checkpoints: one ``torch.save`` file of plain containers (loadable with
``weights_only=True``): config, vocabulary, item-hash parameters, weights, metadata, version.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from models.sequence.config import SequenceConfig
from models.sequence.encoding import SequenceEncoder
from models.sequence.model import SequenceModel

CHECKPOINT_FORMAT = "interest-tracker/sequence"
CHECKPOINT_FORMAT_VERSION = 2  # 2: item vocabulary, objectives, side-feature switch


@dataclass
class LoadedCheckpoint:
    """What :func:`load_checkpoint` rebuilds from one file.

    Examples
    --------
    >>> import tempfile, os
    >>> _ = torch.manual_seed(0)
    >>> enc = SequenceEncoder(["a", "b"], n_item_buckets=16, max_len=4)
    >>> model = SequenceModel(SequenceConfig.tiny(n_item_buckets=16, max_len=4).with_vocab(4))
    >>> path = os.path.join(tempfile.mkdtemp(), "seq.pt")
    >>> version = save_checkpoint(path, model, enc, metadata={"epochs": 0})
    >>> ck = load_checkpoint(path)
    >>> ck.version == version, ck.encoder.vocab, ck.metadata
    (True, ['<pad>', '<oov>', 'a', 'b'], {'epochs': 0})
    """

    model: SequenceModel
    encoder: SequenceEncoder
    version: str
    metadata: dict[str, Any]
    extra: dict[str, Any]


def _weights_digest(config: SequenceConfig, state: Mapping[str, Any], sd: Mapping) -> str:
    h = hashlib.blake2b(digest_size=8)
    h.update(repr(sorted(config.to_dict().items())).encode())
    h.update(repr(state).encode())
    for k in sorted(sd):
        h.update(k.encode())
        h.update(sd[k].detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()


def save_checkpoint(
    path: str | Path,
    model: SequenceModel,
    encoder: SequenceEncoder,
    metadata: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> str:
    """Write one checkpoint file atomically (temp file + rename); returns its version string.

    The version is ``seq-`` + a digest of config, vocabulary and weights.
    """
    config = model.config
    if encoder.n_categories != config.n_categories:
        raise ValueError("encoder vocabulary and model config disagree on n_categories")
    sd = {k: v.detach().to("cpu").clone() for k, v in model.state_dict().items()}
    state = encoder.state()
    version = "seq-" + _weights_digest(config, state, sd)
    ckpt = {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_FORMAT_VERSION,
        "version": version,
        "config": config.to_dict(),
        "encoder": state,
        "state_dict": sd,
        "metadata": dict(metadata or {}),
        "extra": dict(extra or {}),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(ckpt, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return version


def load_checkpoint(
    path: str | Path, map_location: torch.device | str | None = "cpu"
) -> LoadedCheckpoint:
    """Rebuild model (eval mode) and encoder from one file alone (``weights_only=True``)."""
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except Exception as exc:  # what torch's loader raises on a file it cannot parse
        kind = type(exc).__name__
        raise ValueError(f"{path}: not a sequence-model checkpoint ({kind})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not a sequence-model checkpoint")
    found = ckpt.get("format_version", 0)
    if found > CHECKPOINT_FORMAT_VERSION:
        raise ValueError(f"{path}: checkpoint format {found} is newer than this code")
    if found < CHECKPOINT_FORMAT_VERSION:
        raise ValueError(
            f"{path}: checkpoint format {found} is older than this code's "
            f"{CHECKPOINT_FORMAT_VERSION} (item vocabulary and objectives): retrain it with "
            "`interest-tracker train`"
        )
    config = SequenceConfig.from_dict(ckpt["config"])
    model = SequenceModel(config)
    model.load_state_dict(ckpt["state_dict"])
    if map_location is not None:
        model.to(map_location)
    model.eval()
    encoder = SequenceEncoder.from_state(ckpt["encoder"])
    return LoadedCheckpoint(
        model, encoder, ckpt["version"], dict(ckpt.get("metadata", {})), dict(ckpt.get("extra", {}))
    )

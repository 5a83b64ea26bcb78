"""Where the sequence model runs and at what precision, decided in one place.

CUDA when present (bf16 autocast), else the CPU in fp32. The caller may name a device; models
never choose one themselves.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import torch


def pick_device(device: torch.device | str | None = None) -> torch.device:
    """The caller's device, else ``cuda`` when available, else ``cpu``.

    >>> pick_device("cpu")
    device(type='cpu')
    """
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def autocast(device: torch.device) -> AbstractContextManager:
    """bf16 autocast on CUDA; on any other device, plain fp32 (a no-op context)."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()

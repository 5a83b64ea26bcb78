"""Where the sequence model runs and at what precision, decided in one place.

CUDA when present, else the CPU. Serving: bf16 autocast on CUDA, fp32 on the CPU. Training
(``precision="auto"``): bf16 autocast on CUDA, and on a CPU whose matrix units do bf16
natively (AVX512-BF16 / AMX, through oneDNN) where the caller's products are large enough to
gain; fp32 elsewhere. The caller may name a device; models never choose one themselves.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import torch

PRECISIONS = ("auto", "fp32", "bf16")


def pick_device(device: torch.device | str | None = None) -> torch.device:
    """The caller's device, else ``cuda`` when available, else ``cpu``.

    >>> pick_device("cpu")
    device(type='cpu')
    """
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def cpu_has_native_bf16() -> bool:
    """Whether oneDNN runs bf16 matrix products on this CPU's own instructions (otherwise
    bf16 on the CPU is emulated and slower than fp32)."""
    try:
        return bool(
            torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
        )
    except (AttributeError, RuntimeError):  # private probe: absent from some builds
        return False


def resolve_precision(device: torch.device, precision: str = "auto", cpu_bf16: bool = True) -> str:
    """``fp32`` or ``bf16``: ``auto`` is bf16 on CUDA, and on a CPU with native bf16 when
    ``cpu_bf16`` (the caller's judgement that its products are large enough to gain).

    >>> resolve_precision(torch.device("cpu"), "fp32")
    'fp32'
    >>> resolve_precision(torch.device("cpu"), "auto", cpu_bf16=False)
    'fp32'
    >>> resolve_precision(torch.device("cpu"), "fp16")
    Traceback (most recent call last):
    ...
    ValueError: precision must be one of auto, fp32, bf16
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision
    if device.type == "cuda" or (device.type == "cpu" and cpu_bf16 and cpu_has_native_bf16()):
        return "bf16"
    return "fp32"


def autocast(device: torch.device, precision: str | None = None) -> AbstractContextManager:
    """bf16 autocast when ``precision`` is ``bf16`` (default: bf16 on CUDA only, as when
    serving), else plain fp32 (a no-op context)."""
    if precision is None:
        precision = "bf16" if device.type == "cuda" else "fp32"
    if precision == "bf16" and device.type in ("cuda", "cpu"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()

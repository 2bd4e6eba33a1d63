"""The precision a run computes in when a config leaves it to the machine (``--precision_policy``).

bf16 autocast (``--trainer.precision bf16-mixed``) makes a 256 px step 1.5x faster on a CPU with
AVX512-BF16 and keeps the distances (docs/lab/quality.md); a CPU without native bf16 emulates
it, slower than fp32. So a config cannot ask for bf16 and be right on every laptop: it asks for
``native_bf16`` instead, and this module turns that into ``bf16-mixed`` where the device computes
bf16 natively and leaves fp32 elsewhere, before the Trainer is built. An explicit
``--trainer.precision`` always wins; the run's saved ``config.yaml`` records what ran.

Plain Python and torch: the CPU's features come from the kernel (``/proc/cpuinfo``'s flags; torch has
no public call for them), a GPU's from ``torch.cuda.is_bf16_supported``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Optional

import torch

PrecisionPolicy = Literal["as_set", "native_bf16"]

# The x86 features that compute bf16 in hardware (oneDNN uses them for autocast's convolutions).
CPU_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> frozenset[str]:
    """The CPU's feature flags as Linux lists them; none where there is no such file (macOS, Windows)."""
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags") and ":" in line:
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def device_type(accelerator: Any) -> str:
    """The kind of device Lightning will run ``--trainer.accelerator`` on, in torch's words."""
    if not isinstance(accelerator, str):  # an Accelerator instance or a class_path: not ours to guess
        return "other"
    name = accelerator.lower()
    if name == "auto":  # Lightning's order for "auto": MPS, then CUDA, then the CPU
        if torch.backends.mps.is_available():
            return "mps"
        return "cuda" if torch.cuda.is_available() else "cpu"
    return {"gpu": "cuda"}.get(name, name)


def native_bf16(device: str, flags: Optional[frozenset[str]] = None) -> Optional[str]:
    """Why ``device`` computes bf16 natively, in a few words; None where it does not (or we cannot tell)."""
    if device == "cuda":
        if torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False):
            return "this GPU computes bf16"
        return None
    if device == "cpu":
        found = sorted(CPU_BF16_FLAGS & (cpu_flags() if flags is None else flags))
        return f"this CPU has {' and '.join(found)}" if found else None
    return None  # MPS and the rest: fp32, as set


def resolve_precision(policy: str, precision: Any, accelerator: Any, flags: Optional[frozenset[str]] = None) -> tuple[Any, Optional[str]]:
    """The precision to build the Trainer with, and the one line that says why (None: nothing to say).

    ``as_set``, or any ``precision`` given: ``precision`` unchanged. ``native_bf16`` with none given:
    ``bf16-mixed`` where the device computes bf16 natively, else None (the Trainer's fp32).
    """
    if policy != "native_bf16" or precision is not None:
        return precision, None
    device = device_type(accelerator)
    reason = native_bf16(device, flags)
    if reason is not None:
        return "bf16-mixed", f"--precision_policy native_bf16: bf16-mixed ({reason})"
    where = {"cpu": "CPU", "cuda": "GPU", "mps": "Apple GPU"}.get(device, "device")
    return None, f"--precision_policy native_bf16: 32 (no native bf16 on this {where})"

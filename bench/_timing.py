"""Timing shared by the benchmarks that compare two implementations of one computation."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import torch

T = TypeVar("T")


def best_time(fn: Callable[[], T], repeat: int, device: torch.device) -> tuple[float, T]:
    """The fastest of ``repeat`` calls of ``fn`` (seconds) and its last result; on CUDA the
    device is synchronised around each call, so queued kernels count in the call's time."""
    best, out = float("inf"), None
    for _ in range(max(1, repeat)):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best, out  # type: ignore[return-value]

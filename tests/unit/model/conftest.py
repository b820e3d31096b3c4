"""Fixtures of the engine's unit tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture
def float64() -> Iterator[None]:
    """Float64 as torch's default dtype for one test (exact comparisons against brute force),
    then whatever it was: the other tests run in the float32 the product uses."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(before)

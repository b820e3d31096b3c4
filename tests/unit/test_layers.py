"""What each layer may import (docs/design.md): the engine stands alone, the web app never
needs the worker."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _imports(package: str) -> dict[str, set[str]]:
    """Top-level package of every import (module-level or inside functions), per file."""
    out: dict[str, set[str]] = {}
    for path in sorted((REPO / package).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
        out[str(path.relative_to(REPO))] = names
    return out


# The command line is the one place that starts everything, workers included.
ENTRY_POINTS = {"app/cli.py"}


@pytest.mark.parametrize(
    ("package", "forbidden"), [("model", {"app", "worker"}), ("app", {"worker"})]
)
def test_layers_import_only_downwards(package: str, forbidden: set[str]) -> None:
    files = _imports(package)
    assert files, f"no Python files under {package}/"
    offending = {
        f: sorted(n & forbidden)
        for f, n in files.items()
        if n & forbidden and f not in ENTRY_POINTS
    }
    assert not offending, f"{package}/ must not import {sorted(forbidden)}: {offending}"


def test_no_file_in_the_code_grows_past_600_lines() -> None:
    long = {
        str(p.relative_to(REPO)): n
        for package in ("app", "model", "worker")
        for p in (REPO / package).rglob("*.py")
        if (n := len(p.read_text().splitlines())) > 600
    }
    assert not long, f"split these by concern (docs/design.md): {long}"

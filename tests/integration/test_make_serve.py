"""The README's first command works from a fresh clone: `make serve` installs, migrates and
answers /healthz; Ctrl-C stops web and worker; a second run reuses the install and is quick."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_until_healthy(clone: Path, port: int, timeout: float, log: Path) -> float:
    """Run `make serve PORT=port`, wait for /healthz, Ctrl-C it; return seconds to healthy."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SYLLABARY_", "VIRTUAL_ENV"))}
    env["PATH"] = ":".join(p for p in env["PATH"].split(":") if ".venv" not in p)
    started = time.monotonic()
    with log.open("ab") as out:
        proc = subprocess.Popen(
            ["make", "serve", f"PORT={port}"],
            cwd=clone,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = started + timeout
            healthy_after = None
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    r = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                    if r.status_code == 200 and r.json()["checks"]["database"] == "ok":
                        healthy_after = time.monotonic() - started
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(1)
            assert healthy_after is not None, log.read_text()[-3000:]
            # The worker started beside the web app registers the job task and says ready.
            while time.monotonic() < deadline and " ready." not in log.read_text():
                time.sleep(0.5)
            assert "syllabary.run_job" in log.read_text(), log.read_text()[-3000:]
            assert _worker_running(proc.pid)
        finally:
            os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                raise AssertionError("make serve did not stop on Ctrl-C") from None
    assert not _group_alive(proc.pid), "a process of `make serve` outlived Ctrl-C"
    return healthy_after


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _worker_running(pgid: int) -> bool:
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ")
            if os.getpgid(int(proc.name)) == pgid and b"app.cli worker" in cmdline:
                return True
        except (OSError, ProcessLookupError):
            continue
    return False


def test_make_serve_from_a_fresh_clone(tmp_path: Path) -> None:
    clone = tmp_path / "syllabary"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True)
    log = tmp_path / "serve.log"
    first = serve_until_healthy(clone, free_port(), timeout=900, log=log)
    assert (clone / "var" / "syllabary.db").exists()
    assert (clone / ".venv" / "bin" / "syllabary").exists()
    second = serve_until_healthy(clone, free_port(), timeout=120, log=log)
    assert second < 60, f"second start took {second:.0f}s (first {first:.0f}s)"

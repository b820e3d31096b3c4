"""Start a real Syllabary server (and optionally a worker) in a temporary var dir for benches."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, *, worker: bool = False, **settings: str) -> None:
        self.tmp = tempfile.TemporaryDirectory(prefix="syllabary-bench-")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "SYLLABARY_VAR_DIR": str(Path(self.tmp.name) / "var"),
            "SYLLABARY_LOG_LEVEL": "WARNING",
            **{f"SYLLABARY_{k.upper()}": v for k, v in settings.items()},
        }
        args = [sys.executable, "-m", "app.cli", "serve", "--port", str(self.port)]
        if not worker:
            args.append("--no-worker")
        self.proc = subprocess.Popen(
            args, cwd=REPO, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        self.close()
        raise RuntimeError("server did not start")

    def rss_mb(self) -> float:
        """Resident memory of the web process (the uvicorn child of `serve`)."""
        total = 0.0
        for pid in [self.proc.pid, *_children(self.proc.pid)]:
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:") and "app.cli worker" not in _cmd(pid):
                        total += int(line.split()[1]) / 1024
            except OSError:
                pass
        return total

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.tmp.cleanup()


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    kids = [int(p) for p in text.split()]
    return kids + [g for k in kids for g in _children(k)]


def _cmd(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""

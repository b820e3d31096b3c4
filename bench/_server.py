"""Start a real Syllabary server (and optionally a worker) in a temporary var dir for benches."""

from __future__ import annotations

import os
import re
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
        self.username = "bench"
        self.password = "bench password, long enough"
        self.token = ""
        self.env = {
            **os.environ,
            "SYLLABARY_VAR_DIR": str(Path(self.tmp.name) / "var"),
            "SYLLABARY_LOG_LEVEL": "WARNING",
            **{f"SYLLABARY_{k.upper()}": v for k, v in settings.items()},
        }
        # An administrator made the documented way (the CLI) before `serve` starts, so serve
        # does not make one with a random password; the bench then works with an API token.
        password_file = Path(self.tmp.name) / "password"
        password_file.write_text(self.password)
        subprocess.run(
            [sys.executable, "-m", "app.cli", "migrate"],
            cwd=REPO, env=self.env, check=True, capture_output=True,
        )  # fmt: skip
        subprocess.run(
            [sys.executable, "-m", "app.cli", "user", "create", self.username, "--admin",
             "--password-file", str(password_file)],
            cwd=REPO, env=self.env, check=True, capture_output=True,
        )  # fmt: skip
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
                    self.token = login_token(self.url, self.username, self.password)
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        self.close()
        raise RuntimeError("server did not start")

    @property
    def headers(self) -> dict[str, str]:
        """Headers that authenticate a bench client (an API token of the bench's admin)."""
        return {"Authorization": f"Bearer {self.token}"}

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


def login_token(url: str, username: str, password: str, name: str = "bench") -> str:
    """Log in like a browser and create an API token (sent with the login's CSRF token)."""
    with httpx.Client(base_url=url, timeout=30, follow_redirects=True) as client:
        r = client.post("/login", data={"username": username, "password": password})
        csrf = re.search(r'<meta name="csrf-token" content="([^"]+)">', r.text)
        if r.status_code != 200 or csrf is None:
            raise RuntimeError(f"could not log in as {username}: {r.status_code} {r.text[:200]}")
        r = client.post("/api/tokens", json={"name": name}, headers={"X-CSRF-Token": csrf[1]})
        r.raise_for_status()
        return str(r.json()["token"])

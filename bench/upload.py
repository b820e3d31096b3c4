"""Upload of a large file through the resumable chunked API: throughput and server memory.

Baseline, in the same process: writing the same bytes straight to a file on the same disk.
    python bench/upload.py [--gib 2]
Bars (issue 4): server memory growth under 200 MB, throughput at least 100 MB/s on loopback.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._server import Server

CHUNK = 8 * 1024 * 1024


def block(i: int) -> bytes:
    # Distinct, cheap-to-make content per chunk (so dedupe cannot short-cut anything).
    return i.to_bytes(8, "little") * (CHUNK // 8)


def disk_baseline(total: int, folder: str) -> float:
    path = Path(folder) / "baseline.bin"
    t0 = time.perf_counter()
    with path.open("wb") as fh:
        for i in range(total // CHUNK):
            fh.write(block(i))
            fh.flush()
            os.fsync(fh.fileno())
    elapsed = time.perf_counter() - t0
    path.unlink()
    return total / elapsed / 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gib", type=float, default=2.0)
    args = parser.parse_args()
    total = int(args.gib * 1024**3) // CHUNK * CHUNK
    server = Server(max_upload_bytes=str(total + 1))
    try:
        base = disk_baseline(total, server.env["SYLLABARY_VAR_DIR"].rsplit("/", 1)[0])
        client = httpx.Client(base_url=server.url, timeout=120, headers=server.headers)
        eid = client.post("/api/experiments", json={"name": "bench"}).json()["id"]
        up = client.post(
            f"/api/experiments/{eid}/uploads", json={"filename": "big.mp4", "size": total}
        ).json()
        rss0 = server.rss_mb()
        peak = [rss0]
        stop = threading.Event()

        def watch() -> None:
            while not stop.wait(0.2):
                peak[0] = max(peak[0], server.rss_mb())

        threading.Thread(target=watch, daemon=True).start()
        digest = hashlib.sha256()
        t0 = time.perf_counter()
        for i in range(total // CHUNK):
            data = block(i)
            digest.update(data)
            start = i * CHUNK
            r = client.put(
                f"/api/uploads/{up['id']}",
                content=data,
                headers={"Content-Range": f"bytes {start}-{start + CHUNK - 1}/{total}"},
            )
            r.raise_for_status()
        elapsed = time.perf_counter() - t0
        stop.set()
        session = client.get(f"/api/sessions/{r.json()['session_id']}").json()
        assert session["sha256"] == digest.hexdigest(), "stored file differs from what was sent"
        mbps = total / elapsed / 1e6
        print(f"upload of {total / 1024**3:.2f} GiB in {CHUNK >> 20} MiB chunks")
        print(f"  throughput through the API: {mbps:8.1f} MB/s   ({elapsed:.1f} s)")
        print(f"  baseline, plain file write: {base:8.1f} MB/s")
        print(f"  ratio API / baseline:       {mbps / base:8.2f}")
        growth = peak[0] - rss0
        print(f"  server RSS: start {rss0:.0f} MB, peak {peak[0]:.0f} MB, growth {growth:.0f} MB")
        print(f"  sha256 verified: {session['sha256'][:16]}...")
    finally:
        server.close()


if __name__ == "__main__":
    with tempfile.TemporaryDirectory():
        main()

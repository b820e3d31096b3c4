"""Many clients browsing while a job runs: errors and latency.

    python bench/load.py [--clients 50] [--seconds 60]
    python bench/load.py --bar [--think 1]      # issue 6: 100 clients, 2 min, uploads running

A real server and worker on the embedded backend; an experiment with two segmented sessions;
then a fit job runs while N clients loop over pages, JSON and CSV downloads. Baseline, in the
same process: the same requests from one client with no job running.
Bar (issue 4): no errors, p95 under 300 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import hashlib
import random
import statistics
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _server import Server

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
CLIPS = [
    DATA / "deepof-overlay" / "testDLC_video_circular_arena.mp4",
    DATA / "dlc-openfield-short" / "m3v1mp4short.mp4",
]


def wait(client: httpx.Client, url: str, ok: callable, timeout: float = 600) -> dict:  # type: ignore[valid-type]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = client.get(url).json()
        if ok(body):
            return body
        time.sleep(1)
    raise RuntimeError(f"timed out waiting on {url}")


def prepare(client: httpx.Client) -> tuple[int, list[int], int]:
    eid = client.post("/api/experiments", json={"name": "load"}).json()["id"]
    sids = []
    for i, clip in enumerate(CLIPS):
        with clip.open("rb") as fh:
            r = client.post(
                f"/api/experiments/{eid}/sessions",
                files={"file": (clip.name, fh)},
                data={"subject": f"m{i}", "cohort": "a" if i % 2 else "b"},
            )
        sids.append(r.json()["id"])
    for sid in sids:
        wait(client, f"/api/sessions/{sid}", lambda s: s["status"] == "ready")
    fit = client.post(f"/api/experiments/{eid}/fit", json={"states": 8, "epochs": 1}).json()
    wait(client, f"/api/jobs/{fit['id']}", lambda j: j["status"] == "succeeded")
    for sid in sids:
        wait(client, f"/api/sessions/{sid}", lambda s: s["status"] == "ready")
    model = client.get(f"/api/experiments/{eid}/models").json()[0]
    return eid, sids, model["id"]


def urls(eid: int, sids: list[int], model_id: int, *, video: bool = False) -> list[str]:
    out = ["/", f"/experiments/{eid}", f"/api/experiments/{eid}/sessions", f"/models/{model_id}"]
    for sid in sids:
        out += [
            f"/sessions/{sid}",
            f"/api/sessions/{sid}/viewer",
            f"/api/sessions/{sid}/ethogram.csv",
            f"/api/sessions/{sid}/bouts.csv",
        ]
        if video:  # a player's range request (answered 206)
            out.append(f"/api/sessions/{sid}/video")
    return out


_MP4_HEADER = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"


async def upload_loop(
    base: str, headers: dict[str, str], eid: int, stop: float, size: int = 3 * 1024 * 1024
) -> tuple[dict[int, str], list[str]]:
    """Resumable uploads of random files, one after another, until ``stop``: returns
    {session id: sha256 of the bytes sent} and the errors met."""
    sent: dict[int, str] = {}
    errors: list[str] = []
    rng = random.Random(6)
    async with httpx.AsyncClient(base_url=base, timeout=120, headers=headers) as client:
        n = 0
        while time.monotonic() < stop:
            n += 1
            # An MP4 header, so the upload passes the container check; the worker's probe then
            # fails on the random body, which is fine here: the files are what is checked.
            data = _MP4_HEADER + rng.randbytes(size - len(_MP4_HEADER))
            try:
                up = await client.post(
                    f"/api/experiments/{eid}/uploads", json={"filename": f"up{n}.mp4", "size": size}
                )
                up.raise_for_status()
                upload = up.json()
                step = upload["chunk_size"]
                for start in range(0, size, step):
                    end = min(size, start + step) - 1
                    r = await client.put(
                        f"/api/uploads/{upload['id']}",
                        content=data[start : end + 1],
                        headers={"Content-Range": f"bytes {start}-{end}/{size}"},
                    )
                    r.raise_for_status()
                sent[r.json()["session_id"]] = hashlib.sha256(data).hexdigest()
            except httpx.HTTPError as exc:
                errors.append(f"upload {n}: {exc!r}")
    return sent, errors


def check_files(server: Server, client: httpx.Client, expected: dict[int, str]) -> list[str]:
    """Every uploaded session's recorded sha256, and the stored original file's bytes, match
    what was sent."""
    problems = []
    originals = Path(server.env["SYLLABARY_VAR_DIR"]) / "storage" / "originals"
    for sid, digest in expected.items():
        session = client.get(f"/api/sessions/{sid}").json()
        if session["sha256"] != digest:
            problems.append(f"session {sid}: recorded sha256 differs from the bytes sent")
        stored = list(originals.glob(f"{digest[:2]}/{digest}*"))
        if len(stored) != 1 or hashlib.sha256(stored[0].read_bytes()).hexdigest() != digest:
            problems.append(f"session {sid}: the stored original is missing or altered")
    return problems


async def run(
    base: str,
    paths: list[str],
    clients: int,
    seconds: float,
    think: float = 0.0,
    headers: dict[str, str] | None = None,
) -> tuple[list[float], int]:
    latencies: list[float] = []
    errors = 0
    kinds: collections.Counter[str] = collections.Counter()
    stop = time.monotonic() + seconds

    async def one(i: int) -> None:
        nonlocal errors
        async with httpx.AsyncClient(base_url=base, timeout=60, headers=headers) as client:
            k = i
            while time.monotonic() < stop:
                path = paths[k % len(paths)]
                k += 1
                t0 = time.perf_counter()
                video = path.endswith("/video")
                extra = {"Range": f"bytes={(k % 2) * 65536}-{(k % 2) * 65536 + 65535}"}
                try:
                    r = await client.get(path, headers=extra if video else None)
                    await r.aread()
                    if r.status_code != (206 if video else 200):
                        errors += 1
                        kinds[f"{r.status_code} {path.rsplit('/', 1)[-1]}"] += 1
                except httpx.HTTPError as exc:
                    errors += 1
                    kinds[f"{type(exc).__name__} {path.rsplit('/', 1)[-1]}"] += 1
                latencies.append(time.perf_counter() - t0)
                if think:
                    await asyncio.sleep(think)

    await asyncio.gather(*(one(i) for i in range(clients)))
    if kinds:
        print(f"  errors by kind ({clients} clients): {dict(kinds.most_common(8))}")
    return latencies, errors


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1] if len(values) > 1 else values[0]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument(
        "--think", type=float, default=0.0, help="seconds each client waits between requests"
    )
    parser.add_argument(
        "--bar",
        action="store_true",
        help="issue 6's bar: 100 authenticated clients for 2 minutes (pages, API, video range "
        "requests, CSV) while uploads run; files sha256-checked afterwards",
    )
    args = parser.parse_args()
    if args.bar:
        return bar(args.think, seconds=args.seconds if args.seconds != 60 else 120.0)
    server = Server(worker=True, clips_per_syllable="1")
    try:
        client = httpx.Client(base_url=server.url, timeout=60, headers=server.headers)
        eid, sids, model_id = prepare(client)
        paths = urls(eid, sids, model_id)
        base_lat, base_err = asyncio.run(
            run(server.url, paths, 1, min(10, args.seconds), headers=server.headers)
        )
        job = client.post(f"/api/experiments/{eid}/fit", json={"states": 8, "epochs": 50}).json()
        time.sleep(2)
        lat, err = asyncio.run(
            run(server.url, paths, args.clients, args.seconds, args.think, server.headers)
        )
        job = client.get(f"/api/jobs/{job['id']}").json()
    finally:
        server.close()
    print(
        f"{args.clients} clients for {args.seconds:.0f} s over {len(paths)} pages/API/CSV URLs, "
        f"{args.think:g} s between a client's requests"
    )
    print(f"  while a fit job was {job['status']} ({job['progress']:.0%})")
    print(f"  requests {len(lat)}, errors {err}, {len(lat) / args.seconds:.0f} req/s")
    print(
        f"  latency p50 {1000 * statistics.median(lat):.0f} ms, p95 {1000 * p95(lat):.0f} ms, "
        f"max {1000 * max(lat):.0f} ms   (bar: no errors, p95 < 300 ms)"
    )
    print(f"  baseline, 1 client, no job: p95 {1000 * p95(base_lat):.0f} ms, errors {base_err}")
    print(f"  ratio p95 loaded / baseline: {p95(lat) / p95(base_lat):.1f}")


def bar(think: float, clients: int = 100, seconds: float = 120.0) -> None:
    server = Server(worker=True, clips_per_syllable="1")
    try:
        client = httpx.Client(base_url=server.url, timeout=60, headers=server.headers)
        eid, sids, model_id = prepare(client)
        paths = urls(eid, sids, model_id, video=True)
        base_lat, base_err = asyncio.run(run(server.url, paths, 1, 10, headers=server.headers))

        async def both() -> tuple[tuple[list[float], int], tuple[dict[int, str], list[str]]]:
            stop = time.monotonic() + seconds
            return await asyncio.gather(
                run(server.url, paths, clients, seconds, think, server.headers),
                upload_loop(server.url, server.headers, eid, stop),
            )

        (lat, err), (uploaded, upload_errors) = asyncio.run(both())
        problems = check_files(server, client, uploaded)
    finally:
        server.close()
    print(
        f"{clients} authenticated clients for {seconds:.0f} s over {len(paths)} URLs (pages, "
        f"API, CSV, video range requests), {think:g} s between a client's requests, "
        "while resumable uploads ran"
    )
    print(f"  requests {len(lat)}, errors {err}, {len(lat) / seconds:.0f} req/s")
    print(
        f"  latency p50 {1000 * statistics.median(lat):.0f} ms, p95 {1000 * p95(lat):.0f} ms, "
        f"max {1000 * max(lat):.0f} ms"
    )
    print(f"  uploads {len(uploaded)}, upload errors {len(upload_errors)}")
    print(f"  files sha256-checked afterwards: {len(uploaded)}, problems {len(problems)}")
    for line in (upload_errors + problems)[:10]:
        print(f"    {line}")
    print(f"  baseline, 1 client, no uploads: p95 {1000 * p95(base_lat):.0f} ms, errors {base_err}")
    print(f"  ratio p95 loaded / baseline: {p95(lat) / p95(base_lat):.1f}")
    ok = err == 0 and not upload_errors and not problems
    print(f"  bar (no errors, every file intact): {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()

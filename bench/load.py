"""Many clients browsing while a job runs: errors and latency.

    python bench/load.py [--clients 50] [--seconds 60]

A real server and worker on the embedded backend; an experiment with two segmented sessions;
then a fit job runs while N clients loop over pages, JSON and CSV downloads. Baseline, in the
same process: the same requests from one client with no job running.
Bar (issue 4): no errors, p95 under 300 ms.
"""

from __future__ import annotations

import argparse
import asyncio
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


def urls(eid: int, sids: list[int], model_id: int) -> list[str]:
    out = ["/", f"/experiments/{eid}", f"/api/experiments/{eid}/sessions", f"/models/{model_id}"]
    for sid in sids:
        out += [
            f"/sessions/{sid}",
            f"/api/sessions/{sid}/viewer",
            f"/api/sessions/{sid}/ethogram.csv",
            f"/api/sessions/{sid}/bouts.csv",
        ]
    return out


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
    stop = time.monotonic() + seconds

    async def one(i: int) -> None:
        nonlocal errors
        async with httpx.AsyncClient(base_url=base, timeout=30, headers=headers) as client:
            k = i
            while time.monotonic() < stop:
                path = paths[k % len(paths)]
                k += 1
                t0 = time.perf_counter()
                try:
                    r = await client.get(path)
                    await r.aread()
                    if r.status_code != 200:
                        errors += 1
                except httpx.HTTPError:
                    errors += 1
                latencies.append(time.perf_counter() - t0)
                if think:
                    await asyncio.sleep(think)

    await asyncio.gather(*(one(i) for i in range(clients)))
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
    args = parser.parse_args()
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


if __name__ == "__main__":
    main()

"""Benchmark: preprocessing time against merely decoding the same file.

Decoding is the physical floor of the segment pipeline (issue 3 allows the whole pipeline 2x
that), so preprocessing must add as little as possible. Both are timed in this process,
alternately, and the best of ``--repeat`` runs is kept, because the 2-core machine is shared;
process CPU time is printed too, as it moves less than wall time when other work competes.

    .venv/bin/python bench/preprocess.py [VIDEO] [--repeat 2]

With the default video (the tracktor clip) it also prints the centroid agreement with the
reference track ``mouse_video_tracked.csv``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from model.preprocess import preprocess_video
from model.video import iter_frames

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
DEFAULT = DATA / "tracktor-mouse" / "mouse_video.mp4"


def decode_only(path: Path) -> int:
    """Decode every frame with no pixel conversion at all (PyAV, threaded like iter_frames)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        return sum(1 for _ in container.decode(stream))


def decode_luma(path: Path) -> int:
    """Decode and read each frame's luma plane, as preprocessing does."""
    return sum(1 for _ in iter_frames(path, luma=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video", nargs="?", default=str(DEFAULT))
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    path = Path(args.video)

    best = {"decode": np.inf, "decode+luma": np.inf, "preprocess": np.inf}
    cpu = dict(best)
    result = None
    for _ in range(args.repeat):
        for name, fn in (
            ("decode", decode_only),
            ("decode+luma", decode_luma),
            ("preprocess", preprocess_video),
        ):
            t0, c0 = time.perf_counter(), time.process_time()
            out = fn(path)
            best[name] = min(best[name], time.perf_counter() - t0)
            cpu[name] = min(cpu[name], time.process_time() - c0)
            if name == "preprocess":
                result = out
    assert result is not None
    n = result.n_frames
    print(f"video: {path.name}, {n} frames")
    for name, seconds in best.items():
        print(
            f"{name:>12}: {seconds:7.2f} s wall ({n / seconds:5.0f} frames/s), "
            f"{cpu[name]:6.2f} s CPU"
        )
    print(f"ratio preprocess / decode, wall: {best['preprocess'] / best['decode']:.2f}")
    # CPU time is steadier than wall time when other processes share the two cores.
    print(f"ratio preprocess / decode, CPU:  {cpu['preprocess'] / cpu['decode']:.2f}")
    print(f"summary: {result.summary()}")

    ref_path = path.with_name(path.stem + "_tracked.csv")
    if ref_path.exists():
        ref = np.loadtxt(ref_path, delimiter=",", skiprows=1)
        m = min(len(ref), n)
        err = np.hypot(result.scalars["x"][:m] - ref[:m, 2], result.scalars["y"][:m] - ref[:m, 3])
        print(
            f"centroid vs {ref_path.name}: median {np.median(err):.2f} px, "
            f"within 5 px {100 * np.mean(err <= 5):.2f}%, "
            f"within 3 px {100 * np.mean(err <= 3):.2f}%"
        )


if __name__ == "__main__":
    main()

"""Gaussian chain smoothing: the sequential Kalman recursion against cyclic reduction.

    python bench/kalman_scan.py [--dim 14] [--windows 32] [--lengths 64,1024,8192] [--repeat 3]

Times :func:`model.kalman.kalman_smoother` (T sequential steps) and
:func:`model.kalman_parallel.kalman_smoother` (2 log₂ T rounds of batched D×D work) on the
CPU, and on CUDA when a GPU is present, in float64 as the fit runs them: the smoother alone
and the smoother with the backward pass of a loss of all its outputs (what a training step
pays). Prints seconds, the ratio parallel / sequential (the baseline, same process and
inputs) per device, and the largest difference of the smoothed means. ``--dim`` is the
latent state's dimension (10 pose latents + 4 kinematics by default in the fit).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import best_time

from model import kalman, kalman_parallel


def _problem(b: int, t: int, d: int, device: torch.device) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(t)

    def spd(*shape: int) -> torch.Tensor:
        a = torch.randn(*shape, generator=g, dtype=torch.float64)
        return a @ a.transpose(-1, -2) / shape[-1] + 0.5 * torch.eye(shape[-1], dtype=a.dtype)

    f = 0.5 * torch.randn(b, t - 1, d, d, generator=g, dtype=torch.float64)
    qi = spd(b, t - 1, d, d)
    args = [
        spd(b, d, d),
        torch.randn(b, d, generator=g, dtype=torch.float64),
        f.transpose(-1, -2) @ qi @ f + 0.1 * spd(b, t - 1, d, d),
        -f.transpose(-1, -2) @ qi,
        qi,
        torch.randn(b, t - 1, d, generator=g, dtype=torch.float64),
        torch.randn(b, t - 1, d, generator=g, dtype=torch.float64),
        torch.rand(b, t, d, generator=g, dtype=torch.float64) + 0.1,
        torch.randn(b, t, d, generator=g, dtype=torch.float64),
    ]
    return [a.to(device) for a in args]


def _with_gradient(smoother: Callable[..., kalman.KalmanResult], args: list[torch.Tensor]):  # type: ignore[no-untyped-def]
    leaves = [a.detach().requires_grad_(True) for a in args]
    res = smoother(*leaves)
    (res.log_z.sum() + res.mean.square().sum() + res.cov.sum() + res.cross.sum()).backward()
    return res


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dim", type=int, default=14)
    parser.add_argument("--windows", type=int, default=32)
    parser.add_argument("--lengths", default="64,1024,8192")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    print(
        f"D = {args.dim}, {args.windows} windows, float64, torch threads {torch.get_num_threads()}"
    )
    print(
        f"{'device':6s} {'T':>6s} {'pass':9s} {'sequential s':>13s} {'parallel s':>11s} "
        f"{'ratio':>7s} {'max |Δmean|':>11s}"
    )
    for device in devices:
        for t in [int(v) for v in args.lengths.split(",")]:
            problem = _problem(args.windows, t, args.dim, device)
            for name in ("smooth", "+ grad"):
                times, outs = [], []
                for smoother in (kalman.kalman_smoother, kalman_parallel.kalman_smoother):
                    if name == "smooth":
                        with torch.no_grad():
                            s, out = best_time(
                                lambda f=smoother, p=problem: f(*p), args.repeat, device
                            )
                    else:
                        s, out = best_time(
                            lambda f=smoother, p=problem: _with_gradient(f, p), args.repeat, device
                        )
                    times.append(s)
                    outs.append(out)
                diff = (outs[0].mean - outs[1].mean).abs().max().item()  # type: ignore[attr-defined]
                print(
                    f"{device.type:6s} {t:6d} {name:9s} {times[0]:13.4f} {times[1]:11.4f} "
                    f"{times[1] / times[0]:7.2f} {diff:11.1e}",
                    flush=True,
                )


if __name__ == "__main__":
    main()

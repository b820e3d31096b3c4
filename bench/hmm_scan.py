"""HMM message passing: sequential recursion against parallel-in-time scans, same inputs.

    python bench/hmm_scan.py [--states 40] [--windows 32] [--lengths 64,1024,8192] [--repeat 3]

Times :func:`model.hmm.forward_backward` (T sequential steps) and
:func:`model.hmm_parallel.forward_backward` (O(log T) rounds of K×K log-semiring products) on
the CPU, and on CUDA when a GPU is present, in float64 as the fit runs them; prints seconds,
the ratio parallel / sequential per device, and the largest difference of the marginals. The
fit uses the scans on an accelerator only (``model.svae.hmm_passes``): on a CPU they do K times
the work.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import best_time

from model import hmm, hmm_parallel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--states", type=int, default=40)
    parser.add_argument("--windows", type=int, default=32)
    parser.add_argument("--lengths", default="64,1024,8192")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    k = args.states
    print(
        f"K = {k} states, {args.windows} windows, float64, torch threads {torch.get_num_threads()}"
    )
    print(
        f"{'device':6s} {'T':>6s} {'sequential s':>13s} {'parallel s':>11s} {'ratio':>7s} "
        f"{'max |Δγ|':>9s}"
    )
    for device in devices:
        for t in [int(v) for v in args.lengths.split(",")]:
            g = torch.Generator().manual_seed(t)
            log_pi0 = (torch.randn(k, generator=g, dtype=torch.float64) - 1).to(device)
            log_trans = (
                torch.randn(k, k, generator=g, dtype=torch.float64)
                - 2
                + 3 * torch.eye(k, dtype=torch.float64)
            ).to(device)
            log_lik = (4 * torch.randn(args.windows, t, k, generator=g, dtype=torch.float64)).to(
                device
            )
            with torch.no_grad():
                inputs = (log_pi0, log_trans, log_lik)
                seq_s, seq = best_time(
                    lambda a=inputs: hmm.forward_backward(*a), args.repeat, device
                )
                par_s, par = best_time(
                    lambda a=inputs: hmm_parallel.forward_backward(*a), args.repeat, device
                )
            diff = (seq.gamma - par.gamma).abs().max().item()  # type: ignore[union-attr]
            print(
                f"{device.type:6s} {t:6d} {seq_s:13.4f} {par_s:11.4f} {par_s / seq_s:7.2f} "
                f"{diff:9.1e}"
            )


if __name__ == "__main__":
    main()

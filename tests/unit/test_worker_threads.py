"""A worker gives its numerical libraries the cores it is given, not every core of the host."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from app.core.config import Settings
from worker.threads import worker_threads


@pytest.mark.parametrize(
    ("threads", "per_host", "cores", "expected"),
    [
        (0, 1, 2, 2),  # one worker: every core it may use
        (0, 2, 2, 1),  # two workers on two cores: one each, never four threads on two cores
        (0, 4, 2, 1),  # more workers than cores: still one thread each
        (0, 3, 16, 5),
        (3, 1, 16, 3),  # set explicitly: taken as it is
    ],
)
def test_thread_count(threads: int, per_host: int, cores: int, expected: int) -> None:
    settings = Settings(worker_threads=threads, workers_per_host=per_host)
    assert worker_threads(settings, cores=cores) == expected


def test_a_worker_process_runs_torch_and_opencv_on_its_threads() -> None:
    code = (
        "from worker.threads import limit_threads; limit_threads(1); "
        "import os, cv2, torch; "
        "print(torch.get_num_threads(), cv2.getNumThreads(), os.environ['OMP_NUM_THREADS'])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))),
    )  # fmt: skip
    assert out.stdout.split() == ["1", "1", "1"], out.stderr

"""Smoke tests of the local SLURM test cluster: batch jobs, accounting, fake GPU, memory limit."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slurm


TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL"}


def sacct_state(job_id: str, timeout: float = 60) -> str:
    """The job's State in sacct once it is terminal (slurmdbd records job ends asynchronously)."""
    state = ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = subprocess.run(
            ["sacct", "-j", job_id, "-X", "-n", "-P", "-o", "State"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        state = result.stdout.strip()
        if state.split(" ")[0] in TERMINAL:
            break
        time.sleep(0.5)
    return state


def submit(tmp_path: Path, *args: str, wrap: str, wait: bool = False) -> tuple[int, str, str]:
    """Submit a job and let it finish; return (sbatch exit status, job id, job output).

    With wait=False the job end is detected by polling sacct, which is faster than
    `sbatch --wait` (that polls with a backoff of 2 s, then 8 s).
    """
    out = tmp_path / "job-%j.out"
    cmd = ["sbatch", "--parsable", f"--output={out}", *args, "--wrap", wrap]
    if wait:
        cmd.insert(1, "--wait")
    result = subprocess.run(
        cmd, capture_output=True, text=True, timeout=120, cwd=tmp_path, check=False
    )
    job_id = result.stdout.strip().split(";")[0]
    assert job_id.isdigit(), f"sbatch gave no job id: {result.stdout!r} {result.stderr!r}"
    if not wait:
        sacct_state(job_id)
    log = tmp_path / f"job-{job_id}.out"
    return result.returncode, job_id, log.read_text() if log.exists() else ""


def test_batch_job_completes(slurm_cluster, tmp_path):
    rc, job_id, output = submit(tmp_path, wrap="hostname; echo done", wait=True)
    assert rc == 0, output
    assert "done" in output
    assert sacct_state(job_id) == "COMPLETED"


def test_gpu_job_sees_fake_gpu(slurm_cluster, tmp_path):
    _, job_id, output = submit(tmp_path, "--gres=gpu:1", wrap='echo "CVD=$CUDA_VISIBLE_DEVICES"')
    assert sacct_state(job_id) == "COMPLETED", output
    assert "CVD=0" in output.splitlines()


def test_job_over_its_memory_request_is_killed(slurm_cluster, tmp_path):
    hog = "x = bytearray(300 << 20); x[::4096] = b'1' * len(x[::4096]); import time; time.sleep(10)"
    _, job_id, output = submit(tmp_path, "--mem=20M", wrap=f'{sys.executable} -c "{hog}"')
    # jobacct_gather/linux with OverMemoryKill (no cgroups): FAILED, not OUT_OF_MEMORY.
    assert sacct_state(job_id) == "FAILED", output
    assert "exceeded memory limit" in output

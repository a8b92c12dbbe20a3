"""Smoke tests of the local SLURM test cluster: batch jobs, accounting, fake GPU, memory limit."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slurm


def sbatch_wait(tmp_path: Path, *args: str, wrap: str) -> tuple[int, str, str]:
    """Submit a job, wait for it, return (sbatch exit status, job id, job output)."""
    out = tmp_path / "job-%j.out"
    result = subprocess.run(
        ["sbatch", "--parsable", "--wait", f"--output={out}", *args, "--wrap", wrap],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        check=False,
    )
    job_id = result.stdout.strip().split(";")[0]
    assert job_id.isdigit(), f"sbatch gave no job id: {result.stdout!r} {result.stderr!r}"
    log = tmp_path / f"job-{job_id}.out"
    return result.returncode, job_id, log.read_text() if log.exists() else ""


def sacct_state(job_id: str, expected: str, timeout: float = 15) -> str:
    """The job's State in sacct, polled briefly: slurmdbd records job ends asynchronously."""
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
        if state == expected:
            break
        time.sleep(0.5)
    return state


def test_batch_job_completes(slurm_cluster, tmp_path):
    rc, job_id, output = sbatch_wait(tmp_path, wrap="hostname; echo done")
    assert rc == 0, output
    assert "done" in output
    assert sacct_state(job_id, "COMPLETED") == "COMPLETED"


def test_gpu_job_sees_fake_gpu(slurm_cluster, tmp_path):
    rc, job_id, output = sbatch_wait(
        tmp_path, "--gres=gpu:1", wrap='echo "CVD=$CUDA_VISIBLE_DEVICES"'
    )
    assert rc == 0, output
    assert "CVD=0" in output.splitlines()
    assert sacct_state(job_id, "COMPLETED") == "COMPLETED"


def test_job_over_its_memory_request_is_killed(slurm_cluster, tmp_path):
    hog = "x = bytearray(300 << 20); x[::4096] = b'1' * len(x[::4096]); import time; time.sleep(10)"
    rc, job_id, output = sbatch_wait(tmp_path, "--mem=20M", wrap=f'{sys.executable} -c "{hog}"')
    assert rc != 0, output
    assert "exceeded memory limit" in output
    assert sacct_state(job_id, "FAILED") == "FAILED"

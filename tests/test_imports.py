"""Imports of results made elsewhere: lm-eval 0.3-era files, tasks renamed between harness
versions, token counts from a table, and models that have no source because nothing of them runs.
"""

from __future__ import annotations

import copy
import json
import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from thinkcost.aggregate import ResultsFileError, read_lm_eval_score, table_token_counts
from thinkcost.config import ConfigError, expand_grid, validate_config
from thinkcost.figures.cost import pareto_cost_column

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "config" / "schema.yaml"
SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile")]


def results_0_3(arc: float, algebra: float) -> dict:
    """A results file in lm-eval 0.3's shape (as Pythia's and many suites' published evals are):
    metrics without filters, `versions`, and a `config` with a model_args string."""
    return {
        "results": {
            "arc_challenge": {
                "acc": arc,
                "acc_stderr": 0.0127,
                "acc_norm": arc + 0.03,
                "acc_norm_stderr": 0.0132,
            },
            "hendrycksTest-abstract_algebra": {
                "acc": algebra,
                "acc_stderr": 0.0416,
                "acc_norm": algebra,
                "acc_norm_stderr": 0.0416,
            },
        },
        "versions": {"arc_challenge": 0, "hendrycksTest-abstract_algebra": 1},
        "config": {
            "model": "hf-causal",
            "model_args": "pretrained=EleutherAI/pythia-160m",
            "num_fewshot": 0,
            "batch_size": 16,
            "limit": None,
        },
    }


def write_json(path: Path, payload: dict) -> Path:
    path.write_text(json.dumps(payload))
    return path


def test_a_0_3_file_reads_acc_none_as_its_acc(tmp_path):
    path = write_json(tmp_path / "old.json", results_0_3(0.25, 0.22))
    assert read_lm_eval_score(path, "arc_challenge", "acc,none") == {
        "score": 0.25,
        "stderr": 0.0127,
        "n": None,
    }
    norm = read_lm_eval_score(path, "arc_challenge", "acc_norm,none")
    assert (norm["score"], norm["stderr"]) == (0.28, 0.0132)
    renamed = read_lm_eval_score(path, "hendrycksTest-abstract_algebra", "acc,none")
    assert (renamed["score"], renamed["stderr"]) == (0.22, 0.0416)


def test_a_filtered_metric_has_no_0_3_counterpart(tmp_path):
    path = write_json(
        tmp_path / "old.json", {"results": {"gsm8k": {"acc": 0.02, "acc_stderr": 0.004}}}
    )
    with pytest.raises(ResultsFileError, match=r"no metric 'exact_match,flexible-extract'"):
        read_lm_eval_score(path, "gsm8k", "exact_match,flexible-extract")


def test_a_0_4_file_is_never_read_as_a_0_3_file(tmp_path):
    # 0.4 files have "acc,none"; a bare "acc" there would be something else.
    path = write_json(
        tmp_path / "new.json", {"results": {"arc_challenge": {"acc": 0.9, "acc_norm,none": 0.3}}}
    )
    with pytest.raises(ResultsFileError, match=r"no metric 'acc,none'"):
        read_lm_eval_score(path, "arc_challenge", "acc,none")


def test_token_counts_come_from_a_table_row_per_task(tmp_path):
    table = tmp_path / "lengths.csv"
    table.write_text(
        "model,task,reg_words,cot_words,prompt\n"
        "m1,arc_challenge,12.5,120.0,80\n"
        "m1, hellaswag,40.0,90.0,60\n"
        "m2,arc_challenge,3.0,30.0,70\n"
    )
    spec = {"table": str(table), "where": {"model": "m1"}, "task_column": "task"}
    assert table_token_counts(spec | {"generated_tokens": "cot_words"}, "arc_challenge") == (
        pytest.approx(float("nan"), nan_ok=True),
        120.0,
    )
    with_prompt = spec | {"generated_tokens": "reg_words", "prompt_tokens": "prompt"}
    assert table_token_counts(with_prompt, "hellaswag") == (60.0, 40.0)
    # A task the table's author did not count: NaN, not an error.
    prompt, generated = table_token_counts(with_prompt, "gsm8k")
    assert math.isnan(prompt) and math.isnan(generated)
    two_rows = {"table": str(table), "where": {}, "task_column": "task"}
    with pytest.raises(ResultsFileError, match="2 rows for task 'arc_challenge'"):
        table_token_counts(two_rows | {"generated_tokens": "cot_words"}, "arc_challenge")


# --------------------------------------------------------------------------- config checks


def import_config(tmp_path: Path) -> dict:
    results = write_json(tmp_path / "old.json", results_0_3(0.25, 0.22))
    (tmp_path / "lengths.csv").write_text("model,task,words\nm1,arc_challenge,12.5\n")
    return {
        "models": {
            "small": {"family": "f", "params": 1.0e8, "train_tokens": 1.0e10},
            "big": {"family": "f", "params": 4.0e8, "train_tokens": 1.0e10},
        },
        "tasks": {
            "arc_challenge": {"metric": "acc,none"},
            "mmlu_abstract_algebra": {"metric": "acc,none"},
        },
        "optimizations": {"standard": {}, "cot": {"trigger": "Let's think step by step."}},
        "evaluation": {"task_paths": [str(REPO / "config" / "tasks")]},
        "imports": [
            {
                "model": model,
                "optimization": optimization,
                "results": str(results),
                "results_task": {"mmlu_abstract_algebra": "hendrycksTest-abstract_algebra"},
                "generated_tokens_mean": 10.0,
            }
            for model in ("small", "big")
            for optimization in ("standard", "cot")
        ],
    }


def validate(config: dict) -> dict:
    return validate_config(copy.deepcopy(config), SCHEMA, base_dir=REPO, check_tasks=False)


def test_models_without_a_source_need_no_cells_run(tmp_path):
    config = validate(import_config(tmp_path))
    assert expand_grid(config) == []
    assert config["imports"][0]["results_task"]["mmlu_abstract_algebra"].startswith("hendrycks")


def changed(config: dict, change) -> dict:
    config = copy.deepcopy(config)
    change(config)
    return config


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda c: c["imports"].pop(),
            r"models.big: no 'source', but its cell \(arc_challenge, cot\) is neither imported",
        ),
        (
            lambda c: c["imports"][0].update(results_task="hendrycksTest-abstract_algebra"),
            r"imports\[0\].results_task: a single name needs 'task'",
        ),
        (
            lambda c: c["imports"][0].update(results_task={"mmlu_algebra": "x"}),
            r"imports\[0\].results_task: task 'mmlu_algebra' is not defined",
        ),
        (
            lambda c: c["imports"][0].update(results_task=3),
            r"imports.0.results_task: 3 is not valid",
        ),
        (
            lambda c: c["imports"][0].pop("generated_tokens_mean"),
            r"imports\[0\]: give exactly one of 'samples'",
        ),
        (
            lambda c: c["imports"][0].update(
                token_counts={"table": "lengths.csv", "generated_tokens": "words"}
            ),
            r"it gives token_counts, generated_tokens_mean",
        ),
        (
            lambda c: c["imports"][0].update(prompt_tokens_mean=80.0),
            None,  # a prompt count alongside the generated one is fine
        ),
    ],
)
def test_import_entries_are_checked_before_anything_runs(tmp_path, change, message):
    config = changed(import_config(tmp_path), change)
    if message is None:
        validate(config)
        return
    with pytest.raises(ConfigError, match=message):
        validate(config)


@pytest.mark.parametrize(
    ("token_counts", "message"),
    [
        (
            {"generated_tokens": "cot_words"},
            r"has no column 'cot_words'; it has model, task, words",
        ),
        (
            {"generated_tokens": "words", "where": {"model": "m2"}},
            r"token_counts.where: no row of .* matches \{'model': 'm2'\}",
        ),
        ({"generated_tokens": "words", "table": "nowhere.csv"}, r"'nowhere.csv' does not exist"),
        ({"generated_tokens": "words", "where": {"model": "m1"}}, None),
    ],
)
def test_a_token_table_is_checked_before_anything_runs(tmp_path, token_counts, message):
    config = import_config(tmp_path)
    entry = config["imports"][0]
    del entry["generated_tokens_mean"]
    entry["token_counts"] = {"table": str(tmp_path / "lengths.csv"), **token_counts}
    if message is None:
        validate(config)
        return
    with pytest.raises(ConfigError, match=message):
        validate(config)


# --------------------------------------------------------------------------- end to end


def test_0_3_files_with_a_renamed_task_join_the_tables(tmp_path):
    """Two source-less models imported from 0.3-era files, one task renamed since: Snakemake
    plans no staging and no evaluation, and the fits run on the imported scores."""
    config = import_config(tmp_path)
    scores = {
        ("small", "standard"): (0.24, 0.21),
        ("small", "cot"): (0.26, 0.23),
        ("big", "standard"): (0.28, 0.25),
        ("big", "cot"): (0.29, 0.24),
    }
    for entry in config["imports"]:
        key = (entry["model"], entry["optimization"])
        name = f"{key[0]}.{key[1]}.json"
        entry["results"] = str(write_json(tmp_path / name, results_0_3(*scores[key])))
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))

    def snakemake(*args: str) -> subprocess.CompletedProcess:
        command = [*SNAKEMAKE, "--directory", str(tmp_path), "--configfile", "config.yaml"]
        return subprocess.run(
            [*command, *args], cwd=tmp_path, capture_output=True, text=True, timeout=600
        )

    target = "results/tables/train_equivalent.csv"
    dry = snakemake("-n", target)
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert "stage_" not in dry.stdout and "rule evaluate" not in dry.stdout
    run = snakemake("--cores", "1", target)
    assert run.returncode == 0, run.stderr[-3000:]

    table = pd.read_csv(tmp_path / "results" / "tables" / "scores.csv")
    cells = table[table["task"] != "average"].set_index(["model", "optimization", "task"])
    for (model, optimization), (arc, algebra) in scores.items():
        assert cells.loc[(model, optimization, "arc_challenge"), "score"] == arc
        assert cells.loc[(model, optimization, "arc_challenge"), "stderr"] == 0.0127
        row = cells.loc[(model, optimization, "mmlu_abstract_algebra")]
        assert (row["score"], row["stderr"]) == (algebra, 0.0416)
    assert (table["source"] == "import").all()
    assert table["revision"].isna().all()  # no source, no revision
    assert table["prompt_tokens_mean"].isna().all()  # not given: unknown, not invented
    assert (table["generated_tokens_mean"] == 10.0).all()
    assert table.loc[table["task"] == "average", "n"].isna().all()  # 0.3 files give no n

    equivalent = pd.read_csv(tmp_path / target).set_index("model")
    # The standard averages, 0.225 at C = 6e18 and 0.265 at 2.4e19, make an exact line: the small
    # model's CoT average (0.245) lies halfway up it in log C, the big model's (0.265) at its top.
    assert equivalent.loc["small", "train_equivalent_flops"] == pytest.approx(1.2e19, rel=1e-9)
    assert equivalent.loc["big", "train_equivalent_flops"] == pytest.approx(2.4e19, rel=1e-9)


def test_the_pareto_figure_draws_imports_in_the_papers_convention():
    run = {"task": "average", "inference_flops_per_request_full": 3e9}
    imported = {"task": "average", "inference_flops_per_request_full": float("nan")}
    assert pareto_cost_column(pd.DataFrame([run, run])) == "inference_flops_per_request_full"
    assert pareto_cost_column(pd.DataFrame([run, imported])) == "inference_flops_per_request_paper"


# --------------------------------------------------------------------------- tables of scores


def scores_config(tmp_path: Path) -> dict:
    """Both models' cells of `direct` from one CSV of scores, lm-eval's results flattened."""
    (tmp_path / "scores.csv").write_text(
        "model,checkpoint,arc_challenge_acc_none,arc_challenge_acc_stderr_none,"
        "hendrycksTest-abstract_algebra_acc_none,gsm8k_exact_match_flexible-extract\n"
        "m,main,0.31,0.013,0.27,0.05\n"
        "m,step10,0.22,0.012,0.24,0.01\n"
    )
    config = import_config(tmp_path)
    config["optimizations"] = {"direct": {"format": "loglikelihood"}}
    config["analysis"] = {"baseline": "direct"}
    config["imports"] = [
        {
            "model": model,
            "optimization": "direct",
            "results_task": {"mmlu_abstract_algebra": "hendrycksTest-abstract_algebra"},
            "scores": {
                "table": str(tmp_path / "scores.csv"),
                "where": {"model": "m", "checkpoint": checkpoint},
            },
        }
        for model, checkpoint in (("small", "step10"), ("big", "main"))
    ]
    return config


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda e: None, None),
        (
            lambda e: e.update(results="old.json"),
            r"imports\[0\]: give exactly one of 'results' .* or 'scores' .*; it gives results "
            r"and scores",
        ),
        (
            lambda e: e["scores"]["where"].update(checkpoint="step20"),
            r"imports\[0\].scores.where: no row of .* matches",
        ),
        (
            lambda e: e.pop("results_task"),
            r"imports\[0\].scores: .* has no column 'mmlu_abstract_algebra_acc_none'; it has .*",
        ),
        (
            lambda e: e["scores"].update(columns={"arc_challenge": "arc_challenge_acc"}),
            r"has no column 'arc_challenge_acc'; .* \(did you mean 'arc_challenge_acc_none'\?\)",
        ),
        (
            lambda e: e["scores"].update(columns={"arc": "x"}),
            r"imports\[0\].scores.columns: task 'arc' is not defined",
        ),
        (
            lambda e: e.update(generated_tokens_mean=0.0),
            None,  # token counts are optional for a table of scores, and may be given
        ),
    ],
)
def test_a_scores_table_import_is_checked_before_anything_runs(tmp_path, change, message):
    config = scores_config(tmp_path)
    change(config["imports"][0])
    if message is None:
        validate(config)
        return
    with pytest.raises(ConfigError, match=message):
        validate(config)


def test_a_scores_table_joins_the_tables_without_an_inference_cost(tmp_path):
    config = scores_config(tmp_path)
    config["imports"][1]["scores"]["columns"] = {
        "arc_challenge": "gsm8k_exact_match_flexible-extract"  # any column may be named
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    run = subprocess.run(
        [
            *SNAKEMAKE,
            "--directory",
            str(tmp_path),
            "--configfile",
            str(tmp_path / "config.yaml"),
            "--cores",
            "1",
            "results/tables/scores.csv",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    scores = pd.read_csv(tmp_path / "results" / "tables" / "scores.csv")
    cell = scores.set_index(["model", "task"])
    assert cell.loc[("small", "arc_challenge"), "score"] == 0.22
    # lm-eval's flattened standard error column, where the table has one.
    assert cell.loc[("small", "arc_challenge"), "stderr"] == 0.012
    assert cell.loc[("small", "mmlu_abstract_algebra"), "score"] == 0.24
    assert math.isnan(cell.loc[("small", "mmlu_abstract_algebra"), "stderr"])
    assert cell.loc[("big", "arc_challenge"), "score"] == 0.05
    assert cell.loc[("big", "average"), "score"] == pytest.approx((0.05 + 0.27) / 2)
    assert scores["inference_flops_per_request_paper"].isna().all()
    assert set(scores["source"]) == {"import"}

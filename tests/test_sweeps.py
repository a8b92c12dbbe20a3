"""k sweeps end to end: K samples drawn once by a real lm-eval run on the real SmolLM2, every
k ≤ K scored from them, checked against the cell's own vote and an independent count."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from thinkcost.config import CellSpec, apply_schema
from thinkcost.config.spec import ModelFiles
from thinkcost.evaluate.cell import evaluate_cell
from thinkcost.evaluate.outputs import CellOutputs

REPO = Path(__file__).resolve().parents[1]
K = 4


def run_cell(
    model_dir: Path, out: Path, task: str, metric: str, knobs: dict, limit=None, scorer=None
):
    config = apply_schema(
        {
            "models": {
                "m": {
                    "source": {"path": str(model_dir)},
                    "params": 1.35e8,
                    "train_tokens": 2e12,
                    "family": "f",
                }
            },
            "tasks": {"t": {"lm_eval_task": task, "metric": metric}},
            "optimizations": {"vote": knobs},
            "evaluation": {"task_paths": [str(REPO / "tests" / "tasks")], "device": "cpu"},
        },
        REPO / "config" / "schema.yaml",
    )
    record = evaluate_cell(
        CellSpec(
            model_dir=str(model_dir),
            lm_eval_task=task,
            metric=metric,
            params=1.35e8,
            knobs=config["optimizations"]["vote"],
            evaluation=config["evaluation"],
            limit=limit,
            num_fewshot=None,
            cell={"model": "m", "task": "t", "optimization": "vote"},
            scorer=ModelFiles(**scorer) if scorer else None,
        ),
        CellOutputs.in_directory(out),
    )
    results = json.loads((out / "results.json").read_text())["results"][task]
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    return record, results, samples


def test_a_multiple_choice_sweep_agrees_with_the_vote_and_with_counting(smollm2_dir, tmp_path):
    knobs = {
        "trigger": "Let's think step by step.",
        "max_new_tokens": 8,
        "do_sample": True,
        "num_samples": K,
        "sweep": [1, 2, K],
    }
    record, results, samples = run_cell(
        smollm2_dir, tmp_path, "thinkcost_winogrande_local", "acc,none", knobs
    )
    rows = {row["k"]: row for row in record["sweep"]}
    assert sorted(rows) == [1, 2, K]
    # k = K is the vote over every sample: the cell's own score, as lm-eval computed it.
    assert rows[K]["score"] == pytest.approx(results["acc,none"])

    # Each sample judged independently: its most likely choice against the sentence's answer.
    docs = [json.loads(line) for line in (REPO / "tests/data/winogrande_local.jsonl").open()]
    per_question = []
    for sample in samples:
        gold = int(docs[sample["doc_id"]]["answer"]) - 1
        loglik = np.array(sample["thinkcost_samples"]["choice_loglik"])
        assert loglik.shape == (K, 2)
        per_question.append(loglik.argmax(axis=1) == gold)
    assert rows[1]["score"] == pytest.approx(np.mean([c.mean() for c in per_question]))
    assert rows[K]["coverage"] == pytest.approx(np.mean([c.any() for c in per_question]))
    assert {row["estimate"] for row in rows.values()} == {"exact"}

    # Costs: k of K samples' tokens, the prompt once.
    assert rows[K]["generated_tokens_mean"] == pytest.approx(record["generated_tokens_mean"])
    assert rows[1]["generated_tokens_mean"] == pytest.approx(record["generated_tokens_mean"] / K)
    assert rows[K]["inference_flops_per_request_paper"] == pytest.approx(
        record["inference_flops_per_request_paper"]
    )
    assert rows[K]["inference_flops_per_request_full"] == pytest.approx(
        record["inference_flops_per_request_full"]
    )
    assert (
        rows[1]["inference_flops_per_request_full"]
        > rows[K]["inference_flops_per_request_full"] / K
    )


def test_free_form_samples_vote_on_the_answer_the_tasks_filter_extracts(
    smollm2_dir, tmp_path, shared_data, monkeypatch
):
    monkeypatch.chdir(REPO)  # the task reads ../shared/data/gsm8k relative to the repository
    knobs = {"max_new_tokens": 48, "do_sample": True, "num_samples": 3, "sweep": [1, 3]}
    metric = "exact_match,flexible-extract"
    record, results, samples = run_cell(
        smollm2_dir, tmp_path, "thinkcost_gsm8k_shared", metric, knobs, limit=3
    )
    rows = {row["k"]: row for row in record["sweep"]}
    assert rows[3]["score"] == pytest.approx(results[metric])
    flexible = re.compile(r"(-?[$0-9.,]{2,})|(-?[0-9]+)")
    for sample in samples:
        if sample["filter"] != "flexible-extract":
            continue
        texts = [g["text"] for g in sample["thinkcost_generations"]]
        said = sample["thinkcost_samples"]["answers"]
        # The filter's answer of each sample: the last number (or "[invalid]"), without the
        # commas, dollar signs and final period the metric ignores (so "1." votes with "1").
        for text, answer in zip(texts, said, strict=True):
            found = [a or b for a, b in flexible.findall(text)]
            number = found[-1] if found else "[invalid]"
            assert answer == re.sub(r"\.$", "", number.replace(",", "").replace("$", "")).lower()
        # lm-eval saw one of the samples, one whose answer got the most votes.
        (returned,) = sample["resps"][0]
        assert returned in texts
        counts = Counter(said)
        assert counts[said[texts.index(returned)]] == max(counts.values())


def test_a_separate_scorer_ranks_the_samples_and_its_cost_is_counted_apart(smollm2_dir, tmp_path):
    """The scorer is the same SmolLM2 loaded a second time (the one model this machine has):
    its scores must equal the model's own, while its tokens and FLOPs are counted apart."""
    knobs = {
        "trigger": "Let's think step by step.",
        "max_new_tokens": 8,
        "do_sample": True,
        "num_samples": 3,
        "vote": "best_of_n",
        "sweep": [1, 3],
    }
    task, metric = "thinkcost_winogrande_local", "acc,none"
    own, _, own_samples = run_cell(smollm2_dir, tmp_path / "own", task, metric, knobs)
    scorer = {"model_dir": str(smollm2_dir), "params": 1.35e8}
    scored, results, samples = run_cell(
        smollm2_dir, tmp_path / "scorer", task, metric, knobs, scorer=scorer
    )
    compared = 0
    for mine, theirs in zip(own_samples, samples, strict=True):
        texts = [(g["text"], g["tokens"]) for g in mine["thinkcost_generations"]]
        assert texts == [(g["text"], g["tokens"]) for g in theirs["thinkcost_generations"]]
        # The scorer reads the rationale's text; the model's own score is that of the tokens
        # it generated, the same thing where no stop string or EOS was cut off the text.
        for g, own_score, scorer_score in zip(
            mine["thinkcost_generations"],
            mine["thinkcost_samples"]["scores"],
            theirs["thinkcost_samples"]["scores"],
            strict=True,
        ):
            if g["stopped_by"] == "length":
                assert scorer_score == pytest.approx(own_score, abs=1e-4)
                compared += 1
    assert compared
    # The cell's score, recomputed from its samples: best-of-n answers each question with its
    # highest-scored sample (the earlier one on a tie), right where that is the gold sentence.
    right = []
    for sample in samples:
        voted = sample["thinkcost_samples"]
        best = max(range(3), key=lambda i: (voted["scores"][i], -i))
        right.append(voted["answers"][best] == {"1": 0, "2": 1}[sample["doc"]["answer"]])
    assert scored["score"] == pytest.approx(np.mean(right)) == results["acc,none"]
    assert own["scorer_tokens_mean"] == 0 and own["scorer_flops_per_request_paper"] == 0
    assert own["scorer_engine"] == {}
    # The scorer read each prompt once and every sample after it: 2·N per token (paper).
    requests = [json.loads(line) for line in (tmp_path / "scorer/requests.jsonl").open()]
    read = [r["scorer_prompt_tokens"] + sum(r["scorer_tokens"]) for r in requests]
    assert all(len(r["scorer_tokens"]) == 3 and r["scorer_prompt_tokens"] > 0 for r in requests)
    assert scored["scorer_tokens_mean"] == pytest.approx(np.mean(read))
    assert scored["scorer_flops_per_request_paper"] == pytest.approx(2 * 1.35e8 * np.mean(read))
    assert scored["inference_flops_per_request_paper"] == pytest.approx(
        own["inference_flops_per_request_paper"] + scored["scorer_flops_per_request_paper"]
    )
    assert scored["scorer_engine"]["scoring_tokens"] > 0
    # k = 1 reads one sample of three: a third of the per-sample tokens, the prompt whole.
    k1 = {row["k"]: row for row in scored["sweep"]}[1]
    expected = np.mean(
        [
            2
            * 1.35e8
            * (sum(r["generated"]) / 3 + r["scorer_prompt_tokens"] + sum(r["scorer_tokens"]) / 3)
            for r in requests
        ]
    )
    assert k1["inference_flops_per_request_paper"] == pytest.approx(expected)


def test_a_free_form_tree_search_votes_on_the_filters_answers(smollm2_dir, tmp_path, monkeypatch):
    """A tree search (num_samples 1) answers from its leaves: on a free-form task they vote on
    what the task's filter extracts, as k samples do, not on their whole text."""
    monkeypatch.chdir(REPO)
    knobs = {
        "max_new_tokens": 48,
        "do_sample": True,
        "vote": "majority",
        "search": {"width": 3, "max_depth": 3, "step_tokens": 16, "token_budget": 96},
    }
    metric = "exact_match,flexible-extract"
    _, _, samples = run_cell(smollm2_dir, tmp_path, "thinkcost_gsm8k_shared", metric, knobs, 3)
    flexible = re.compile(r"(-?[$0-9.,]{2,})|(-?[0-9]+)")
    voted = [s for s in samples if s["filter"] == "flexible-extract" and "thinkcost_samples" in s]
    assert voted, "no search kept two leaves"
    for sample in voted:
        texts = [g["text"] for g in sample["thinkcost_generations"]]
        for text, answer in zip(texts, sample["thinkcost_samples"]["answers"], strict=True):
            found = [a or b for a, b in flexible.findall(text)]
            number = found[-1] if found else "[invalid]"
            assert answer == re.sub(r"\.$", "", number.replace(",", "").replace("$", "")).lower()

"""The default run's tasks: BIG-Bench Hard as shipped in data/bbh, staged for lm-eval.

The expected values are read off the BBH files themselves (the gold target as BBH writes it,
the option lines, the cot-prompts text), not from the staging code's parsing.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from thinkcost.config.tasks import bbh_options, stage_bbh_task

REPO = Path(__file__).resolve().parents[1]
BBH = REPO / "data" / "bbh"
TASKS = ("logical_deduction_three_objects", "date_understanding",
         "tracking_shuffled_objects_three_objects", "navigate")  # fmt: skip


def test_the_options_of_a_question_are_read_as_bbh_writes_them():
    question = "Today is 9/7. What is tomorrow?\nOptions:\n(A) 9/8\n(B) 9/6 and (C) 9/5"
    assert bbh_options(question) == (["(A)", "(B)"], ["9/8", "9/6 and (C) 9/5"])
    assert bbh_options("Go home?\nOptions:\n- Yes\n- No") == (["Yes", "No"], ["Yes", "No"])
    assert bbh_options("What is 2 + 2?") == ([], [])


@pytest.mark.parametrize("task", TASKS)
def test_every_shipped_question_is_staged_with_its_gold_option(task, bbh_data):
    examples = json.loads((BBH / "tasks" / f"{task}.json").read_text())["examples"]
    rows = [json.loads(line) for line in (bbh_data / f"{task}.jsonl").read_text().splitlines()]
    assert len(rows) == len(examples) == 250
    for example, row in zip(examples, rows, strict=True):
        assert row["input"] == example["input"]
        assert row["labels"][row["gold"]] == example["target"]
        # The labels and texts put back together are the question's own option lines.
        listed = example["input"].split("\nOptions:\n")[1].splitlines()
        rebuilt = [
            f"- {text}" if label == text else f"{label} {text}"
            for label, text in zip(row["labels"], row["texts"], strict=True)
        ]
        assert rebuilt == listed


def lm_eval_task(name: str, staged: Path, monkeypatch):
    """Our lm-eval task `name`, reading the staged files (relative to the working directory)."""
    from thinkcost.config.tasks import task_manager

    workdir = staged.parent / "work"
    (workdir / "results" / "stage" / "data").mkdir(parents=True, exist_ok=True)
    link = workdir / "results" / "stage" / "data" / "bbh"
    if not link.exists():
        link.symlink_to(staged)
    monkeypatch.chdir(workdir)
    manager = task_manager(name, [REPO / "config" / "tasks"])
    return manager.load([name])["tasks"][name]


@pytest.mark.parametrize("task", ["navigate", "date_understanding"])
def test_three_shot_prompts_are_the_bbh_papers_cot_prompts(task, bbh_data, monkeypatch):
    """With num_fewshot 3 and the CoT trigger, a question is asked exactly as Suzgun et al.
    asked it: their cot-prompts file, then "Q: <question>\\nA: Let's think step by step."."""
    lm_task = lm_eval_task(f"thinkcost_bbh_{task}", bbh_data, monkeypatch)
    doc = lm_task.test_docs()[0]
    prompt_file = (BBH / "cot-prompts" / f"{task}.txt").read_text()
    expected = prompt_file.split("-----\n", 1)[1].strip() + f"\n\nQ: {doc['input']}\nA:"
    assert lm_task.fewshot_context(doc, num_fewshot=3) == expected
    # Zero-shot, as lm-eval's own bbh_zeroshot: the task description, then the question.
    description = prompt_file.split("-----\n", 1)[1].split("\n\n")[0]
    assert lm_task.fewshot_context(doc, num_fewshot=0) == (
        f"{description}\n\nQ: {doc['input']}\nA:"
    )
    # The choices are the option texts; the gold one is written on the line of BBH's target.
    target = json.loads((BBH / "tasks" / f"{task}.json").read_text())["examples"][0]["target"]
    (line,) = [line for line in doc["input"].splitlines() if line.endswith(target)] or [
        line for line in doc["input"].splitlines() if line.startswith(f"{target} ")
    ]
    assert line.endswith(lm_task.doc_to_choice(doc)[lm_task.doc_to_target(doc)])


def test_a_staged_exemplar_names_the_option_its_rationale_ends_on(bbh_data):
    shots = [json.loads(line) for line in (bbh_data / "navigate.fewshot.jsonl").open()]
    assert [shot["labels"][shot["gold"]] for shot in shots] == ["No", "No", "Yes"]
    assert all(shot["rationale"].startswith("Let's think step by step.\n") for shot in shots)


def test_a_question_whose_target_is_not_an_option_is_refused(tmp_path):
    (tmp_path / "tasks").mkdir()
    (tmp_path / "cot-prompts").mkdir()
    (tmp_path / "cot-prompts" / "t.txt").write_text(
        (BBH / "cot-prompts" / "navigate.txt").read_text()
    )
    bad = {"examples": [{"input": "Go?\nOptions:\n- Yes\n- No", "target": "Maybe"}]}
    (tmp_path / "tasks" / "t.json").write_text(json.dumps(bad))
    with pytest.raises(ValueError, match=r"BBH t: question 0's target 'Maybe' is not in"):
        stage_bbh_task(tmp_path, "t", tmp_path / "t.jsonl", tmp_path / "t.fewshot.jsonl")

"""REBASE tree search: the allocation rule on constructed scores, then a tiny real search on
SmolLM2: the token budget holds, the answer is the best-scored leaf, a seed repeats it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from thinkcost.engines import SamplingSpec, load_engine
from thinkcost.inference.questions import Question
from thinkcost.inference.strategies import FreeForm, Hybrid
from thinkcost.inference.tree_search import SearchSettings, allocate

QUESTIONS = [
    Question(
        "sky", "Q: Is the sky blue on a clear day?\nOptions:\n- yes\n- no\nA:", (" yes", " no")
    ),
    Question(
        "apples",
        "Q: Alice has 3 apples and gives one away. How many are left?\nA:",
        (" 1", " 2", " 3"),
    ),
]
TRIGGER = "Let's think step by step."
SETTINGS = SearchSettings(width=3, max_depth=4, step_tokens=8, token_budget=40)


def test_children_are_shared_by_softmax_and_always_sum_to_the_width():
    assert allocate(4, [0.0, 0.0], 1.0) == [2, 2]
    assert allocate(3, [0.0, 0.0], 1.0) == [2, 1]  # the remainder to the earlier node
    assert allocate(5, [0.0, -1.0, -2.0], 0.0) == [5, 0, 0]  # temperature 0: a beam
    counts = allocate(100, [0.0, np.log(3.0)], 1.0)
    assert counts == [25, 75]  # softmax weights 1 : 3
    for width in range(1, 9):
        assert sum(allocate(width, [-0.3, -1.2, -0.1, -2.0], 0.7)) == width
    assert allocate(6, [-0.5, -0.5, -5.0], 100.0) == [2, 2, 2]  # a hot softmax: near even


@pytest.fixture(scope="module")
def engine(smollm2_dir):
    return load_engine("hf", str(smollm2_dir), device="cpu", dtype="float32", max_batch_size=8)


def searched(engine, settings=SETTINGS, vote="best_of_n"):
    spec = SamplingSpec(max_new_tokens=64, stop=("Q:", "The answer is"), do_sample=True, seed=5)
    strategy = Hybrid(spec=spec, trigger=TRIGGER, vote=vote, search=settings)
    return strategy.answer(engine, QUESTIONS)


def test_the_search_keeps_its_token_budget_and_answers_with_the_best_leaf(engine):
    answers = searched(engine)
    for question, answer in zip(QUESTIONS, answers, strict=True):
        cost = answer.cost
        assert sum(cost.generated) <= SETTINGS.token_budget
        assert len(cost.branch_starts) == len(cost.generated) >= SETTINGS.width
        leaves = answer.generations
        assert 1 <= len(leaves) <= SETTINGS.width
        # Each leaf's tokens are its path's steps; a leaf's choices were scored after it.
        assert all(leaf.tokens <= SETTINGS.token_budget for leaf in leaves)
        assert sum(1 for tokens in cost.answer if tokens) == len(leaves)
        if len(leaves) > 1:
            # The leaves' scores, recomputed: mean log-likelihood of rationale + chosen choice.
            scores = answer.samples["scores"]
            best = max(range(len(leaves)), key=lambda i: (scores[i], -i))
            chosen = max(range(len(question.choices)), key=lambda c: answer.scores[c][0])
            assert chosen == answer.samples["answers"][best]
            # (A leaf's score against a plain forward pass: the free-form test below.)
    assert any(len(answer.generations) > 1 for answer in answers), "no search branched"


def test_a_seeded_search_repeats(engine):
    first, again = searched(engine), searched(engine)
    for a, b in zip(first, again, strict=True):
        assert [g.text for g in a.generations] == [g.text for g in b.generations]
        assert a.cost.generated == b.cost.generated
        assert a.scores == b.scores


def test_a_budget_smaller_than_the_width_stops_before_generating_too_much(engine):
    tight = SearchSettings(width=4, max_depth=6, step_tokens=8, token_budget=10)
    for answer in searched(engine, tight):
        assert sum(answer.cost.generated) <= 10


def test_free_form_answers_come_from_the_best_leaf(engine, smollm2_dir):
    """The answer is the best-scored leaf's, and a leaf's score is its path's mean
    log-probability per token under the model, from a plain forward pass over the question and
    the path. Only a leaf the budget ended within its first step can be checked that way (its
    text is every token it generated; a step separator is in the text but not in the score), so
    a few seeds are searched until two such leaves are found: which leaves a seed gives depends
    on the sampler's random stream."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
    model = AutoModelForCausalLM.from_pretrained(smollm2_dir, dtype=torch.float32).eval()
    questions = [Question("q", "Question: What is 2 plus 3?\nAnswer:")]
    prompt_ids = tokenizer(questions[0].context).input_ids
    compared = 0
    for seed in range(3, 9):
        spec = SamplingSpec(max_new_tokens=64, stop=("Question:",), do_sample=True, seed=seed)
        strategy = FreeForm(spec=spec, vote="best_of_n", search=SETTINGS)
        (answer,) = strategy.answer(engine, questions)
        assert sum(answer.cost.generated) <= SETTINGS.token_budget
        leaves = answer.generations
        assert len(leaves) > 1, "the search did not branch: nothing to choose between"
        scores = answer.samples["scores"]
        best = max(range(len(leaves)), key=lambda i: (scores[i], -i))
        assert answer.text == leaves[best].text
        for leaf, score in zip(leaves, scores, strict=True):
            ids = tokenizer(questions[0].context + leaf.text).input_ids
            if leaf.stopped_by not in ("length", "budget") or SETTINGS.step_stop in leaf.text:
                continue
            if len(ids) - len(prompt_ids) != leaf.tokens:  # retokenizing merged tokens
                continue
            with torch.no_grad():
                logprobs = torch.log_softmax(model(torch.tensor([ids])).logits[0].float(), dim=-1)
            path = [float(logprobs[i - 1, ids[i]]) for i in range(len(prompt_ids), len(ids))]
            assert score == pytest.approx(np.mean(path), abs=1e-3)
            compared += 1
        if compared >= 2:
            break
    assert compared

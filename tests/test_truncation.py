"""Prompts longer than the context leaves room for: cut from the start, flagged, and counted as
the tokens actually computed, on both engines (the real SmolLM2).

The expected counts come from the tokenizer and the context length by hand; the engines'
own prefill counters say what they computed.
"""

from __future__ import annotations

import pytest

from thinkcost.engines import GenerationRequest, SamplingSpec, load_engine
from thinkcost.inference.questions import Question
from thinkcost.inference.strategies import Direct, Hybrid

KEPT = 48  # prompt tokens a generation keeps: each engine's context less its budget T
# 57 tokens: more than the 48 kept, fewer than the whole context, so the old check (prompt
# longer than the context) let it be cut without a word.
LONG = "Q: " + " ".join(["Alice walks to the park and back."] * 6) + " Is she home?\nA:"
SHORT = "Q: Is the sky blue?\nA:"
STOP = ("\n",)


@pytest.fixture(scope="module", params=["hf", "vllm"])
def engine(request, smollm2_dir):
    """The hf engine with a 64-token context; vLLM's one engine per process (conftest.py), whose
    context is 2,048 tokens: each is given the budget T that leaves KEPT tokens of prompt."""
    if request.param == "vllm":
        return request.getfixturevalue("vllm_engine")
    return load_engine("hf", str(smollm2_dir), dtype="float32", max_length=64, max_batch_size=4)


def test_a_generation_prompt_cut_to_fit_is_flagged_and_counted_as_computed(engine):
    budget = engine.max_length - KEPT
    assert KEPT < len(engine.tokenize(LONG)) < engine.max_length
    assert len(engine.tokenize(SHORT)) < KEPT
    # What the engine computes of a long prompt, by its own prefill counter.
    before = engine.counters.prefill_tokens
    engine.generate([GenerationRequest(LONG)], SamplingSpec(budget, STOP))
    computed = engine.counters.prefill_tokens - before
    assert computed == KEPT
    # The cost records of another long prompt (nothing of it cached) and a short one.
    other = LONG.replace("Alice", "Carol", 1).replace("Is she home?", "Is she tired?")
    strategy = Hybrid(spec=SamplingSpec(budget, STOP))
    long_answer, short_answer = strategy.answer(
        engine,
        [Question("long", other, (" yes", " no")), Question("short", SHORT, (" yes", " no"))],
    )
    assert long_answer.cost.truncated and long_answer.cost.prompt_tokens == computed
    assert not short_answer.cost.truncated
    assert short_answer.cost.prompt_tokens == len(engine.tokenize(SHORT))


def test_a_scoring_context_cut_to_fit_is_flagged_and_counted_as_kept(engine):
    choices = (" yes", " no, she is not")
    context = LONG * (engine.max_length // 50 + 1)  # longer than the context
    (answer,) = Direct().answer(engine, [Question("long", context, choices)])
    widest = max(len(engine.tokenize(c, add_special_tokens=False)) for c in choices)
    assert answer.cost.truncated
    assert answer.cost.prompt_tokens == engine.max_length - widest

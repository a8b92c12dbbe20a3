"""Prompts longer than the context leaves room for: cut from the start, flagged, and counted as
the tokens actually computed, on both engines (the real SmolLM2 with a 64-token context).

The expected counts come from the tokenizer and the context length by hand; the engines'
own prefill counters say what they computed.
"""

from __future__ import annotations

import gc

import pytest

from thinkcost.engines import GenerationRequest, SamplingSpec, load_engine
from thinkcost.strategies import Direct, Hybrid, Question

CONTEXT = 64
T = 16
# 57 tokens: more than the 48 a 16-token budget leaves, fewer than the whole context, so the
# old check (prompt longer than the context) let it be cut without a word.
LONG = "Q: " + " ".join(["Alice walks to the park and back."] * 6) + " Is she home?\nA:"
SHORT = "Q: Is the sky blue?\nA:"


@pytest.fixture(scope="module", params=["hf", "vllm"])
def engine(request, smollm2_dir):
    if request.param == "vllm":
        pytest.importorskip("vllm")
    options = {"max_batch_size": 4} if request.param == "hf" else {}
    loaded = load_engine(
        request.param, str(smollm2_dir), dtype="float32", max_length=CONTEXT, **options
    )
    yield loaded
    del loaded  # vLLM's key/value cache goes with it, before the next module loads another
    gc.collect()


def test_a_generation_prompt_cut_to_fit_is_flagged_and_counted_as_computed(engine):
    assert CONTEXT - T < len(engine.tokenize(LONG)) < CONTEXT  # 57 tokens
    assert len(engine.tokenize(SHORT)) < CONTEXT - T
    # What the engine computes of a long prompt, by its own prefill counter.
    before = engine.counters.prefill_tokens
    engine.generate([GenerationRequest(LONG)], SamplingSpec(T, ("Q:",)))
    computed = engine.counters.prefill_tokens - before
    assert computed == CONTEXT - T
    # The cost records of another long prompt (nothing of it cached) and a short one.
    other = LONG.replace("Is she home?", "Is she tired?")
    strategy = Hybrid(spec=SamplingSpec(T, ("Q:",)))
    long_answer, short_answer = strategy.answer(
        engine,
        [Question("long", other, (" yes", " no")), Question("short", SHORT, (" yes", " no"))],
    )
    assert long_answer.cost.truncated and long_answer.cost.prompt_tokens == computed
    assert not short_answer.cost.truncated
    assert short_answer.cost.prompt_tokens == len(engine.tokenize(SHORT))


def test_a_scoring_context_cut_to_fit_is_flagged_and_counted_as_kept(engine):
    choices = (" yes", " no, she is not")
    (answer,) = Direct().answer(engine, [Question("long", LONG * 2, choices)])
    widest = max(len(engine.tokenize(c, add_special_tokens=False)) for c in choices)
    assert answer.cost.truncated
    assert answer.cost.prompt_tokens == CONTEXT - widest

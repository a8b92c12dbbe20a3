"""Sampling on both engines against the model's own distribution, from a plain forward pass.

The default `vote` samples at temperature 0.7, and weighted votes, best-of-n and the tree
search weigh samples by their log-probabilities: a wrong temperature, a top-p that keeps the
wrong tokens or tempered log-probabilities would change the numbers without failing anything
else. The expected distribution is softmax(logits / T) after top-p filtering, computed here
from transformers' logits, not by the engines' code.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from thinkcost.engines import GenerationRequest, SamplingSpec, load_engine

PROMPT = "Q: Name a colour of the sky.\nA: The sky is"
DRAWS = 2000


@pytest.fixture(scope="module")
def reference(smollm2_dir):
    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
    model = AutoModelForCausalLM.from_pretrained(smollm2_dir, dtype=torch.float32).eval()
    return tokenizer, model


def next_token_distribution(reference, temperature: float, top_p: float) -> np.ndarray:
    """softmax(logits / T), keeping the smallest set of most likely tokens whose probability
    reaches top_p (the nucleus), renormalised."""
    tokenizer, model = reference
    with torch.no_grad():
        logits = model(**tokenizer(PROMPT, return_tensors="pt")).logits[0, -1].double()
    probs = torch.softmax(logits / temperature, dim=-1).numpy()
    order = np.argsort(-probs)
    before = np.cumsum(probs[order]) - probs[order]  # mass of the tokens ranked above
    kept = order[before < top_p]
    nucleus = np.zeros_like(probs)
    nucleus[kept] = probs[kept]
    return nucleus / nucleus.sum()


@pytest.fixture(scope="module", params=["hf", "vllm"])
def engine(request, smollm2_dir):
    if request.param == "vllm":
        return request.getfixturevalue("vllm_engine")  # the one per process (conftest.py)
    return load_engine("hf", str(smollm2_dir), device="cpu", dtype="float32")


def first_tokens(engine, temperature: float, top_p: float) -> list[str]:
    """The first generated token of DRAWS samples, as text (EOS gives "")."""
    spec = SamplingSpec(1, do_sample=True, temperature=temperature, top_p=top_p, seed=7)
    (samples,) = engine.generate([GenerationRequest(PROMPT, DRAWS, "q")], spec)
    return [s.text for s in samples]


def by_text(reference, distribution: np.ndarray) -> dict[str, float]:
    tokenizer, _ = reference
    eos = tokenizer.eos_token_id
    texts: dict[str, float] = {}
    for token in np.flatnonzero(distribution):
        text = "" if token == eos else tokenizer.decode([int(token)])
        texts[text] = texts.get(text, 0.0) + float(distribution[token])
    return texts


def binned_distance(drawn: list[str], expected: dict[str, float], bins: list[str]) -> float:
    """Total variation over the given tokens and one bin for all others."""
    drawn_share = [drawn.count(b) / len(drawn) for b in bins]
    expected_share = [expected.get(b, 0.0) for b in bins]
    rest = (1 - sum(drawn_share), 1 - sum(expected_share))
    return 0.5 * (
        sum(abs(d - e) for d, e in zip(drawn_share, expected_share, strict=True))
        + abs(rest[0] - rest[1])
    )


@pytest.mark.parametrize("temperature, top_p", [(0.7, 1.0), (1.0, 0.5)])
def test_first_sampled_tokens_follow_the_tempered_nucleus(engine, reference, temperature, top_p):
    """For this prompt T = 0.7 puts 0.62 on " blue" (0.33 at T = 1), and top-p 0.5 at T = 1
    keeps exactly " blue", " a" and " red" (0.63, 0.27, 0.10 renormalised)."""
    drawn = first_tokens(engine, temperature, top_p)
    expected = by_text(reference, next_token_distribution(reference, temperature, top_p))
    bins = sorted(expected, key=expected.get, reverse=True)[:5]
    # 2,000 draws: each bin's share has a standard deviation of at most 0.011, so a distance of
    # 0.05 is far beyond the noise; the distribution at another temperature or top-p is far
    # beyond that bound.
    assert binned_distance(drawn, expected, bins) < 0.05
    other = by_text(reference, next_token_distribution(reference, 1.0, 1.0))
    assert binned_distance(drawn, other, bins) > 0.15
    if top_p < 1.0:  # nothing outside the nucleus is ever drawn
        assert set(drawn) <= set(expected)


def test_sampled_tokens_carry_their_raw_log_probabilities(engine, reference):
    """A sample's `logprob` is the model's log-probability of its tokens at temperature 1,
    whatever temperature drew them (what the scores and votes use; config/schema.yaml)."""
    tokenizer, model = reference
    spec = SamplingSpec(4, do_sample=True, temperature=0.7, seed=3)
    (samples,) = engine.generate([GenerationRequest(PROMPT, 8, "q")], spec)
    prompt_ids = tokenizer(PROMPT).input_ids
    checked = 0
    for sample in samples:
        generated = engine.tokenize(PROMPT + sample.text)[len(prompt_ids) :]
        if len(generated) != sample.tokens:  # EOS cut it, or retokenizing merged tokens
            continue
        checked += 1
        with torch.no_grad():
            logits = model(torch.tensor([prompt_ids + generated])).logits[0].float()
        logprobs = torch.log_softmax(logits, dim=-1)
        raw = sum(float(logprobs[len(prompt_ids) + i - 1, t]) for i, t in enumerate(generated))
        assert sample.logprob == pytest.approx(raw, abs=2e-3)
    assert checked >= 2

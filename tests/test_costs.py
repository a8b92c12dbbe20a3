"""Token and FLOP accounting against values worked out by hand."""

from __future__ import annotations

import pytest

from thinkcost.inference.costs import (
    ModelShape,
    RequestCost,
    attention_flops,
    request_flops,
    summarize,
)
from thinkcost.inference.sweeps import subset_costs

# A toy model small enough to add up by hand: N = 100, 2 layers, d_model = 4, so Kaplan's
# attention term is 2·n_layer·t·d_model = 16·t FLOPs for a token with t tokens of context.
SHAPE = ModelShape(params=100, n_layer=2, d_model=4)


def test_attention_term_is_kaplans_sum_over_positions():
    assert attention_flops(SHAPE, 0, 3) == 16 * (1 + 2 + 3)
    assert attention_flops(SHAPE, 3, 5) == 16 * (4 + 5)
    assert attention_flops(SHAPE, 7, 7) == 0


def test_hybrid_request_under_both_conventions():
    # Prompt of 3 tokens, a 2-token rationale, then two choices of 1 and 2 answer tokens.
    cost = RequestCost(task="t", doc_id=0, prompt_tokens=3, generated=[2], answer=[[1, 2]])
    # Paper: 2·N·generated = 2·100·2.
    assert request_flops(cost, SHAPE, "paper") == 400
    # Full: prefill 3 tokens   2·100·3 + 16·(1+2+3)   = 600 + 96  = 696
    #       decode 2 tokens    2·100·2 + 16·(4+5)     = 400 + 144 = 544
    #       choice of 1 token  2·100·1 + 16·6         = 200 + 96  = 296
    #       choice of 2 tokens 2·100·2 + 16·(6+7)     = 400 + 208 = 608
    assert request_flops(cost, SHAPE, "full") == 696 + 544 + 296 + 608


def test_direct_scoring_costs_nothing_under_the_paper_convention():
    cost = RequestCost(task="t", doc_id=0, prompt_tokens=4, generated=[0], answer=[[1, 1, 1]])
    assert request_flops(cost, SHAPE, "paper") == 0
    # Prefill 4: 800 + 16·10; each 1-token choice at context 4: 200 + 16·5.
    assert request_flops(cost, SHAPE, "full") == 800 + 160 + 3 * (200 + 80)


def test_k_samples_share_the_prefill():
    cost = RequestCost(task="t", doc_id=0, prompt_tokens=1, generated=[1, 2], answer=[[1], [1]])
    assert cost.generated_tokens == 3
    assert request_flops(cost, SHAPE, "paper") == 2 * 100 * 3
    prefill = 200 + 16
    sample_1 = (200 + 16 * 2) + (200 + 16 * 3)
    sample_2 = (400 + 16 * (2 + 3)) + (200 + 16 * 4)
    assert request_flops(cost, SHAPE, "full") == prefill + sample_1 + sample_2


def test_k_of_K_samples_cost_the_prefill_once_and_k_over_K_of_the_samples():
    # K = 2 samples of the request above; k = 1 expects half of each sample's branch.
    cost = RequestCost(task="t", doc_id=0, prompt_tokens=1, generated=[1, 2], answer=[[1], [1]])
    prefill = 200 + 16
    sample_1 = (200 + 16 * 2) + (200 + 16 * 3)
    sample_2 = (400 + 16 * (2 + 3)) + (200 + 16 * 4)
    one = subset_costs([cost], SHAPE, 1)
    assert one["generated_tokens_mean"] == 1.5
    assert one["inference_flops_per_request_paper"] == 2 * 100 * 1.5
    assert one["inference_flops_per_request_full"] == prefill + (sample_1 + sample_2) / 2
    both = subset_costs([cost], SHAPE, 2)
    assert both["inference_flops_per_request_full"] == request_flops(cost, SHAPE, "full")


def test_a_search_step_grows_from_its_parents_path():
    # Prompt 1; step 0: 2 tokens from the prompt; step 1: 1 token after step 0 (start 2), a
    # leaf whose one 1-token choice is scored after it.
    cost = RequestCost(
        task="t",
        doc_id=0,
        prompt_tokens=1,
        generated=[2, 1],
        answer=[[], [1]],
        branch_starts=[0, 2],
    )
    prefill = 200 + 16
    step_0 = 400 + 16 * (2 + 3)
    step_1 = 200 + 16 * 4  # its one token sees prompt + step 0 + itself = 4
    choice = 200 + 16 * 5
    assert request_flops(cost, SHAPE, "full") == prefill + step_0 + step_1 + choice
    assert request_flops(cost, SHAPE, "paper") == 2 * 100 * 3


def test_unknown_convention_is_refused():
    with pytest.raises(ValueError, match="unknown FLOP convention 'kaplan'"):
        request_flops(RequestCost("t", 0, 1), SHAPE, "kaplan")


def test_cost_record_means_totals_and_rates():
    costs = [
        RequestCost("t", 0, prompt_tokens=3, generated=[2], answer=[[1, 2]]),
        RequestCost("t", 1, prompt_tokens=5, generated=[4], answer=[[1, 2]], answered=False),
    ]
    record = summarize(
        costs,
        SHAPE,
        wall_seconds=4.0,
        generation_seconds=2.0,
        forward_passes=7,
        forward_tokens=40,
        device="cpu",
        peak_memory_bytes=1024,
    )
    assert record["n_requests"] == 2
    assert record["prompt_tokens_mean"] == 4.0
    assert record["generated_tokens_mean"] == 3.0
    assert record["generated_tokens_total"] == 6
    assert record["inference_flops_per_request_paper"] == 2 * 100 * 3
    assert record["seconds_per_request"] == 2.0
    assert record["generated_tokens_per_second"] == 3.0
    assert record["unanswered"] == 1


def test_shape_from_a_transformers_config():
    config = {"num_hidden_layers": 30, "hidden_size": 576, "model_type": "llama"}
    assert ModelShape.from_config(1.35e8, config) == ModelShape(1.35e8, 30, 576)
    gpt_neox_style = {"n_layer": 12, "n_embd": 768}
    assert ModelShape.from_config(1.6e8, gpt_neox_style) == ModelShape(1.6e8, 12, 768)


def test_a_draft_models_passes_count_in_both_conventions():
    # A 3-token prompt; the draft model ran two passes for it, over 3 and then 4 tokens (no
    # cache): 7 tokens, and Σ L·(L+1) = 3·4 + 4·5 = 32. The model generated 2 tokens.
    draft = ModelShape(params=1000, n_layer=2, d_model=4)
    cost = RequestCost(
        "t", 0, prompt_tokens=3, generated=[2], answer=[[1]], assistant_tokens=7, assistant_pairs=32
    )
    record = summarize(
        [cost],
        SHAPE,
        wall_seconds=1.0,
        generation_seconds=1.0,
        forward_passes=3,
        forward_tokens=6,
        device="cpu",
        peak_memory_bytes=0,
        assistant_shape=draft,
    )
    # Paper: 2·100·2 for the model's tokens + 2·1000·7 for the draft model's = 400 + 14,000.
    assert record["assistant_flops_per_request_paper"] == 14_000
    assert record["inference_flops_per_request_paper"] == 400 + 14_000
    # Full: the draft model's passes with their attention term, 14,000 + 2·4·32 = 14,256, on top
    # of the model's own (prefill 696, decode 544 and a 1-token choice 296, as above).
    assert record["assistant_flops_per_request_full"] == 14_256
    assert record["inference_flops_per_request_full"] == 696 + 544 + 296 + 14_256
    assert record["assistant_tokens_mean"] == 7

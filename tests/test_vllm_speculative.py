"""vLLM's own n-gram speculative decoding, in a module of its own that runs after every other
in-process vLLM test (pytest takes modules in name order).

A second vLLM engine in one process (this test's, with speculation) leaves the first unusable
once it has started ("pipeline model parallel group is not initialized"), and after its n-gram
proposer has imported numba no new engine starts either (vllm 0.32.0). So the other tests share
one engine (conftest.py's `vllm_engine`), and this test, the one that needs a second, comes
last.
"""

from __future__ import annotations

import pytest

pytest.importorskip("vllm", reason="the vllm engine's tests need `make install-vllm`")

from thinkcost.engines import GenerationRequest, SamplingSpec, load_engine


def test_vllms_own_ngram_speculation_keeps_greedy_output(vllm_engine, smollm2_dir):
    """An optimization's `assistant: {prompt_lookup_num_tokens: 3}` on the vllm engine is
    vLLM's n-gram speculative decoding: the greedy rationales stay those of plain decoding,
    and the drafts proposed and accepted are counted."""
    plain = vllm_engine
    speculative = load_engine(
        "vllm",
        str(smollm2_dir),
        dtype="float32",
        max_length=2048,
        speculative={
            "method": "ngram",
            "num_speculative_tokens": 3,
            "prompt_lookup_max": 3,
            "prompt_lookup_min": 1,
        },
    )
    prompts = [
        "Q: Repeat after me: the cat sat on the mat, the cat sat on the mat.\nA:",
        "Q: List the numbers 1, 2, 3, 4, 5, 6, 7, 8.\nA:",
    ]
    spec = SamplingSpec(max_new_tokens=32, stop=("Q:",))
    requests = [GenerationRequest(p) for p in prompts]
    assert speculative.generate(requests, spec) == plain.generate(requests, spec)
    counters = speculative.counters
    assert counters.draft_tokens > 0
    assert 0 < counters.accepted_draft_tokens <= counters.draft_tokens

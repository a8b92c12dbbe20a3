"""Runtime knobs of the hf engine, run for real: int8 weights stored as int8, the compiled
forward the one generation calls, and a dtype the device cannot run refused before loading."""

from __future__ import annotations

import pytest
import torch

from thinkcost.engines import GenerationRequest, SamplingSpec, load_engine
from thinkcost.engines.hf.runtime import RuntimeSettingError, check_dtype, memory_footprint

PROMPTS = ["Q: What is 2 plus 3?\nA:", "Q: Name a colour of the sky.\nA:"]
SPEC = SamplingSpec(max_new_tokens=12, stop=("Q:",))


def test_int8_weights_are_stored_as_int8_and_still_answer(smollm2_dir):
    plain = load_engine("hf", str(smollm2_dir), device="cpu", dtype="float32")
    int8 = load_engine("hf", str(smollm2_dir), device="cpu", dtype="float32", quantization="int8")
    linears = [m for m in int8.model.modules() if type(m).__name__ == "Linear"]
    quantized = [m for m in int8.model.modules() if "quantized" in type(m).__module__]
    assert quantized and not [m for m in linears if "quantized" not in type(m).__module__]
    weight = quantized[0].weight()
    assert weight.dtype == torch.qint8 and weight.int_repr().element_size() == 1
    # The linear layers' weights shrink 4×; the embedding (shared with the output layer in the
    # float model) stays float32.
    full, small = plain.runtime()["model_memory_bytes"], int8.runtime()["model_memory_bytes"]
    assert full == memory_footprint(plain.model) > 4e8
    # 135M weights: the 28M of the embedding stay float32 (113 MB), the 106M linear weights
    # (the output layer's own int8 copy included) take one byte each: about 0.46 of float32.
    assert 0.4 * full < small < 0.55 * full
    assert int8.runtime()["quantization"] == "int8"
    generations = int8.generate([GenerationRequest(p) for p in PROMPTS], SPEC)
    assert all(g.tokens > 0 for (g,) in generations)


@pytest.fixture(scope="module")
def tiny_model_dir(smollm2_dir, tmp_path_factory):
    """A two-layer Llama with random weights and SmolLM2's tokenizer: a real transformers
    model small enough that compiling it takes seconds, not minutes (bench.host_overhead's)."""
    from bench.host_overhead import random_llama

    return random_llama(tmp_path_factory.mktemp("tiny"), smollm2_dir)


def test_the_compiled_forward_is_the_one_generation_calls(tiny_model_dir):
    eager = load_engine("hf", str(tiny_model_dir), device="cpu", draft_tokens=0)
    compiled = load_engine("hf", str(tiny_model_dir), device="cpu", draft_tokens=0, compile=True)
    requests = [GenerationRequest(p) for p in PROMPTS]
    expected = eager.generate(requests, SPEC)
    assert compiled.generate(requests, SPEC) == expected
    runtime = compiled.runtime()
    # Every forward pass of the engine went through the compiled function …
    assert runtime["compiled_calls"] == compiled.counters.forward_passes > 0
    # … which compiled at least one graph, the warm-up timed apart.
    assert runtime["compiled_graphs"] >= 1 and runtime["compile_warmup_seconds"] > 0
    # Once warm (a second run may still compile the dynamic-shape graph of a shape the first
    # met once), a run reuses the graphs: more calls, no new graph and no more warm-up.
    assert compiled.generate(requests, SPEC) == expected
    warm = compiled.runtime()
    assert compiled.generate(requests, SPEC) == expected
    again = compiled.runtime()
    assert again["compiled_calls"] > warm["compiled_calls"]
    assert again["compiled_graphs"] == warm["compiled_graphs"]
    assert again["compile_warmup_seconds"] == warm["compile_warmup_seconds"]
    assert "compiled_calls" not in eager.runtime()


def test_a_gpu_without_bfloat16_is_refused_before_the_model_loads(monkeypatch, tmp_path):
    # This machine has no GPU: torch.cuda's answers are replaced by those of a V100 (a test
    # double for hardware it cannot have). The model path does not exist, so an error about
    # bfloat16 proves the check ran before anything was read.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla V100-SXM2")
    with pytest.raises(RuntimeSettingError, match="Tesla V100-SXM2 does not support bfloat16"):
        load_engine("hf", str(tmp_path / "absent"), device="cuda", dtype="bfloat16")


def test_a_missing_gpu_or_an_unavailable_quantization_is_named():
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeSettingError, match="torch sees no GPU"):
            check_dtype(torch.device("cuda"), "float16")
    with pytest.raises(RuntimeSettingError, match="on a CPU only int8"):
        load_engine("hf", "/nonexistent", device="cpu", quantization="int4")
    check_dtype(torch.device("cpu"), "bfloat16")  # this CPU computes in bfloat16


def test_assisted_decoding_gives_plain_greedy_decodings_output(smollm2_dir, tiny_model_dir):
    """Speculative decoding with a draft model: the rationale is the one plain greedy decoding
    gives, whatever the assistant. The model as its own assistant drafts exactly what it would
    say, so nearly every draft token is accepted; a random two-layer model almost none."""
    spec = SamplingSpec(max_new_tokens=24, stop=("Q:",))
    requests = [GenerationRequest(p) for p in PROMPTS]
    plain = load_engine("hf", str(smollm2_dir), device="cpu", draft_tokens=0)
    expected = plain.generate(requests, spec)
    for assistant, acceptance in ((smollm2_dir, (0.9, 1.0)), (tiny_model_dir, (0.0, 0.2))):
        assisted = load_engine(
            "hf", str(smollm2_dir), device="cpu", draft_tokens=4, assistant=str(assistant)
        )
        assert assisted.generate(requests, spec) == expected
        counters = assisted.counters
        assert counters.assistant_forward_passes > 0 and counters.draft_tokens > 0
        rate = counters.accepted_draft_tokens / counters.draft_tokens
        assert acceptance[0] <= rate <= acceptance[1], (assistant, rate)
        if assistant == smollm2_dir:  # accepted drafts are decode steps that did not run
            assert counters.forward_passes < plain.counters.forward_passes


def test_a_draft_models_passes_are_charged_to_the_questions_they_ran_for(
    smollm2_dir, tiny_model_dir, tmp_path
):
    """Each question carries its draft model's tokens in its own cost record: they add up to
    the engine's count of the draft model's passes, and a resumed cell's questions, whose
    passes ran in an earlier attempt, carry the same as an uninterrupted cell's."""
    from lm_eval.api.instance import Instance

    from thinkcost.inference.backend import ThinkcostLM

    questions = [(p, [" 5", " blue"]) for p in PROMPTS] + [("Q: Is fire cold?\nA:", [" no"])]
    requests = [
        Instance("loglikelihood", {}, (context, choice), i, ("toy", d, 1))
        for d, (context, choices) in enumerate(questions)
        for i, choice in enumerate(choices)
    ]

    def backend(**options):
        return ThinkcostLM(
            pretrained=str(smollm2_dir), device="cpu", dtype="float32", max_new_tokens=12,
            batch_size=1, draft_tokens=3, assistant=str(tiny_model_dir), **options,
        )  # fmt: skip

    whole = backend()
    whole.loglikelihood(requests)
    tokens = [c.assistant_tokens for c in whole.request_costs]
    assert all(t > 0 for t in tokens)
    assert sum(tokens) == whole.engine.counters.assistant_forward_tokens

    checkpoint = tmp_path / "checkpoint.jsonl"
    backend(checkpoint=str(checkpoint)).loglikelihood(requests)
    lines = checkpoint.read_text().splitlines()
    checkpoint.write_text("\n".join(lines[:2]) + "\n")  # killed after the first question
    resumed = backend(checkpoint=str(checkpoint))
    resumed.loglikelihood(requests)
    assert resumed.resumed_requests == 1
    assert [c.assistant_tokens for c in resumed.request_costs] == tokens
    assert [c.assistant_pairs for c in resumed.request_costs] == [
        c.assistant_pairs for c in whole.request_costs
    ]
    # This attempt's own passes are those of the questions it ran, not all of them.
    assert resumed.engine.counters.assistant_forward_tokens == sum(tokens[1:])

"""The hybrid-format backend on the real SmolLM2-135M-Instruct.

The scorer's log-likelihoods are checked against a computation written directly with
transformers on the same strings, and the generated-token counts against the tokenizer.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from lm_eval.api.instance import Instance
from transformers import AutoModelForCausalLM, AutoTokenizer

from thinkcost.engines import GenerationRequest, SamplingSpec
from thinkcost.inference.backend import ThinkcostLM
from thinkcost.inference.questions import generation_prompt, scoring_context, whole_question

REPO = Path(__file__).resolve().parents[1]
QUESTIONS = [
    ("Q: Is the sky blue on a clear day?\nOptions:\n- yes\n- no\nA:", [" yes", " no"]),
    (
        "Q: Alice has 3 apples and gives one away. How many are left?\nOptions:\n- 1\n- 2\n- 3\nA:",
        [" 1", " 2", " 3"],
    ),
    (
        "Q: Which is heavier, a feather or a brick?\nOptions:\n- a feather\n- a brick\nA:",
        [" a feather", " a brick"],
    ),
]
TRIGGER = "Let's think step by step."
T = 12


def instances(questions):
    made = []
    for doc_id, (context, choices) in enumerate(questions):
        for choice in choices:
            made.append(
                Instance(
                    request_type="loglikelihood",
                    doc={},
                    arguments=(context, choice),
                    idx=len(made),
                    metadata=("toy", doc_id, 1),
                )
            )
    return made


@pytest.fixture(scope="module")
def reference(smollm2_dir):
    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
    model = AutoModelForCausalLM.from_pretrained(smollm2_dir, dtype=torch.float32).eval()
    return tokenizer, model


def backend(model_dir, **knobs) -> ThinkcostLM:
    """The backend on the real model, on CPU in float32 like the reference computations."""
    return ThinkcostLM(pretrained=str(model_dir), device="cpu", dtype="float32", **knobs)


@pytest.fixture(scope="module")
def hybrid(smollm2_dir):
    return backend(smollm2_dir, batch_size=2, trigger=TRIGGER, max_new_tokens=T)


def direct_loglikelihood(tokenizer, model, context: str, continuation: str) -> float:
    """log p(continuation | context), tokenized as lm-eval does (whole string, split at the
    context's length), computed from one plain forward pass."""
    context_ids = tokenizer(context).input_ids
    whole = tokenizer(context + continuation).input_ids
    with torch.no_grad():
        logits = model(torch.tensor([whole])).logits[0]
    logprobs = torch.log_softmax(logits.float(), dim=-1)
    return float(
        sum(
            logprobs[position - 1, whole[position]]
            for position in range(len(context_ids), len(whole))
        )
    )


def test_hybrid_scores_equal_direct_transformers_loglikelihoods(hybrid, reference):
    tokenizer, model = reference
    requests = instances(QUESTIONS)
    scores = hybrid.loglikelihood(requests)
    assert len(scores) == len(requests)
    for request, (loglik, _) in zip(requests, scores, strict=True):
        context, continuation = request.args
        (generation,) = hybrid.rationales[("toy", request.doc_id)]
        scored_after = f"{context} {TRIGGER}{generation.text}".rstrip() + " The answer is:"
        assert (
            scoring_context(generation_prompt(context, TRIGGER), generation.text, "The answer is:")
            == scored_after
        )
        expected = direct_loglikelihood(tokenizer, model, scored_after, continuation)
        assert loglik == pytest.approx(expected, abs=2e-3, rel=1e-4)


def test_rationale_is_the_models_greedy_continuation(hybrid, reference):
    tokenizer, model = reference
    context = QUESTIONS[0][0]
    prompt = generation_prompt(context, TRIGGER)
    assert prompt == f"{context} {TRIGGER}"
    ids = tokenizer(prompt, return_tensors="pt").input_ids
    with torch.no_grad():
        greedy = model.generate(ids, max_new_tokens=T, do_sample=False)[0, ids.shape[1] :].tolist()
    spec = SamplingSpec(max_new_tokens=T, stop=("Q:", "The answer is"))
    ((generation,),) = hybrid.engine.generate([GenerationRequest(prompt)], spec)
    assert tokenizer.decode(greedy, skip_special_tokens=True).startswith(generation.text)
    # The count is the model's own tokens up to the stop: never words, never more than T.
    assert 1 <= generation.tokens <= T
    if generation.stopped_by == "length":
        assert generation.tokens == T
    assert tokenizer.decode(greedy[: generation.tokens], skip_special_tokens=True).startswith(
        generation.text
    )


def test_cut_counts_tokens_up_to_the_stop_sequence(hybrid, reference):
    tokenizer, _ = reference
    text = " First, the sky is blue.\nQ: Next question"
    tokens = tokenizer(text, add_special_tokens=False).input_ids
    generation = hybrid.engine.cut(tokens, ["Q:"])
    assert generation.text == " First, the sky is blue.\n"
    assert generation.stopped_by == "stop:Q:"
    # The fewest tokens whose text already contains "Q:".
    assert "Q:" in tokenizer.decode(tokens[: generation.tokens])
    assert "Q:" not in tokenizer.decode(tokens[: generation.tokens - 1])

    with_eos = [*tokenizer(" Done.", add_special_tokens=False).input_ids, hybrid.eot_token_id, 5, 6]
    generation = hybrid.engine.cut(with_eos, ["Q:"])
    assert (generation.text, generation.stopped_by) == (" Done.", "eos")
    assert generation.tokens == len(with_eos) - 2  # the EOS counts; what follows it does not


def test_costs_are_recorded_per_question(hybrid):
    hybrid.request_costs.clear()
    hybrid.loglikelihood(instances(QUESTIONS[:2]))
    costs = {cost.doc_id: cost for cost in hybrid.request_costs}
    assert sorted(costs) == [0, 1]
    for doc_id, cost in costs.items():
        context, choices = QUESTIONS[doc_id]
        (generation,) = hybrid.rationales[("toy", doc_id)]
        assert cost.prompt_tokens == len(hybrid.tok_encode(f"{context} {TRIGGER}"))
        assert cost.generated == [generation.tokens]
        assert len(cost.answer[0]) == len(choices)


def test_direct_format_scores_each_choice_after_the_question(smollm2_dir, reference):
    tokenizer, model = reference
    direct = backend(smollm2_dir, format="loglikelihood")
    requests = instances(QUESTIONS[:1])
    scores = direct.loglikelihood(requests)
    for request, (loglik, _) in zip(requests, scores, strict=True):
        assert loglik == pytest.approx(
            direct_loglikelihood(tokenizer, model, *request.args), abs=2e-3
        )
    assert direct.request_costs[0].generated == [0]
    assert direct.rationales == {}


@pytest.mark.parametrize("vote", ["majority", "weighted", "best_of_n"])
def test_votes_over_k_sampled_rationales(smollm2_dir, reference, vote):
    """k = 3 sampled rationales per question: each sample's answer, its own sequence
    log-likelihood and the vote are recomputed independently with plain forward passes; the
    cost record counts every sample's tokens, and the same seed gives the same samples."""
    tokenizer, model = reference

    def sampler():
        return backend(
            smollm2_dir,
            batch_size=4,
            trigger=TRIGGER,
            max_new_tokens=T,
            do_sample=True,
            temperature=1.0,
            num_samples=3,
            vote=vote,
            seed=7,
        )

    sc = sampler()
    requests = instances(QUESTIONS[:2])
    scores = sc.loglikelihood(requests)
    for doc_id, (context, choices) in enumerate(QUESTIONS[:2]):
        generations = sc.rationales[("toy", doc_id)]
        assert len(generations) == 3
        assert len({g.text for g in generations}) > 1, "sampling gave identical rationales"
        prompt = generation_prompt(context, TRIGGER)
        said, own = [], []
        for g in generations:
            after = scoring_context(prompt, g.text, "The answer is:")
            logliks = [direct_loglikelihood(tokenizer, model, after, c) for c in choices]
            choice = max(range(len(choices)), key=logliks.__getitem__)
            said.append(choice)
            # The sample's score: mean log-probability per token of the tokens it generated
            # (their log-probability as generated: tests/test_engine_hf.py checks it) and of
            # the chosen choice.
            count = g.tokens + len(tokenizer(choices[choice], add_special_tokens=False).input_ids)
            own.append((g.logprob + logliks[choice]) / count)
        record = sc.samples[("toy", doc_id)]
        assert record["answers"] == said
        assert record["scores"] == pytest.approx(own, abs=2e-3)
        if vote == "best_of_n":
            expected = said[max(range(3), key=lambda i: (own[i], -i))]
        else:
            weight = [math.exp(o) if vote == "weighted" else 1.0 for o in own]
            tally = {a: sum(w for s_, w in zip(said, weight, strict=True) if s_ == a) for a in said}
            expected = max(
                tally,
                key=lambda a: (
                    tally[a],
                    max(o for s_, o in zip(said, own, strict=True) if s_ == a),
                    -said.index(a),
                ),
            )
        combined = [
            score
            for request, (score, _) in zip(requests, scores, strict=True)
            if request.doc_id == doc_id
        ]
        assert max(range(len(choices)), key=combined.__getitem__) == expected
        (cost,) = [c for c in sc.request_costs if c.doc_id == doc_id]
        assert cost.generated == [g.tokens for g in generations]
        assert len(cost.answer) == 3

    again = sampler()
    again.loglikelihood(instances(QUESTIONS[:2]))
    assert again.rationales == sc.rationales


def test_a_retried_job_resumes_from_its_checkpoint(smollm2_dir, tmp_path):
    checkpoint = tmp_path / "checkpoint.jsonl"
    knobs = {"batch_size": 2, "trigger": TRIGGER, "max_new_tokens": T}
    first = backend(smollm2_dir, **knobs, checkpoint=str(checkpoint))
    scores = first.loglikelihood(instances(QUESTIONS))
    assert len(checkpoint.read_text().splitlines()) == 1 + len(QUESTIONS)

    # As if the job had been killed while writing its last line.
    lines = checkpoint.read_text().splitlines()
    checkpoint.write_text("\n".join([*lines[:-1], lines[-1][:20]]) + "\n")
    second = backend(smollm2_dir, **knobs, checkpoint=str(checkpoint))
    passes_after_loading = second.forward_passes
    resumed = second.loglikelihood(instances(QUESTIONS))
    # The rerun question ran in a batch of another shape: equal up to float32 noise.
    assert [s for s, _ in resumed] == pytest.approx([s for s, _ in scores], abs=1e-4)
    assert [g for _, g in resumed] == [g for _, g in scores]
    assert second.resumed_requests == len(QUESTIONS) - 1  # only the lost question ran again
    assert second.forward_passes > passes_after_loading
    assert [c.to_dict() for c in second.request_costs] == [c.to_dict() for c in first.request_costs]

    # Other settings never reuse the file.
    other = backend(smollm2_dir, **{**knobs, "trigger": ""}, checkpoint=str(checkpoint))
    other.loglikelihood(instances(QUESTIONS[:1]))
    assert other.resumed_requests == 0


def cut_inside_line(checkpoint, number: int) -> None:
    """What a kill while writing line `number` leaves: the lines before it and part of it, with
    no newline after."""
    lines = checkpoint.read_text().splitlines()
    checkpoint.write_text("".join(f"{line}\n" for line in lines[:number]) + lines[number][:20])


def test_a_cell_killed_twice_mid_write_keeps_every_finished_question(smollm2_dir, tmp_path):
    knobs = {"batch_size": 2, "trigger": TRIGGER, "max_new_tokens": T}
    uninterrupted = backend(smollm2_dir, **knobs).loglikelihood(instances(QUESTIONS))
    checkpoint = tmp_path / "checkpoint.jsonl"
    backend(smollm2_dir, **knobs, checkpoint=str(checkpoint)).loglikelihood(instances(QUESTIONS))
    cut_inside_line(checkpoint, 2)  # killed writing the second question
    second = backend(smollm2_dir, **knobs, checkpoint=str(checkpoint))
    second.loglikelihood(instances(QUESTIONS))
    assert second.resumed_requests == 1
    cut_inside_line(checkpoint, len(QUESTIONS))  # killed again, writing the last question
    third = backend(smollm2_dir, **knobs, checkpoint=str(checkpoint))
    results = third.loglikelihood(instances(QUESTIONS))
    assert third.resumed_requests == len(QUESTIONS) - 1  # all but the one being written
    assert [g for _, g in results] == [g for _, g in uninterrupted]
    assert [s for s, _ in results] == pytest.approx([s for s, _ in uninterrupted], abs=1e-4)
    assert len(checkpoint.read_text().splitlines()) == 1 + len(QUESTIONS)


def test_a_resumed_sampled_cell_draws_the_samples_of_an_uninterrupted_run(smollm2_dir, tmp_path):
    """Samples are seeded per question: the questions left after a kill are drawn exactly as
    they would have been, though they now run in another batch, after other questions."""
    knobs = {
        "trigger": TRIGGER,
        "max_new_tokens": T,
        "do_sample": True,
        "num_samples": 2,
        "seed": 11,
        "questions_per_checkpoint": 1,
    }
    uninterrupted = backend(smollm2_dir, batch_size=8, **knobs)
    uninterrupted.loglikelihood(instances(QUESTIONS))

    checkpoint = tmp_path / "checkpoint.jsonl"
    first = backend(smollm2_dir, batch_size=2, **knobs, checkpoint=str(checkpoint))
    first.loglikelihood(instances(QUESTIONS))
    lines = checkpoint.read_text().splitlines()
    checkpoint.write_text("\n".join(lines[:2]) + "\n")  # killed after the first question
    resumed = backend(smollm2_dir, batch_size=1, **knobs, checkpoint=str(checkpoint))
    resumed.loglikelihood(instances(QUESTIONS))
    assert resumed.resumed_requests == 1
    assert resumed.rationales == uninterrupted.rationales


# ---------------------------------------------------------------------------- partial scoring

WINOGRANDE_LOCAL = "thinkcost_winogrande_local"  # tests/tasks/winogrande_local.yaml, 4 questions


def run_winogrande_local(model):
    import lm_eval

    from thinkcost.config.tasks import task_manager

    return lm_eval.simple_evaluate(
        model=model,
        tasks=[WINOGRANDE_LOCAL],
        task_manager=task_manager(WINOGRANDE_LOCAL, [REPO / "tests" / "tasks"]),
        log_samples=True,
    )


def test_a_partially_scored_question_gets_one_rationale_and_one_request(smollm2_dir, reference):
    """WinoGrande's shape: each choice its own context, one shared continuation. The hybrid
    format generates one rationale per question, after the question shown whole (both full
    sentences), then scores the continuation after "The answer is:" and each choice's own
    sentence start."""
    tokenizer, model = reference
    hybrid = backend(smollm2_dir, batch_size=4, trigger=TRIGGER, max_new_tokens=T)
    output = run_winogrande_local(hybrid)
    samples = output["samples"][WINOGRANDE_LOCAL]
    assert len(samples) == 4
    assert len(hybrid.request_costs) == 4  # one request per question, not one per choice
    assert sorted(cost.doc_id for cost in hybrid.request_costs) == [0, 1, 2, 3]
    for sample in samples:
        contexts = [arguments[0] for arguments in sample["arguments"]]
        continuation = sample["arguments"][0][1]
        assert len(set(contexts)) == 2 and {a[1] for a in sample["arguments"]} == {continuation}
        (generation,) = hybrid.rationales[(WINOGRANDE_LOCAL, sample["doc_id"])]
        prompt = generation_prompt(whole_question(contexts, [continuation] * 2), TRIGGER)
        # Both full sentences are in the one prompt the rationale is generated after.
        for context in contexts:
            assert f"{context}{continuation}" in prompt
        ids = tokenizer(prompt, return_tensors="pt").input_ids
        with torch.no_grad():
            greedy = model.generate(ids, max_new_tokens=T, do_sample=False)[0, ids.shape[1] :]
        assert tokenizer.decode(greedy, skip_special_tokens=True).startswith(generation.text)
        answer = scoring_context(prompt, generation.text, "The answer is:")
        for context, response in zip(contexts, sample["resps"], strict=True):
            expected = direct_loglikelihood(tokenizer, model, f"{answer} {context}", continuation)
            assert response[0][0] == pytest.approx(expected, abs=2e-3, rel=1e-4)
    cost = hybrid.request_costs[0]
    assert len(cost.generated) == 1 and len(cost.answer[0]) == 2


def test_direct_format_scores_a_partially_scored_question_as_lm_eval_does(smollm2_dir, reference):
    tokenizer, model = reference
    direct = backend(smollm2_dir, format="loglikelihood")
    output = run_winogrande_local(direct)
    for sample in output["samples"][WINOGRANDE_LOCAL]:
        for (context, continuation), response in zip(
            sample["arguments"], sample["resps"], strict=True
        ):
            expected = direct_loglikelihood(tokenizer, model, context, continuation)
            assert response[0][0] == pytest.approx(expected, abs=2e-3)
    assert len(direct.request_costs) == 4 and direct.rationales == {}


# ---------------------------------------------------------------------------- bad input


def test_a_budget_beyond_the_context_is_refused_as_the_model_loads(smollm2_dir):
    with pytest.raises(
        ValueError,
        match=r"max_new_tokens=64 does not fit the context of .* "
        r"\(64 tokens\) and leaves no room for the prompt",
    ):
        backend(smollm2_dir, max_new_tokens=64, max_length=64)
    # The direct format generates nothing: any budget goes.
    backend(smollm2_dir, format="loglikelihood", max_new_tokens=64, max_length=64)


# ---------------------------------------------------------------------------- chat template

BLANK_LOCAL = "thinkcost_blank_local"  # tests/tasks/blank_local.yaml, 4 questions


def test_under_a_chat_template_the_rationale_and_the_answer_continue_the_assistant_turn(
    smollm2_dir, reference
):
    import lm_eval

    from thinkcost.config.tasks import task_manager

    tokenizer, model = reference
    hybrid = backend(smollm2_dir, batch_size=4, trigger=TRIGGER, max_new_tokens=T)
    output = lm_eval.simple_evaluate(
        model=hybrid,
        tasks=[BLANK_LOCAL],
        task_manager=task_manager(BLANK_LOCAL, [REPO / "tests" / "tasks"]),
        log_samples=True,
        apply_chat_template=True,
    )
    for sample in output["samples"][BLANK_LOCAL]:
        context = sample["arguments"][0][0]
        # lm-eval's context is the user turn and an open assistant turn; choices lose their space.
        assert context.endswith("<|im_end|>\n<|im_start|>assistant\n")
        assert not sample["arguments"][0][1].startswith(" ")
        prompt = generation_prompt(context, TRIGGER)
        assert prompt.endswith(f"<|im_start|>assistant\n{TRIGGER}")
        # The template's special tokens, once: nothing added in front of them.
        ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt").input_ids
        assert hybrid.engine.tokenize(prompt) == ids[0].tolist()
        (generation,) = hybrid.rationales[(BLANK_LOCAL, sample["doc_id"])]
        with torch.no_grad():
            greedy = model.generate(ids, max_new_tokens=T, do_sample=False)[0, ids.shape[1] :]
        assert tokenizer.decode(greedy, skip_special_tokens=True).startswith(generation.text)
        answer = scoring_context(prompt, generation.text, "The answer is:")
        assert (
            answer.count("<|im_start|>assistant") == 1
            and "<|im_end|>" not in answer[len(context) :]
        )
        for (_, choice), response in zip(sample["arguments"], sample["resps"], strict=True):
            expected = direct_loglikelihood(tokenizer, model, answer, f" {choice}")
            assert response[0][0] == pytest.approx(expected, abs=2e-3, rel=1e-4)


def test_under_a_chat_template_a_free_form_answer_is_the_assistant_turn(
    smollm2_dir, reference, shared_data
):
    import lm_eval

    from thinkcost.config.tasks import task_manager

    tokenizer, model = reference
    freeform = backend(smollm2_dir, batch_size=2, trigger=TRIGGER, max_new_tokens=16)
    output = lm_eval.simple_evaluate(
        model=freeform,
        tasks=["thinkcost_gsm8k_shared"],
        task_manager=task_manager("thinkcost_gsm8k_shared", [REPO / "tests" / "tasks"]),
        limit=2,
        log_samples=True,
        apply_chat_template=True,
    )
    for sample in output["samples"]["thinkcost_gsm8k_shared"]:
        context = sample["arguments"][0][0]
        assert context.endswith("<|im_start|>assistant\n")
        prompt = generation_prompt(context, TRIGGER)
        ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt").input_ids
        with torch.no_grad():
            greedy = model.generate(ids, max_new_tokens=16, do_sample=False)[0, ids.shape[1] :]
        (generation,) = freeform.rationales[("thinkcost_gsm8k_shared", sample["doc_id"])]
        assert sample["resps"][0][0] == generation.text
        assert tokenizer.decode(greedy, skip_special_tokens=True).startswith(generation.text)
        assert generation.tokens >= 1

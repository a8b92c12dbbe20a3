"""The vllm engine (vLLM's CPU build, `make install-vllm`) against the hf engine, on the real
SmolLM2-135M-Instruct: same greedy rationales and chosen answers on the default tasks, close
log-likelihoods, seeded samples, and a resumed cell."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest

pytest.importorskip("vllm", reason="the vllm engine's tests need `make install-vllm`")

from thinkcost.engines import GenerationRequest, SamplingSpec, load_engine
from thinkcost.inference.backend import ThinkcostLM

REPO = Path(__file__).resolve().parents[1]
TRIGGER = "Let's think step by step."
T = 48
LOGLIK_ABS = 2e-3  # float32 sums in another order (other kernels, other batch shapes)
DEFAULT_TASKS = {
    "thinkcost_bbh_logical_deduction_three_objects": "logical_deduction_three_objects",
    "thinkcost_bbh_date_understanding": "date_understanding",
    "thinkcost_bbh_tracking_shuffled_objects_three_objects": (
        "tracking_shuffled_objects_three_objects"
    ),
    "thinkcost_bbh_navigate": "navigate",
}


@pytest.fixture(scope="module")
def engines(smollm2_dir, vllm_engine):
    hf = load_engine("hf", str(smollm2_dir), dtype="float32", max_batch_size=8)
    return hf, vllm_engine


def samples(model: ThinkcostLM, task: str, task_dir: Path, limit: int = 3) -> list[dict]:
    """lm-eval's per-sample log of `task` (its YAML in `task_dir`), first `limit` questions."""
    import lm_eval

    from thinkcost.config.tasks import task_manager

    output = lm_eval.simple_evaluate(
        model=model,
        tasks=[task],
        task_manager=task_manager(task, [task_dir]),
        limit=limit,
        log_samples=True,
    )
    return output["samples"][task]


def run_default_tasks(engine) -> dict:
    model = ThinkcostLM(pretrained="", engine=engine, trigger=TRIGGER, max_new_tokens=T)
    results = {task: samples(model, task, REPO / "config" / "tasks") for task in DEFAULT_TASKS}
    return {"samples": results, "rationales": model.rationales, "costs": model.request_costs}


def test_greedy_rationales_and_answers_equal_the_hf_engines(
    engines, bbh_data, tmp_path, monkeypatch
):
    # The task YAMLs read the staged data relative to the working directory.
    staged = tmp_path / "results" / "stage" / "data"
    staged.mkdir(parents=True)
    (staged / "bbh").symlink_to(bbh_data)
    monkeypatch.chdir(tmp_path)
    hf, vllm = engines
    ours, theirs = run_default_tasks(hf), run_default_tasks(vllm)
    assert ours["rationales"].keys() == theirs["rationales"].keys()
    assert len(ours["rationales"]) == 4 * 3
    for key, (generation,) in ours["rationales"].items():
        (other,) = theirs["rationales"][key]
        assert (other.text, other.tokens, other.stopped_by) == (
            generation.text,
            generation.tokens,
            generation.stopped_by,
        ), key
    for task in DEFAULT_TASKS:
        for a, b in zip(ours["samples"][task], theirs["samples"][task], strict=True):
            logliks_a = [r[0][0] for r in a["resps"]]
            logliks_b = [r[0][0] for r in b["resps"]]
            assert logliks_b == pytest.approx(logliks_a, abs=LOGLIK_ABS)
            assert logliks_a.index(max(logliks_a)) == logliks_b.index(max(logliks_b))
    # The same questions cost the same tokens, counted with the model's tokenizer.
    key = lambda cost: (cost.task, cost.doc_id)  # noqa: E731
    for a, b in zip(sorted(ours["costs"], key=key), sorted(theirs["costs"], key=key), strict=True):
        assert (a.prompt_tokens, a.generated, a.answer) == (b.prompt_tokens, b.generated, b.answer)
    # vLLM's own count of generated tokens holds ours (which stops where the stop string ends).
    assert vllm.counters.decode_tokens >= vllm.counters.generated_tokens > 0
    assert vllm.counters.forward_passes > 0 and vllm.counters.forward_tokens > 0


def test_k_samples_are_seeded_per_question(engines):
    _, vllm = engines
    spec = SamplingSpec(max_new_tokens=16, do_sample=True, temperature=0.8, seed=7)
    prompt = f"Q: Alice has 3 apples and gives one away. How many are left?\nA: {TRIGGER}"
    alone = vllm.generate([GenerationRequest(prompt, 4, "q1")], spec)[0]
    in_company = vllm.generate(
        [
            GenerationRequest("The capital of France is", 3, "q0"),
            GenerationRequest(prompt, 4, "q1"),
        ],
        spec,
    )[1]
    assert [g.text for g in alone] == [g.text for g in in_company]
    assert len({g.text for g in alone}) > 1  # k different samples
    other_key = vllm.generate([GenerationRequest(prompt, 4, "q2")], spec)[0]
    assert [g.text for g in other_key] != [g.text for g in alone]


def test_a_resumed_cell_continues_from_its_checkpoint(engines, tmp_path):
    from lm_eval.api.instance import Instance

    _, vllm = engines
    questions = [
        ("Q: Is the sky blue on a clear day?\nA:", [" yes", " no"]),
        ("Q: Which is heavier, a feather or a brick?\nA:", [" a feather", " a brick"]),
        ("Q: Is fire cold?\nA:", [" yes", " no"]),
    ]
    requests = [
        Instance("loglikelihood", {}, (context, choice), len(questions) * d + i, ("toy", d, 1))
        for d, (context, choices) in enumerate(questions)
        for i, choice in enumerate(choices)
    ]
    checkpoint = tmp_path / "checkpoint.jsonl"
    knobs = {"engine": vllm, "trigger": TRIGGER, "max_new_tokens": 16}
    first = ThinkcostLM(pretrained="", checkpoint=str(checkpoint), **knobs)
    scores = first.loglikelihood(requests)
    lines = checkpoint.read_text().splitlines()
    assert len(lines) == 1 + len(questions)
    checkpoint.write_text("\n".join([*lines[:-1], lines[-1][:20]]) + "\n")  # killed mid-write
    second = ThinkcostLM(pretrained="", checkpoint=str(checkpoint), **knobs)
    resumed = second.loglikelihood(requests)
    assert second.resumed_requests == len(questions) - 1
    assert [s for s, _ in resumed] == pytest.approx([s for s, _ in scores], abs=LOGLIK_ABS)
    assert all(math.isfinite(s) for s, _ in resumed)
    assert os.path.exists(checkpoint)


def test_scores_read_from_the_prefix_cache_are_never_stale(engines):
    """Scoring reads vLLM's prefix cache, whose cached rows carry stale log-probabilities (vLLM
    issue 42019). Scored a second time, in the other order, each choice below finds its own
    rows in the cache: the engine must notice and score it again, so both passes equal the hf
    engine's scores."""
    from thinkcost.engines import ScoreRequest

    hf, vllm = engines
    block = vllm.llm.llm_engine.vllm_config.cache_config.block_size
    choices = (" (A)", " (B)", " yes")
    requests = []
    for extra in (0, 1, 2):
        # The first choice ends 1-3 tokens past two full blocks: its rows sit in the second.
        words = 2 * block - 64  # " the" is one token: add them until the length is right
        while True:
            context = "Q: count the words." + " the" * words + "\nThe answer is:"
            context_tokens, choice_tokens = vllm.encode_pair(context, choices[0])
            if len(context_tokens) + len(choice_tokens) >= 2 * block + 1 + extra:
                break
            words += 1
        requests.append(ScoreRequest(context, choices))
    first = vllm.score(requests)
    rescored = vllm.counters.rescored_choices
    second = vllm.score(requests[::-1])[::-1]
    assert vllm.counters.rescored_choices > rescored  # the cache did hold their rows
    reference = hf.score(requests)
    for scores in (first, second):
        for ours, theirs in zip(scores, reference, strict=True):
            assert [s for s, _ in ours] == pytest.approx([s for s, _ in theirs], abs=LOGLIK_ABS)
            assert [g for _, g in ours] == [g for _, g in theirs]


def test_free_form_answers_equal_the_hf_engines(engines, shared_data):
    task = "thinkcost_gsm8k_shared"  # tests/tasks/gsm8k_shared.yaml, from ../shared/data
    texts = []
    for engine in engines:
        model = ThinkcostLM(pretrained="", engine=engine, trigger=TRIGGER, max_new_tokens=T)
        texts.append([s["resps"][0][0] for s in samples(model, task, REPO / "tests" / "tasks")])
    assert texts[0] == texts[1]
    assert all(texts[0])


def test_votes_and_tree_search_run_on_vllm_with_the_hf_engines_scores(engines):
    """The strategies use only generate and score, so they run on vLLM unchanged: a sample's
    score there equals the hf engine's on the same text, the vote follows the documented rule,
    and a seeded tree search keeps its budget and repeats."""
    from thinkcost.inference.questions import Question, generation_prompt
    from thinkcost.inference.sample_scores import sample_scores
    from thinkcost.inference.strategies import Hybrid
    from thinkcost.inference.tree_search import SearchSettings
    from thinkcost.inference.voting import ranking

    hf, vllm = engines
    question = Question(
        "sky", "Q: Is the sky blue on a clear day?\nOptions:\n- yes\n- no\nA:", (" yes", " no")
    )
    spec = SamplingSpec(max_new_tokens=16, stop=("Q:", "The answer is"), do_sample=True, seed=2)
    (voted,) = Hybrid(spec=spec, trigger=TRIGGER, num_samples=3, vote="weighted").answer(
        vllm, [question]
    )
    texts = [g.text for g in voted.generations]
    prompt = generation_prompt(question.context, TRIGGER)
    answers = voted.samples["answers"]
    contexts = [f"{prompt}{t}".rstrip() + " The answer is:" for t in texts]
    chosen = [(context, question.choices[a]) for context, a in zip(contexts, answers, strict=True)]
    on_hf, _ = sample_scores(hf, [prompt] * 3, texts, chosen)
    # vLLM's score is that of the tokens it generated; the hf engine's here, that of the text:
    # the same where nothing (a stop string, EOS) was cut off the text.
    cut = [g.stopped_by == "length" for g in voted.generations]
    assert any(cut)
    kept = [s for s, c in zip(voted.samples["scores"], cut, strict=True) if c]
    assert kept == pytest.approx([s for s, c in zip(on_hf, cut, strict=True) if c], abs=LOGLIK_ABS)
    winner = ranking("weighted", answers, voted.samples["scores"], 2)[0]
    assert max(range(2), key=lambda c: voted.scores[c][0]) == winner

    settings = SearchSettings(width=2, max_depth=3, step_tokens=8, token_budget=24)
    searched = Hybrid(spec=spec, trigger=TRIGGER, vote="best_of_n", search=settings)
    (first,), (again,) = searched.answer(vllm, [question]), searched.answer(vllm, [question])
    assert sum(first.cost.generated) <= 24
    assert [g.text for g in first.generations] == [g.text for g in again.generations]

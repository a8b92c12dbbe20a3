"""The hf engine on the real SmolLM2-135M-Instruct, against plain transformers.

The engine's fast path (continuous batching, one prefill shared by k samples, scoring on cached
prefixes) must give what the straightforward path gives: transformers' own greedy `generate`,
one prompt at a time, and one plain forward pass over context + continuation.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from thinkcost.engines import GenerationRequest, SamplingSpec, ScoreRequest, load_engine
from thinkcost.engines.hf import drafting
from thinkcost.engines.hf.batch import Row
from thinkcost.engines.hf.drafting import LOOKUP_KINDS, PromptLookup, after_latest

PROMPTS = [
    "Q: Is the sky blue on a clear day?\nA: Let's think step by step.",
    "Q: What is 2+3?\nA: Let's think step by step.",
    "Q: Name a color.\nA:",
    "Q: Which is heavier, a feather or a brick?\nA: Let's think step by step.",
    "Hello",
    "Q: Alice has 3 apples and gives one away. How many are left?\nA: Let's think step by step.",
]
T = 24
STOP = ("Q:",)


@pytest.fixture(scope="module")
def reference(smollm2_dir):
    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
    model = AutoModelForCausalLM.from_pretrained(smollm2_dir, dtype=torch.float32).eval()
    return tokenizer, model


def engine(model_dir, **options):
    return load_engine("hf", str(model_dir), device="cpu", dtype="float32", **options)


def plain_loglikelihood(tokenizer, model, context: str, continuation: str) -> float:
    """log p(continuation | context), tokenized as lm-eval does, from one forward pass."""
    context_ids = tokenizer(context).input_ids
    whole = tokenizer(context + continuation).input_ids
    with torch.no_grad():
        logprobs = torch.log_softmax(model(torch.tensor([whole])).logits[0].float(), dim=-1)
    return float(sum(logprobs[i - 1, whole[i]] for i in range(len(context_ids), len(whole))))


@pytest.mark.parametrize("draft_tokens", [0, 4])
def test_greedy_generation_equals_transformers_generate(smollm2_dir, reference, draft_tokens):
    tokenizer, model = reference
    # Two rows at a time for six prompts: sequences finish at different steps and waiting
    # prompts join a batch that is already decoding; with drafts, rows advance unequally.
    fast = engine(smollm2_dir, max_batch_size=2, draft_tokens=draft_tokens)
    generations = fast.generate([GenerationRequest(p) for p in PROMPTS], SamplingSpec(T, STOP))
    if draft_tokens:
        assert 0 < fast.counters.accepted_draft_tokens <= fast.counters.draft_tokens
    for prompt, (generation,) in zip(PROMPTS, generations, strict=True):
        ids = tokenizer(prompt, return_tensors="pt").input_ids
        with torch.no_grad():
            greedy = model.generate(ids, max_new_tokens=T, do_sample=False)[0, ids.shape[1] :]
        assert generation == fast.cut(greedy.tolist(), STOP)
        # Its log-probability: the model's own, token by token, through the stop.
        whole = torch.cat([ids[0], greedy])[None]
        with torch.no_grad():
            logprobs = torch.log_softmax(model(whole).logits[0].float(), dim=-1)
        steps = range(ids.shape[1], ids.shape[1] + generation.tokens)
        expected = float(sum(logprobs[i - 1, whole[0, i]] for i in steps))
        assert generation.logprob == pytest.approx(expected, abs=2e-3, rel=1e-4)
    lengths = {g.tokens for (g,) in generations}
    assert len(lengths) > 2, f"the prompts should stop at different lengths: {lengths}"
    assert {g.stopped_by for (g,) in generations} >= {"eos", "length"}


def test_prompt_lookup_saves_decode_steps_not_tokens(smollm2_dir):
    spec = SamplingSpec(48, STOP)
    requests = [GenerationRequest(p) for p in PROMPTS]
    plain, drafted = engine(smollm2_dir, draft_tokens=0), engine(smollm2_dir, draft_tokens=4)
    assert drafted.generate(requests, spec) == plain.generate(requests, spec)
    assert drafted.counters.generated_tokens == plain.counters.generated_tokens
    # Every confirmed draft token is a decode step that did not run.
    saved = plain.counters.forward_passes - drafted.counters.forward_passes
    assert saved > 0
    assert drafted.counters.accepted_draft_tokens >= saved


def test_scores_equal_plain_forward_passes_with_and_without_cached_prefixes(smollm2_dir, reference):
    tokenizer, model = reference
    fast = engine(smollm2_dir, max_batch_size=4)
    generations = fast.generate([GenerationRequest(p) for p in PROMPTS], SamplingSpec(T, STOP))
    requests = [
        ScoreRequest(f"{p}{g.text}".rstrip() + " The answer is:", (" yes", " no", " 5"))
        for p, (g,) in zip(PROMPTS, generations, strict=True)
    ]
    cached = fast.score(requests)
    # The rationales' keys and values were reused: only the answer prefix and choices ran.
    context_tokens = sum(len(tokenizer(r.context).input_ids) for r in requests)
    assert fast.counters.reused_tokens > 0.8 * context_tokens
    uncached = engine(smollm2_dir, max_batch_size=4, prefix_cache_bytes=0).score(requests)
    for request, with_cache, without in zip(requests, cached, uncached, strict=True):
        for continuation, (loglik, _), (loglik_fresh, _) in zip(
            request.continuations, with_cache, without, strict=True
        ):
            expected = plain_loglikelihood(tokenizer, model, request.context, continuation)
            assert loglik == pytest.approx(expected, abs=1e-3, rel=1e-4)
            assert loglik_fresh == pytest.approx(expected, abs=1e-3, rel=1e-4)


def test_greedy_flag_marks_the_models_own_continuation(smollm2_dir, reference):
    tokenizer, model = reference
    context = "The capital of France is"
    ids = tokenizer(context, return_tensors="pt").input_ids
    with torch.no_grad():
        greedy = model.generate(ids, max_new_tokens=2, do_sample=False)[0, ids.shape[1] :]
    own = tokenizer.decode(greedy)
    ((_, is_greedy), (_, other_greedy)) = engine(smollm2_dir).score(
        [ScoreRequest(context, (own, " banana banana"))]
    )[0]
    assert is_greedy and not other_greedy


def test_samples_are_seeded_per_question_whatever_the_batch_or_order(smollm2_dir):
    spec = SamplingSpec(12, STOP, do_sample=True, temperature=1.0, seed=7)
    requests = [GenerationRequest(p, n=3, key=f"q{i}") for i, p in enumerate(PROMPTS[:4])]
    together = engine(smollm2_dir, max_batch_size=12).generate(requests, spec)
    # One row at a time, in reverse order: another schedule, other batch shapes.
    reversed_one_by_one = engine(smollm2_dir, max_batch_size=1).generate(requests[::-1], spec)
    # A resumed cell: only the last question is left.
    resumed = engine(smollm2_dir, max_batch_size=4).generate(requests[3:], spec)
    assert reversed_one_by_one[::-1] == together
    assert resumed == together[3:]
    for mine, theirs in zip(together, reversed_one_by_one[::-1], strict=True):
        assert [g.logprob for g in mine] == pytest.approx([g.logprob for g in theirs], abs=1e-3)
        assert all(g.logprob < 0 for g in mine)
    assert len({g.text for g in together[0]}) > 1, "three samples, one text: not sampling"
    # Another seed draws other samples.
    other = engine(smollm2_dir).generate(requests[:1], SamplingSpec(12, STOP, True, 1.0, 1.0, 8))
    assert other[0] != together[0]


def test_k_samples_share_one_prefill(smollm2_dir, reference):
    """Counted by hand: the prompt's P tokens run once; sample j then runs one decode step per
    generated token but the last (whose key and value nobody needs)."""
    tokenizer, _ = reference
    prompt = PROMPTS[0]
    fast = engine(smollm2_dir)
    spec = SamplingSpec(8, (), do_sample=True, seed=3)
    (samples,) = fast.generate([GenerationRequest(prompt, n=3, key="q")], spec)
    prompt_tokens = len(tokenizer(prompt).input_ids)
    assert fast.counters.prefill_tokens == prompt_tokens
    assert fast.counters.forward_tokens == prompt_tokens + sum(g.tokens - 1 for g in samples)
    assert fast.counters.forward_passes == 1 + max(g.tokens for g in samples) - 1


def test_cpu_attention_leaves_grouped_queries_to_torch_with_the_same_logits(smollm2_dir, reference):
    # transformers copies each key/value head to its query heads whenever there is a mask; on
    # a CPU the engine hands grouped-query attention to torch's kernel instead. (It once did so
    # through an environment variable that a transformers release stopped reading, silently.)
    tokenizer, model = reference
    fast = engine(smollm2_dir)
    assert fast.model.config._attn_implementation == "thinkcost_sdpa_gqa"
    assert model.config.num_key_value_heads < model.config.num_attention_heads
    # A left-padded batch: the mask is what sends transformers down its copying path.
    tokenizer.padding_side = "left"
    batch = tokenizer(PROMPTS[:3], return_tensors="pt", padding=True)
    assert not batch.attention_mask.all()
    with torch.no_grad():
        ours = fast.model(**batch).logits
        theirs = model(**batch).logits
    real = batch.attention_mask.bool()
    torch.testing.assert_close(ours[real], theirs[real], rtol=1e-5, atol=1e-4)


def test_prompts_joining_together_compute_their_shared_prefix_once(smollm2_dir, reference):
    tokenizer, model = reference
    shots = "".join(f"Q: What is {a}+{a}?\nA: {a} plus {a} is {2 * a}.\n\n" for a in range(1, 7))
    prompts = [f"{shots}Q: What is {a}+{a}?\nA:" for a in (7, 8, 9)]
    ids = [tokenizer(p).input_ids for p in prompts]
    shared = 0
    while all(row[shared] == ids[0][shared] for row in ids):
        shared += 1
    assert shared > 64, shared  # a few-shot block, worth a pass of its own
    fast = engine(smollm2_dir, max_batch_size=3)
    generations = fast.generate([GenerationRequest(p) for p in prompts], SamplingSpec(8, STOP))
    # The shared block once, then each prompt's own tokens after it.
    assert fast.counters.prefill_tokens == shared + sum(len(row) - shared for row in ids)
    assert fast.counters.reused_tokens == len(prompts) * shared
    for prompt, (generation,) in zip(prompts, generations, strict=True):
        tokens = tokenizer(prompt, return_tensors="pt").input_ids
        with torch.no_grad():
            greedy = model.generate(tokens, max_new_tokens=8, do_sample=False)
        assert generation == fast.cut(greedy[0, tokens.shape[1] :].tolist(), STOP)


def test_lookup_takes_the_latest_continuation_and_stops_at_a_rationales_end():
    text = np.array([5, 6, 7, 1, -1, 5, 6, 8, 9, 2, -1, 5, 6, -1])
    # The latest 5 6 with something after it: 8 9 2, cut at that rationale's end.
    assert after_latest(text, np.array([5, 6]), text, room=4) == [8, 9, 2]
    assert after_latest(text, np.array([5, 6]), text, room=2) == [8, 9]
    # A match that ends a rationale has nothing to draft; none at all gives nothing.
    assert after_latest(text, np.array([2]), text, room=4) == []
    assert after_latest(text, np.array([3, 3]), text, room=4) == []


def test_lookup_finds_what_an_enumeration_of_every_window_finds():
    """`after_latest` against every window tried one by one: random texts over a few tokens
    (many matches, overlapping ones too), rationale ends (-1) among them, keys of 1-4 tokens,
    searched prefixes shorter than the text (a row's own text minus its last token)."""

    def enumerated(searched, key, text, room):
        ends = [
            start + len(key)
            for start in range(len(searched) - len(key) + 1)
            if list(searched[start : start + len(key)]) == list(key)
            and start + len(key) < len(text)
            and text[start + len(key)] >= 0
        ]
        draft = []
        for token in text[ends[-1] : ends[-1] + room] if ends else []:
            if token < 0:
                break
            draft.append(int(token))
        return draft

    rng = np.random.default_rng(0)
    found = 0
    for _ in range(2000):
        text = rng.integers(-1, 4, size=int(rng.integers(1, 40)))
        searched = text[: int(rng.integers(0, len(text) + 1))]
        key = rng.integers(0, 4, size=int(rng.integers(1, 5)))
        room = int(rng.integers(1, 6))
        expected = enumerated(searched, key, text, room)
        assert after_latest(searched, key, text, room) == expected, (searched, key, text)
        found += bool(expected)
    assert found > 300  # the cases exercise matches, not only misses


def test_a_row_without_a_match_of_its_own_drafts_from_the_rationales_beside_it(smollm2_dir):
    lookup = engine(smollm2_dir, draft_tokens=4).drafter
    spec = SamplingSpec(64)
    row = Row(request=0, sample=0, prompt=[1, 2, 3], generator=None, generated=[10, 11, 12, 13])
    beside = Row(request=1, sample=0, prompt=[1, 2, 3], generator=None)
    beside.generated = [40, 10, 11, 12, 13, 14, 15, 16, 17, 18]
    # Its last tokens 10 11 12 13 occur in no earlier text of its own; beside it they do.
    others = lookup.rationales([row, beside], finished=[[12, 13, 20, 21]])
    assert lookup.draft(row, spec, others) == ([14, 15, 16, 17], LOOKUP_KINDS.index("others-4"))
    # Only its last three, 11 12 13: the latest occurrence with something after it, cut at the
    # end of that rationale.
    others = lookup.rationales([row], finished=[[11, 12, 13, 30, 31, 32, 33], [40, 11, 12, 13, 41]])
    assert lookup.draft(row, spec, others) == ([41], LOOKUP_KINDS.index("others-3"))
    # Its own earlier 3-gram comes first, as long as it has a continuation.
    row.generated = [10, 11, 12, 50, 10, 11, 12]
    assert lookup.draft(row, spec, others) == ([50, 10, 11, 12], LOOKUP_KINDS.index("own-3"))
    # The room left under the token budget bounds the draft.
    assert lookup.draft(row, SamplingSpec(9), others)[0] == [50]


def test_drafts_from_other_rows_keep_greedy_output(smollm2_dir):
    # Questions of one template: their rationales repeat each other's phrases.
    prompts = [
        f"Q: Tom has {a} red balls and {b} blue balls. How many balls does he have?\n"
        "A: Let's think step by step."
        for a, b in ((3, 4), (5, 2), (7, 1), (2, 9))
    ]
    spec = SamplingSpec(48, STOP)
    requests = [GenerationRequest(p) for p in prompts]
    plain, drafted = engine(smollm2_dir, draft_tokens=0), engine(smollm2_dir, draft_tokens=4)
    assert drafted.generate(requests, spec) == plain.generate(requests, spec)
    tried = drafted.drafter.rates.tried[:, 0] - 4.0  # the prior counts as 4 tries
    others = [LOOKUP_KINDS.index("others-3"), LOOKUP_KINDS.index("others-4")]
    assert tried[others].sum() > 0, dict(zip(LOOKUP_KINDS, tried, strict=True))


def test_lookup_searches_only_the_latest_finished_rationales(smollm2_dir, monkeypatch):
    # A pool of 60 tokens holds about one rationale of 48: the oldest leave as new ones finish.
    monkeypatch.setattr(drafting, "LOOKUP_POOL_TOKENS", 60)
    prompts = [
        f"Q: Tom has {a} red balls and {b} blue balls. How many balls does he have?\n"
        "A: Let's think step by step."
        for a, b in ((3, 4), (5, 2), (7, 1), (2, 9), (6, 6))
    ]
    spec = SamplingSpec(48, STOP)
    requests = [GenerationRequest(p) for p in prompts]
    drafted = engine(smollm2_dir, max_batch_size=1, draft_tokens=4)
    pooled = []

    def searched(rows, finished):
        finished = list(finished)
        pooled.append((len(finished), sum(len(text) for text in finished)))
        return PromptLookup.rationales(rows, finished)

    drafted.drafter.rationales = searched
    plain = engine(smollm2_dir, max_batch_size=1, draft_tokens=0).generate(requests, spec)
    assert drafted.generate(requests, spec) == plain
    # Four rationales finished before the last question decoded; at most 60 tokens were kept.
    assert max(tokens for _, tokens in pooled) <= 60, pooled
    assert max(count for count, _ in pooled) >= 1, pooled


TEXTS = [
    "First, the date is 12/25/1937.\nQ: next question\nA: The answer is (B).",
    "She moves left → then right → and stops.\n\nThe answer is: yes",
    "Steps: 1. take 3 steps. 2. turn around. The answer is no.",
    "Kein Q hier, nur Umlaute: äöü ß, und 字漢, done ✓ 🙂.",
]
# SmolLM2's byte-level tokens split 漢, ✓ and 🙂 over two or three tokens, each "\ufffd" alone.
STOPS = [("Q:", "The answer is"), ("\n\n",), ("→ and",), ("字漢",), ("ß,",), ("done ✓",), ("🙂",)]


@pytest.mark.parametrize("stops", STOPS)
def test_a_stop_is_found_at_the_step_that_completes_it(smollm2_dir, stops):
    """The decode loop's stop check (which decodes a row's tail only when an added token may
    end a stop string) finds each stop at the same step as decoding the whole text every step,
    whatever the tokens added per step (1, or up to 4 when drafts are confirmed). A window of
    one token per character missed 字漢 (four tokens for two characters)."""
    from thinkcost.engines.hf.stops import StopStrings

    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)

    def decode(tokens):
        return tokenizer.decode(tokens, skip_special_tokens=True)

    found = 0
    for text in TEXTS:
        tokens = tokenizer.encode(text, add_special_tokens=False)
        for step_sizes in ([1], [2, 1, 4, 3], [4]):
            check = StopStrings(stops, decode)
            generated, step, ours, whole = [], 0, None, None
            while len(generated) < len(tokens):
                before = len(generated)
                generated = tokens[: before + step_sizes[step % len(step_sizes)]]
                added = len(generated) - before
                if whole is None and any(stop in decode(generated) for stop in stops):
                    whole = len(generated)
                if ours is None and check.completed(generated, added):
                    ours = len(generated)
                step += 1
            assert ours == whole, (text, stops, step_sizes)
            found += whole is not None
    assert found  # each set of stops occurs in some text

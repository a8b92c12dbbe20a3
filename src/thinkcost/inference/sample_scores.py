"""A sample's score for the votes that weigh samples: its sequence log-likelihood.

Under the generating model a sample's score is the log-probability of the tokens it generated
(free with generation) plus, for multiple choice, the chosen choice's after the answer prefix;
under a separate scorer model (`sample_scores`), the rationale's text after the prompt plus the
chosen choice. `score` says whether the mean per token or the sum.
"""

from __future__ import annotations

from collections.abc import Sequence

from thinkcost.engines.base import Engine, Generation, ScoreRequest
from thinkcost.inference.costs import RequestCost

SCORES = ("mean", "sum")


def own_scores(
    generations: Sequence[Generation],
    answers: Sequence[tuple[float, int]] | None,
    score: str,
) -> list[float] | None:
    """The samples' scores from their own generation: the log-probability of the tokens each
    generated (through its stop sequence or end of sequence), plus its chosen answer's
    (log-likelihood, tokens); None when the engine gave no log-probabilities (then
    `sample_scores` recomputes them)."""
    if any(g.logprob is None for g in generations):
        return None
    values = []
    for j, generation in enumerate(generations):
        value, count = generation.logprob, generation.tokens
        if answers is not None:
            value, count = value + answers[j][0], count + answers[j][1]
        values.append(value if score == "sum" else (value / count if count else 0.0))
    return values


def question_scores(
    scorer: Engine | None,
    score: str,
    engine: Engine,
    prompt: str,
    generations: Sequence[Generation],
    cost: RequestCost,
    own_answers: Sequence[tuple[float, int]] | None = None,
    answers: Sequence[tuple[str, str]] | None = None,
) -> list[float]:
    """One question's sample scores: from generation's own log-probabilities when the
    generating model scores them (`scorer` None; `own_answers`: each chosen answer's
    log-likelihood and tokens); else read by `sample_scores` on the scorer (`answers`: each
    chosen answer after its context), a separate scorer's reading counted in `cost`."""
    if scorer is None:
        own = own_scores(generations, own_answers, score)
        if own is not None:
            return own
    reader = scorer or engine
    texts = [g.text for g in generations]
    scores, read = sample_scores(reader, [prompt] * len(texts), texts, answers, score)
    if scorer is not None:
        cost.scorer_prompt_tokens = len(reader.tokenize(prompt))
        cost.scorer_tokens = read
    return scores


def sample_scores(
    scorer: Engine,
    prompts: Sequence[str],
    texts: Sequence[str],
    answers: Sequence[tuple[str, str]] | None = None,
    score: str = "mean",
) -> tuple[list[float], list[int]]:
    """Each sample's sequence log-likelihood under `scorer`, and the tokens it read past the
    prompt: the sample's text after its prompt (the end-of-sequence token not counted), plus,
    where `answers` gives one, the chosen answer after its context (choice after "The answer
    is:"); the mean per scored token or the sum. An empty text scores only its answer."""
    if score not in SCORES:
        raise ValueError(f"score must be one of {', '.join(SCORES)}, not {score!r}")
    requests, owners = [], []
    for i, (prompt, text) in enumerate(zip(prompts, texts, strict=True)):
        if text:
            requests.append(ScoreRequest(prompt, (text,)))
            owners.append(i)
        if answers is not None:
            requests.append(ScoreRequest(answers[i][0], (answers[i][1],)))
            owners.append(i)
    loglik, scored = [0.0] * len(texts), [0] * len(texts)
    for i, request, ((value, _),) in zip(owners, requests, scorer.score(requests), strict=True):
        loglik[i] += value
        scored[i] += len(scorer.encode_pair(request.context, request.continuations[0])[1])
    prompt_tokens = {p: len(scorer.tokenize(p)) for p in set(prompts)} if answers else {}
    read = [
        len(scorer.tokenize(answers[i][0] + answers[i][1])) - prompt_tokens[prompt]
        if answers is not None
        else scored[i]
        for i, prompt in enumerate(prompts)
    ]
    if score == "mean":
        loglik = [
            value / count if count else 0.0 for value, count in zip(loglik, scored, strict=True)
        ]
    return loglik, read

"""Strategies: how one question's answer comes from engine calls, and what it cost.

A strategy turns questions (`questions.Question`) into the engine's two primitives (`generate`,
`score`) and returns, per question, an `Answer`: the choice scores (or the free-form text), the
generations it drew and a `RequestCost` of measured token counts. It never imports transformers
or lm-eval, so a new strategy is one new class here, tested on constructed inputs and end to
end on a real engine.

- `Direct`: the paper's direct format, each choice scored after the question;
- `Hybrid`: the paper's hybrid format, k rationales per question (one prefill, k samples), each
  followed by the answer prefix and every choice scored; the k samples combined by a vote
  (`voting`'s majority, weighted or best-of-n, or the soft `marginal`): one sample
  passes through unchanged;
- `FreeForm`: generate the answer after the trigger (GSM8K); the task's filters extract it; k
  samples vote on their extracted answers.

A vote that weighs samples scores each by its sequence log-likelihood (`sample_scores`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from thinkcost.engines.base import (
    Engine,
    Generation,
    GenerationRequest,
    SamplingSpec,
    ScoreRequest,
)
from thinkcost.inference import tree_search, voting
from thinkcost.inference.costs import RequestCost
from thinkcost.inference.questions import (
    Answer,
    Question,
    generation_prompt,
    scoring_context,
    split_contexts,
)
from thinkcost.inference.sample_scores import own_scores, question_scores, sample_scores
from thinkcost.inference.tree_search import SearchResult, SearchSettings

# Rules over the samples' answers and scores (`voting`), and the soft vote over the
# choice probabilities, which needs neither.
VOTE_RULES = (*voting.RULES, "marginal")


def _prompt_cost(engine: Engine, prompt: str, keeps: int) -> RequestCost:
    """A request's prompt as the engine computes it: at most `keeps` tokens, the rest of a
    longer prompt cut from its start (and flagged), so its FLOPs count only what was computed."""
    tokens = len(engine.tokenize(prompt))
    return RequestCost(
        task="", doc_id=-1, prompt_tokens=min(tokens, keeps), truncated=tokens > keeps
    )


def _draft_model_cost(cost: RequestCost, samples: Sequence[Generation]) -> None:
    """What a draft model computed for the question's samples goes in its own cost record."""
    cost.assistant_tokens = sum(g.assistant_tokens for g in samples)
    cost.assistant_pairs = sum(g.assistant_pairs for g in samples)


def _scoring_keeps(engine: Engine, choice_tokens: Sequence[int]) -> int:
    """The context tokens a scoring request keeps: room for its longest choice."""
    return max(1, engine.max_length - max(choice_tokens, default=0))


def _choice_tokens(engine: Engine, choices: Sequence[str]) -> list[int]:
    return [len(engine.tokenize(choice, add_special_tokens=False)) for choice in choices]


@dataclass(frozen=True)
class Direct:
    """Each choice scored after the question: no generation."""

    def answer(self, engine: Engine, questions: Sequence[Question]) -> list[Answer]:
        requests = [_score_requests(q, q.choice_contexts or [q.context]) for q in questions]
        scores = _gather(engine.score([r for rs in requests for r in rs]), requests)
        answers = []
        for question, choice_scores in zip(questions, scores, strict=True):
            if question.choice_contexts:  # lm-eval's own contexts, as its partial scoring
                shared, endings = split_contexts(question.choice_contexts)
                answer = _choice_tokens(engine, _joined(endings, question.choices))
                cost = _prompt_cost(engine, shared, _scoring_keeps(engine, answer))
            else:
                answer = _choice_tokens(engine, question.choices)
                cost = _prompt_cost(engine, question.context, _scoring_keeps(engine, answer))
            cost.answer = [answer]
            answers.append(Answer(scores=choice_scores, cost=cost))
        return answers


def _score_requests(question: Question, contexts: Sequence[str]) -> list[ScoreRequest]:
    """Every choice after one context, or choice i after contexts[i] (partial scoring)."""
    if len(contexts) == 1:
        return [ScoreRequest(contexts[0], question.choices)]
    return [
        ScoreRequest(context, (choice,))
        for context, choice in zip(contexts, question.choices, strict=True)
    ]


def _gather(scores: list, requests: Sequence[Sequence[ScoreRequest]]) -> list[list]:
    """The flat engine scores back into one list of choice scores per request group."""
    gathered, position = [], 0
    for group in requests:
        gathered.append(
            [s for choice_scores in scores[position : position + len(group)] for s in choice_scores]
        )
        position += len(group)
    return gathered


def _joined(endings: Sequence[str], choices: Sequence[str]) -> list[str]:
    return [ending + choice for ending, choice in zip(endings, choices, strict=True)]


@dataclass(frozen=True)
class Hybrid:
    """k rationales per question, then every choice scored after each; a vote combines them."""

    spec: SamplingSpec
    trigger: str = ""
    answer_prefix: str = "The answer is:"
    num_samples: int = 1
    vote: str = "majority"
    score: str = "mean"
    scorer: Engine | None = None  # a separate model scores the samples; None: their own
    search: SearchSettings | None = None  # REBASE tree search instead of k samples

    def __post_init__(self) -> None:
        if self.vote not in VOTE_RULES:
            raise ValueError(f"vote must be one of {', '.join(VOTE_RULES)}, not {self.vote!r}")
        if self.search is not None and self.vote == "marginal":
            raise ValueError("a tree search answers from its leaves by a vote, not 'marginal'")

    def answer(self, engine: Engine, questions: Sequence[Question]) -> list[Answer]:
        prompts = [generation_prompt(q.context, self.trigger) for q in questions]
        generations, searches = _draw(self, engine, questions, prompts)
        requests = [
            _score_requests(q, self._answer_contexts(q, prompt, g.text))
            for q, prompt, samples in zip(questions, prompts, generations, strict=True)
            for g in samples
        ]
        scored = _gather(engine.score([r for rs in requests for r in rs]), requests)
        prefix_tokens = (
            len(engine.tokenize(" " + self.answer_prefix, add_special_tokens=False))
            if self.answer_prefix
            else 0
        )
        answers, position = [], 0
        for question, prompt, samples in zip(questions, prompts, generations, strict=True):
            per_sample = scored[position : position + len(samples)]
            position += len(samples)
            loglik = np.array([[s for s, _ in choice_scores] for choice_scores in per_sample])
            cost = _prompt_cost(engine, prompt, engine.prompt_limit(self.spec.max_new_tokens))
            cost.generated = [g.tokens for g in samples]
            _draft_model_cost(cost, samples)
            choices = question.choices
            if question.choice_contexts:
                choices = [" " + c for c in _joined(self._endings(question), choices)]
            elif not any(c[:1].isspace() for c in choices):
                choices = [" " + c for c in choices]  # the space _answer_contexts adds
            choice_tokens = _choice_tokens(engine, choices)
            cost.answer = [[prefix_tokens + t for t in choice_tokens] for _ in samples]
            answer = Answer(scores=per_sample[0], generations=samples, cost=cost)
            if len(samples) > 1:  # one sample's log-likelihoods pass through (acc_norm stays valid)
                self._vote(engine, question, prompt, answer, loglik, choice_tokens)
            if searches is not None:
                _search_cost(cost, searches[len(answers)], cost.answer[0], self.scorer, prompt)
            answers.append(answer)
        return answers

    def _vote(
        self,
        engine: Engine,
        question: Question,
        prompt: str,
        answer: Answer,
        loglik: np.ndarray,
        choice_tokens: Sequence[int],
    ) -> None:
        """Combine the samples' choice log-likelihoods into the answer's choice scores.

        A rule over answers hands lm-eval its ranking (0 for the picked choice, −1 the next, …),
        so lm-eval's `acc` counts the vote; the samples' answers and scores are kept for sweeps.
        """
        picked = loglik.argmax(axis=1)
        answer.samples = {"answers": picked.tolist(), "choice_loglik": loglik.tolist()}
        if self.vote == "marginal":
            answer.scores = voting.vote_marginal(loglik)
            return
        texts = [g.text for g in answer.generations]
        chosen = []
        for text, choice in zip(texts, picked, strict=True):
            contexts = self._answer_contexts(question, prompt, text)
            chosen.append((contexts[choice if len(contexts) > 1 else 0], question.choices[choice]))
        # What each choice's log-likelihood covers: the choice, or, scored partially, the
        # shared continuation after the choice's own sentence start.
        if question.choice_contexts:
            choice_tokens = _choice_tokens(engine, question.choices)
        own = [(float(row[c]), choice_tokens[c]) for row, c in zip(loglik, picked, strict=True)]
        scores = question_scores(
            self.scorer, self.score, engine, prompt, answer.generations, answer.cost, own, chosen
        )
        answer.samples["scores"] = scores
        order = voting.ranking(self.vote, picked.tolist(), scores, loglik.shape[1])
        answer.scores = [(-float(order.index(c)), False) for c in range(loglik.shape[1])]

    @staticmethod
    def _endings(question: Question) -> list[str]:
        return [e.lstrip() for e in split_contexts(question.choice_contexts)[1]]

    def _answer_contexts(self, question: Question, prompt: str, rationale: str) -> list[str]:
        """What the choices are scored after: the answer prefix, then, when scored partially,
        choice i's own sentence start (the rationale was generated after the whole question)."""
        context = scoring_context(prompt, rationale, self.answer_prefix)
        if not question.choice_contexts:
            # Under a chat template lm-eval drops the space before each choice ("True", not
            # " True"); after "The answer is:" the choice still needs one.
            if context and not any(c[:1].isspace() for c in question.choices):
                context += " "
            return [context]
        return [f"{context} {ending}" if context else ending for ending in self._endings(question)]


def _stripped(text: str) -> str:
    return text.strip()


@dataclass(frozen=True)
class FreeForm:
    """The answer generated after the trigger; it stops at the question's own stop strings too.

    With k samples, each sample's answer is `extract(text)` (the task's own filter, which the
    adapter is given; the stripped text without one) and the vote's pick is the text returned.
    """

    spec: SamplingSpec
    trigger: str = ""
    num_samples: int = 1
    vote: str = "majority"
    score: str = "mean"
    extract: Callable[[str], str] = _stripped
    scorer: Engine | None = None  # a separate model scores the samples; None: their own
    search: SearchSettings | None = None  # REBASE tree search instead of k samples

    def __post_init__(self) -> None:
        if self.num_samples > 1 and self.vote not in voting.RULES:
            raise ValueError(
                f"free-form answers vote by {', '.join(voting.RULES)}, not {self.vote!r}"
            )

    def answer(self, engine: Engine, questions: Sequence[Question]) -> list[Answer]:
        answers: list[Answer | None] = [None] * len(questions)
        # Questions with the same stop strings share one generate call (one sampling spec).
        by_stop: dict[tuple[str, ...], list[int]] = {}
        for index, question in enumerate(questions):
            by_stop.setdefault(question.stop, []).append(index)
        for stop, members in by_stop.items():
            spec = SamplingSpec(**{**self.spec.__dict__, "stop": (*stop, *self.spec.stop)})
            prompts = [generation_prompt(questions[i].context, self.trigger) for i in members]
            generations, searches = _draw(
                replace(self, spec=spec), engine, [questions[i] for i in members], prompts
            )
            for position, (index, prompt, samples) in enumerate(
                zip(members, prompts, generations, strict=True)
            ):
                cost = _prompt_cost(engine, prompt, engine.prompt_limit(spec.max_new_tokens))
                cost.generated = [g.tokens for g in samples]
                _draft_model_cost(cost, samples)
                cost.answer = [[] for _ in samples]
                answer = Answer(text=samples[0].text, generations=samples, cost=cost)
                if len(samples) > 1:
                    said = [self.extract(g.text) for g in samples]
                    scores = question_scores(self.scorer, self.score, engine, prompt, samples, cost)
                    answer.text = samples[voting.pick(self.vote, said, scores)].text
                    answer.samples = {"answers": said, "scores": scores}
                if searches is not None:
                    _search_cost(cost, searches[position], [], self.scorer, prompt)
                answers[index] = answer
        return answers  # type: ignore[return-value]


def _draw(
    strategy: Hybrid | FreeForm, engine: Engine, questions: Sequence[Question], prompts: list[str]
) -> tuple[list[list[Generation]], list[SearchResult] | None]:
    """Each question's rationales: k samples of its prompt (one prefill), or the leaves of a
    tree search (with the search itself, for the cost record)."""
    if strategy.search is None:
        requests = [
            GenerationRequest(p, strategy.num_samples, q.key)
            for p, q in zip(prompts, questions, strict=True)
        ]
        return engine.generate(requests, strategy.spec), None
    scorer = strategy.scorer or engine

    def score_nodes(node_prompts: list[str], nodes: list) -> list[float]:
        own = None if strategy.scorer else own_scores(nodes, None, strategy.score)
        if own is not None:  # the path's log-probability, summed as it was generated
            return own
        texts = [node.text for node in nodes]
        return sample_scores(scorer, node_prompts, texts, None, strategy.score)[0]

    keys = [q.key for q in questions]
    searches = tree_search.search(
        engine, prompts, keys, strategy.spec, strategy.search, score_nodes
    )
    return [s.generations() for s in searches], searches


def _search_cost(
    cost: RequestCost,
    result: SearchResult,
    answer_tokens: list[int],
    scorer: Engine | None,
    prompt: str,
) -> None:
    """A searched question's branches: every expansion step from where its parent ended; the
    choices scored after each leaf. A separate scorer also read the prompt and every step (to
    score nodes)."""
    cost.generated = [tokens for _, tokens in result.steps] or [0]
    cost.branch_starts = [start for start, _ in result.steps] or [0]
    cost.answer = [[] for _ in cost.generated]
    for leaf in result.leaves:
        cost.answer[max(leaf.step, 0)] = list(answer_tokens)
    if scorer is not None:
        cost.scorer_prompt_tokens = len(scorer.tokenize(prompt))
        cost.scorer_tokens = [*cost.scorer_tokens, *cost.generated]

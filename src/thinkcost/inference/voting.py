"""Votes over a question's samples, and what k of them would have scored (k sweeps).

A question's K samples each carry an **answer** (a choice index, or the answer a free-form task's
filter extracts), a **score** (the sample's sequence log-likelihood, mean per token by default)
and whether that answer is **correct** (lm-eval's metric on that sample alone). A rule picks one
answer from a set of samples:

- `majority`: the answer most samples give (self-consistency, Wang et al. 2023);
- `weighted`: the answer whose samples' weights exp(score) sum highest (Wu et al. 2024's weighted
  majority vote; under the mean-per-token score a weight is the geometric-mean token probability);
- `best_of_n`: the answer of the highest-scored sample.

For multiple choice there is also the soft vote `vote_marginal`, over the samples' choice
probabilities rather than their answers.

Ties are broken by one documented rule, the same everywhere (the cell's own vote, the sweeps and
the tests): the answer whose best sample scores higher wins, then the answer given first (lowest
sample index). A rule is therefore a function of the samples in their drawn order.

A k sweep draws K samples once and computes, for every k ≤ K, the expectation over the
C(K, k) subsets of size k (Large Language Monkeys; Wu et al.'s curves):

- best-of-k exactly for any K, in closed form over the samples' ranks;
- majority@k and weighted@k exactly by enumeration when C(K, k) ≤ `EXACT_SUBSETS`, else as the
  mean over `RESAMPLED_SUBSETS` subsets drawn with a fixed seed (`Expectation.method` says which);
- coverage (pass@k, any of the k correct) by the unbiased estimator 1 − C(K−c, k)/C(K, k)
  (Chen et al. 2021), c the correct samples.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

RULES = ("majority", "weighted", "best_of_n")
EXACT_SUBSETS = 20_000
RESAMPLED_SUBSETS = 2_000


def pick(rule: str, answers: Sequence, scores: Sequence[float]) -> int:
    """The index of the sample whose answer `rule` picks (the first sample giving that answer).

    `answers` are hashable (choice indices, extracted strings); `scores` the samples' sequence
    scores, higher is better. Ties: the answer whose best sample scores higher, then the answer
    given first.
    """
    return _ranked(rule, answers, scores)[0][1]


def ranking(rule: str, answers: Sequence[int], scores: Sequence[float], options: int) -> list[int]:
    """Choices 0 … options−1 in the order `rule` puts them, the picked one first; choices no
    sample gave follow in their own order."""
    given = [answers[first] for _, first in _ranked(rule, answers, scores)]
    return given + [choice for choice in range(options) if choice not in given]


def _ranked(rule: str, answers: Sequence, scores: Sequence[float]) -> list[tuple[tuple, int]]:
    """Every answer given, best first under `rule`: (its sort key, its first sample's index)."""
    if rule not in RULES:
        raise ValueError(f"vote rule must be one of {', '.join(RULES)}, not {rule!r}")
    if not len(answers) or len(answers) != len(scores):
        raise ValueError(f"{len(answers)} answers for {len(scores)} scores")
    scores = np.asarray(scores, dtype=float)
    # Weights relative to the best sample, so exp() never underflows every weight to zero.
    weights = np.exp(scores - scores.max()) if rule == "weighted" else np.ones(len(scores))
    tally: dict = {}
    for index, (answer, weight, score) in enumerate(zip(answers, weights, scores, strict=True)):
        total, best, first = tally.get(answer, (0.0, -math.inf, index))
        tally[answer] = (total + weight, max(best, score), first)
    if rule == "best_of_n":  # the best sample alone decides; ties as for the votes
        keyed = [((best, -first), first) for _, best, first in tally.values()]
    else:
        keyed = [((total, best, -first), first) for total, best, first in tally.values()]
    return sorted(keyed, reverse=True)


def vote_marginal(per_sample: np.ndarray) -> list[tuple[float, bool]]:
    """The log of each choice's mean probability over the samples (rows: samples, columns:
    the choices' log-likelihoods)."""
    marginal = np.logaddexp.reduce(per_sample, axis=0) - math.log(per_sample.shape[0])
    return [(float(m), False) for m in marginal]


def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased estimate of P(any of k samples correct) from n samples with c correct:
    1 − C(n−c, k)/C(n, k), as a product so large n cannot overflow (Chen et al. 2021)."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 ≤ c ≤ n and 1 ≤ k ≤ n, got n={n} c={c} k={k}")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


@dataclass(frozen=True)
class Expectation:
    value: float
    method: str  # "exact" (every subset, or a closed form) or "resampled:<subsets>"


def best_of_k(scores: Sequence[float], correct: Sequence[bool], k: int) -> Expectation:
    """Expected correctness of best-of-k over all C(K, k) subsets, exactly.

    Rank the samples by score (ties: the earlier first, as `pick` breaks them); a subset's best
    sample is its first in that order, so the sample at rank r wins in C(K−1−r, k−1) subsets.
    """
    n = len(scores)
    order = sorted(range(n), key=lambda i: (-scores[i], i))
    total = math.comb(n, k)
    value = sum(math.comb(n - 1 - rank, k - 1) * bool(correct[i]) for rank, i in enumerate(order))
    return Expectation(value / total, "exact")


def vote_at_k(
    rule: str,
    answers: Sequence,
    scores: Sequence[float],
    correct: Sequence[bool],
    k: int,
    seed: int = 0,
) -> Expectation:
    """Expected correctness of `rule` over the subsets of k of the K samples."""
    n = len(answers)
    if not 1 <= k <= n:
        raise ValueError(f"k={k} is not between 1 and the {n} samples drawn")
    if rule == "best_of_n":
        return best_of_k(scores, correct, k)
    answers, scores = list(answers), np.asarray(scores, dtype=float)

    def correct_of(subset: Sequence[int]) -> bool:
        winner = pick(rule, [answers[i] for i in subset], scores[list(subset)])
        return bool(correct[subset[winner]])

    if math.comb(n, k) <= EXACT_SUBSETS:
        subsets = list(itertools.combinations(range(n), k))
        return Expectation(sum(map(correct_of, subsets)) / len(subsets), "exact")
    rng = np.random.default_rng(seed)
    hits = sum(
        correct_of(sorted(rng.choice(n, size=k, replace=False).tolist()))
        for _ in range(RESAMPLED_SUBSETS)
    )
    return Expectation(hits / RESAMPLED_SUBSETS, f"resampled:{RESAMPLED_SUBSETS}")


@dataclass(frozen=True)
class SampledQuestion:
    """One question's K samples: what each answered, its score and whether it was right."""

    answers: tuple
    scores: tuple[float, ...]
    correct: tuple[bool, ...]


def sweep(
    questions: Sequence[SampledQuestion], ks: Sequence[int], rule: str, seed: int = 0
) -> list[dict]:
    """Per k: the rule's expected accuracy and the coverage (pass@k), averaged over questions.

    The standard errors are those of a mean over questions (sample standard deviation ÷ √n, as
    lm-eval's for accuracy); they leave out the spread of the K draws within a question.
    """
    rows = []
    for k in ks:
        votes, coverage, methods = [], [], set()
        for index, question in enumerate(questions):
            n = len(question.answers)
            expectation = vote_at_k(
                rule, question.answers, question.scores, question.correct, k, seed=seed + index
            )
            votes.append(expectation.value)
            methods.add(expectation.method)
            coverage.append(pass_at_k(n, int(sum(question.correct)), k))
        rows.append(
            {
                "k": int(k),
                "rule": rule,
                "score": float(np.mean(votes)),
                "stderr": _stderr(votes),
                "coverage": float(np.mean(coverage)),
                "coverage_stderr": _stderr(coverage),
                "n": len(questions),
                "estimate": "exact" if methods == {"exact"} else max(methods),
            }
        )
    return rows


def _stderr(values: Sequence[float]) -> float:
    return float(np.std(values, ddof=1) / math.sqrt(len(values))) if len(values) > 1 else math.nan

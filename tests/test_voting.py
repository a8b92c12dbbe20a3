"""Votes over samples and their k-subset expectations, on constructed samples."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from thinkcost.inference import voting
from thinkcost.inference.voting import SampledQuestion, best_of_k, pass_at_k, pick, sweep, vote_at_k


def test_majority_takes_the_most_common_answer_whatever_the_scores():
    answers = ["12", "7", "12", "7", "12"]
    scores = [-3.0, -0.1, -2.0, -0.2, -4.0]
    assert answers[pick("majority", answers, scores)] == "12"
    assert pick("majority", answers, scores) == 0  # the first sample giving it


def test_weighted_vote_lets_two_confident_samples_outvote_three_unsure_ones():
    answers = [0, 1, 0, 1, 0]
    scores = np.log([0.1, 0.9, 0.1, 0.8, 0.1])  # weights exp(score): 0.3 for 0, 1.7 for 1
    assert answers[pick("weighted", answers, scores)] == 1
    assert answers[pick("majority", answers, scores)] == 0


def test_best_of_n_takes_the_highest_scored_sample():
    assert pick("best_of_n", ["a", "b", "c"], [-2.0, -0.5, -1.0]) == 1


def test_ties_go_to_the_better_best_sample_then_to_the_earlier_answer():
    # Two votes each: "b" has the best single sample, so it wins the majority tie.
    assert pick("majority", ["a", "b", "a", "b"], [-1.0, -0.5, -1.0, -2.0]) == 1
    # Everything equal: the answer given first.
    assert pick("majority", ["b", "a", "a", "b"], [-1.0] * 4) == 0
    assert pick("weighted", ["b", "a"], [-1.0, -1.0]) == 0
    assert pick("best_of_n", ["b", "a", "c"], [-1.0, -0.5, -0.5]) == 1


def test_an_unknown_rule_or_mismatched_inputs_are_refused():
    with pytest.raises(ValueError, match="must be one of"):
        pick("plurality", ["a"], [0.0])
    with pytest.raises(ValueError, match="2 answers for 1 scores"):
        pick("majority", ["a", "b"], [0.0])


def brute_vote(answers, scores, subset, weight=lambda score: 1.0):
    """The documented rules written out independently: each answer's summed weight (1 a vote
    for majority, exp(score) for weighted), then its best score, then the answer given first."""
    tally = {}
    for i in subset:
        tally[answers[i]] = tally.get(answers[i], 0.0) + weight(scores[i])
    best = {a: max(scores[i] for i in subset if answers[i] == a) for a in tally}
    first = {a: min(subset.index(i) for i in subset if answers[i] == a) for a in tally}
    return max(tally, key=lambda a: (tally[a], best[a], -first[a]))


@pytest.mark.parametrize("seed", range(5))
def test_majority_at_k_is_the_mean_over_every_subset(seed):
    rng = np.random.default_rng(seed)
    n = 7
    answers = rng.integers(0, 3, n).tolist()
    scores = rng.normal(size=n).round(1).tolist()  # rounded, so ties in score happen too
    correct = [a == 0 for a in answers]
    for k in range(1, n + 1):
        subsets = [list(s) for s in itertools.combinations(range(n), k)]
        expected = np.mean([brute_vote(answers, scores, s) == 0 for s in subsets])
        got = vote_at_k("majority", answers, scores, correct, k)
        assert got.method == "exact"
        assert got.value == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_best_of_k_closed_form_equals_enumeration(seed):
    rng = np.random.default_rng(seed)
    n = 8
    scores = rng.normal(size=n).round(1).tolist()
    correct = (rng.random(n) < 0.4).tolist()
    for k in range(1, n + 1):
        subsets = list(itertools.combinations(range(n), k))
        expected = np.mean(
            [correct[s[pick("best_of_n", list(s), [scores[i] for i in s])]] for s in subsets]
        )
        assert best_of_k(scores, correct, k).value == pytest.approx(expected, abs=1e-12)


def test_pass_at_k_is_the_unbiased_estimator():
    for n, c, k in [(10, 3, 1), (10, 3, 4), (16, 1, 8), (16, 0, 16), (5, 5, 2), (20, 17, 4)]:
        closed = 1 - math.comb(n - c, k) / math.comb(n, k)
        assert pass_at_k(n, c, k) == pytest.approx(closed, abs=1e-12)
    # … which is the share of k-subsets with at least one correct sample.
    correct = [True, False, False, True, False, False]
    subsets = list(itertools.combinations(range(6), 3))
    share = np.mean([any(correct[i] for i in s) for s in subsets])
    assert pass_at_k(6, 2, 3) == pytest.approx(share)
    assert pass_at_k(1, 1, 1) == 1.0 and pass_at_k(4, 0, 2) == 0.0
    with pytest.raises(ValueError):
        pass_at_k(4, 5, 2)


def test_large_sweeps_resample_with_a_seed_and_say_so(monkeypatch):
    rng = np.random.default_rng(0)
    n, k = 12, 5
    answers = rng.integers(0, 3, n).tolist()
    scores = rng.normal(size=n).tolist()
    correct = [a == 1 for a in answers]
    exact = vote_at_k("majority", answers, scores, correct, k)
    monkeypatch.setattr(voting, "EXACT_SUBSETS", 10)
    first = vote_at_k("majority", answers, scores, correct, k, seed=3)
    again = vote_at_k("majority", answers, scores, correct, k, seed=3)
    assert first == again
    assert first.method == f"resampled:{voting.RESAMPLED_SUBSETS}"
    # 2,000 draws of a proportion: within 4 standard errors of the exact mean.
    assert abs(first.value - exact.value) < 4 * math.sqrt(0.25 / voting.RESAMPLED_SUBSETS)


def test_sweep_rows_average_questions_and_k_equal_to_all_samples_is_the_plain_vote():
    questions = [
        SampledQuestion(
            answers=(0, 0, 1, 1),
            scores=(-1.0, -2.0, -0.5, -3.0),
            correct=(True, True, False, False),
        ),
        SampledQuestion(
            answers=("x", "y", "y", "z"),
            scores=(-1.0, -1.0, -1.0, -1.0),
            correct=(False, True, True, False),
        ),
    ]
    rows = sweep(questions, [1, 4], "majority")
    one, four = rows
    assert one["k"] == 1 and one["score"] == pytest.approx(np.mean([0.5, 0.5]))
    # k = K: one subset, the vote over all samples: question 1 ties 2–2, and answer 1's best
    # sample (−0.5) beats answer 0's (−1.0), so it is wrong; question 2's "y" wins 2–1–1.
    assert four["score"] == pytest.approx(0.5)
    assert four["coverage"] == 1.0 and one["coverage"] == pytest.approx(0.5)
    assert four["stderr"] == pytest.approx(np.std([0.0, 1.0], ddof=1) / math.sqrt(2))
    assert {r["estimate"] for r in rows} == {"exact"}


@pytest.mark.parametrize("seed", range(5))
def test_weighted_at_k_is_the_mean_over_every_subset(seed):
    rng = np.random.default_rng(seed)
    n = 7
    answers = rng.integers(0, 3, n).tolist()
    scores = rng.normal(size=n).tolist()
    correct = [a == 0 for a in answers]
    for k in range(1, n + 1):
        subsets = [list(s) for s in itertools.combinations(range(n), k)]
        expected = np.mean([brute_vote(answers, scores, s, math.exp) == 0 for s in subsets])
        got = vote_at_k("weighted", answers, scores, correct, k)
        assert got.method == "exact"
        assert got.value == pytest.approx(expected, abs=1e-12)


def test_the_marginal_vote_averages_the_choice_probabilities():
    from thinkcost.inference.voting import vote_marginal

    # Two samples: one 0.6/0.4 for choices A/B, one 0.2/0.8. Mean probabilities 0.4 and 0.6, so
    # B wins, though each sample's own answer (A, then B) is a tie for a majority vote.
    per_sample = np.log([[0.6, 0.4], [0.2, 0.8]])
    marginal = vote_marginal(per_sample)
    assert [value for value, _ in marginal] == pytest.approx(np.log([0.4, 0.6]), abs=1e-12)
    assert max(range(2), key=lambda i: marginal[i][0]) == 1

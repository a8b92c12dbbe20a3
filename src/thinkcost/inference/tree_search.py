"""Tree search over reasoning steps under a token budget: REBASE (Wu et al. 2024, *Inference
Scaling Laws*, section 4).

A question's rationale grows one step at a time (a step: one line, or up to a stop string). Each
depth keeps a budget of `width` nodes: the open nodes share `width − finished leaves` children,
allocated by a softmax of the nodes' scores (`temperature`; its limit 0 gives every child to the
best node, a beam search of width 1 over steps, and a large one spreads them evenly like
independent sampling). A child that reaches the answer prefix, a stop string or the end of
sequence is a finished leaf; the search ends when `width` leaves are finished, at `max_depth`, or
when the token budget is spent (the open nodes then end as leaves). A node's score is its path's
log-likelihood, mean per token or summed, as for votes: the generating model's own (the
log-probabilities of the tokens as they were generated), or a separate scorer model's.

The search returns each question's leaves as generations, so the strategies answer from them as
from K samples (`vote: best_of_n` takes the best-scored leaf, `weighted` is Wu et al.'s weighted
vote over leaves), and every expansion step as a branch for the cost record: its start (tokens
past the prompt) and the tokens generated. All questions of a call advance in lockstep, so each
depth is one batched `generate` call.

The budget is a hard limit: before each depth a step may take at most the budget left divided by
the children asked, so the tokens generated never exceed `token_budget`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from thinkcost.engines.base import Engine, Generation, GenerationRequest, SamplingSpec


@dataclass(frozen=True)
class SearchSettings:
    width: int = 4  # nodes per depth, and the leaves wanted
    max_depth: int = 8
    step_tokens: int = 64  # the longest step
    token_budget: int = 512  # tokens generated per question, every node together
    temperature: float = 1.0  # of the softmax that allocates children
    step_stop: str = "\n"

    def __post_init__(self) -> None:
        for name in ("width", "max_depth", "step_tokens", "token_budget"):
            if getattr(self, name) < 1:
                raise ValueError(f"search.{name} must be at least 1, not {getattr(self, name)}")
        if self.temperature < 0:
            raise ValueError(f"search.temperature must be ≥ 0, not {self.temperature}")


@dataclass
class Node:
    text: str  # the rationale so far, after the prompt
    tokens: int  # tokens generated along the path
    logprob: float | None = 0.0  # theirs, summed (None: the engine gave none)
    score: float = 0.0
    step: int = -1  # the index of the step that made it (-1: the root)
    stopped_by: str = ""


@dataclass
class SearchResult:
    """One question's search: its leaves (best first is not implied: creation order) and every
    expansion step as (start: path tokens before it, tokens generated)."""

    leaves: list[Node] = field(default_factory=list)
    steps: list[tuple[int, int]] = field(default_factory=list)

    @property
    def generated_tokens(self) -> int:
        return sum(tokens for _, tokens in self.steps)

    def generations(self) -> list[Generation]:
        return [
            Generation(leaf.text, leaf.tokens, leaf.stopped_by, leaf.logprob)
            for leaf in self.leaves
        ]


def allocate(width: int, scores: Sequence[float], temperature: float) -> list[int]:
    """`width` children shared by softmax(scores / temperature), rounded by largest remainder
    (ties to the earlier node), so they always sum to `width`."""
    scores = np.asarray(scores, dtype=float)
    if temperature == 0:  # every child to the best node (the first of equals): a beam
        weights = np.zeros(len(scores))
        weights[np.argmax(scores)] = 1.0
    else:
        weights = np.exp((scores - scores.max()) / temperature)
    exact = width * weights / weights.sum()
    counts = np.floor(exact).astype(int)
    order = sorted(range(len(scores)), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in order[: width - counts.sum()]:
        counts[i] += 1
    return counts.tolist()


def search(
    engine: Engine,
    prompts: Sequence[str],
    keys: Sequence[str],
    spec: SamplingSpec,
    settings: SearchSettings,
    score_nodes,
) -> list[SearchResult]:
    """REBASE for every prompt at once. `spec` gives the sampling, the seed and the stop
    strings that finish a rationale; `score_nodes(prompts, nodes)` scores paths (higher is
    better)."""
    results = [SearchResult() for _ in prompts]
    frontier = [[Node("", 0)] for _ in prompts]
    for depth in range(settings.max_depth):
        asked: list[tuple[int, Node, int]] = []  # (question, node, children)
        caps: dict[int, int] = {}
        for q, nodes in enumerate(frontier):
            wanted = settings.width - len(results[q].leaves)
            if not nodes or wanted <= 0:
                continue
            counts = allocate(wanted, [n.score for n in nodes], settings.temperature)
            left = settings.token_budget - results[q].generated_tokens
            cap = min(settings.step_tokens, left // wanted)
            if cap < 1:  # the budget is spent: the open nodes end where they are
                results[q].leaves.extend(_ended(nodes, "budget"))
                frontier[q] = []
                continue
            caps[q] = cap
            asked.extend(
                (q, node, count) for node, count in zip(nodes, counts, strict=True) if count
            )
        if not asked:
            break
        children: list[tuple[int, Node]] = []
        for cap in sorted(set(caps.values())):
            group = [(q, node, count) for q, node, count in asked if caps[q] == cap]
            step_spec = replace(spec, max_new_tokens=cap, stop=(settings.step_stop, *spec.stop))
            drawn = engine.generate(
                [
                    GenerationRequest(
                        prompts[q] + node.text, count, f"{keys[q]}\x00{depth}\x00{node.step}"
                    )
                    for q, node, count in group
                ],
                step_spec,
            )
            for (q, node, _), samples in zip(group, drawn, strict=True):
                for sample in samples:
                    results[q].steps.append((node.tokens, sample.tokens))
                    # A line ends a step; a step cut at its length goes on at the next depth;
                    # the end of sequence or a finishing stop string ends the rationale.
                    line = sample.stopped_by == f"stop:{settings.step_stop}"
                    ended = not line and sample.stopped_by != "length"
                    logprob = (
                        None
                        if node.logprob is None or sample.logprob is None
                        else node.logprob + sample.logprob
                    )
                    child = Node(
                        node.text + sample.text + (settings.step_stop if line else ""),
                        node.tokens + sample.tokens,
                        logprob,
                        step=len(results[q].steps) - 1,
                        stopped_by=sample.stopped_by if ended else "",
                    )
                    children.append((q, child))
        scores = score_nodes([prompts[q] for q, _ in children], [c for _, c in children])
        frontier = [[] for _ in prompts]
        for (q, child), value in zip(children, scores, strict=True):
            child.score = value
            if child.stopped_by:
                results[q].leaves.append(child)
            else:
                frontier[q].append(child)
    for q, nodes in enumerate(frontier):
        results[q].leaves.extend(_ended(nodes, "depth"))
        if not results[q].leaves:  # nothing was generated at all
            results[q].leaves.append(Node("", 0, None, -math.inf, -1, "budget"))
    return results


def _ended(nodes: Sequence[Node], why: str) -> list[Node]:
    return [replace(node, stopped_by=node.stopped_by or why) for node in nodes]

"""Questions and answers as strategies see them, and the prompts built from a question.

A `Question` is what the lm-eval adapter hands a strategy; an `Answer` what comes back: the
choice scores (or the free-form text), the generations drawn and their `RequestCost`. The
prompt helpers say how a question reads before generation (`generation_prompt`), what the
choices are scored after (`scoring_context`), and how a partially scored question (WinoGrande)
is shown whole, so one rationale can weigh every choice (`whole_question`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from thinkcost.engines.base import Generation
from thinkcost.inference.costs import RequestCost


@dataclass(frozen=True)
class Question:
    """One question: its context, its choices (none for free-form) and extra stop strings.

    A question with `choice_contexts` is scored partially (WinoGrande, XWinograd): choice i is
    the continuation `choices[i]` after its own context `choice_contexts[i]`, and `context` is
    the question shown as a whole (`whole_question`), which a rationale is generated after.
    """

    key: str  # the question's identity: it seeds its samples and names its checkpoint record
    context: str
    choices: tuple[str, ...] = ()
    stop: tuple[str, ...] = ()
    choice_contexts: tuple[str, ...] = ()


@dataclass
class Answer:
    scores: list[tuple[float, bool]] = field(default_factory=list)  # per choice
    text: str = ""  # the free-form answer
    generations: list[Generation] = field(default_factory=list)
    cost: RequestCost = field(
        default_factory=lambda: RequestCost(task="", doc_id=-1, prompt_tokens=0)
    )
    # With k > 1 samples, what each one said, for votes over any k of them (k sweeps):
    # "answers" (a choice index, or the extracted free-form answer), "scores" (its sequence
    # log-likelihood, `score` convention) and, for multiple choice, "choice_loglik".
    samples: dict = field(default_factory=dict)


def generation_prompt(context: str, trigger: str) -> str:
    """The question as the model sees it before it starts generating."""
    if not trigger:
        return context
    separator = "" if not context or context[-1].isspace() else " "
    return f"{context}{separator}{trigger}"


def scoring_context(prompt: str, rationale: str, answer_prefix: str) -> str:
    """What the choices are scored after: prompt, rationale, then the answer prefix."""
    body = f"{prompt}{rationale}".rstrip()
    return f"{body} {answer_prefix}" if answer_prefix else body


def split_contexts(contexts: Sequence[str]) -> tuple[str, list[str]]:
    """The lines the contexts share (a task description, few-shot examples) and each one's own
    ending: the shared part is cut back to a line break, so no sentence is split."""
    common = contexts[0]
    for context in contexts[1:]:
        length = next(
            (i for i, (a, b) in enumerate(zip(common, context, strict=False)) if a != b),
            min(len(common), len(context)),
        )
        common = common[:length]
    shared = common[: common.rfind("\n") + 1]
    return shared, [context[len(shared) :] for context in contexts]


WHOLE_QUESTION = "Which sentence makes more sense?"


def whole_question(contexts: Sequence[str], continuations: Sequence[str]) -> str:
    """A partially scored question shown as a whole, so one rationale can weigh every choice:
    the shared lines, then each choice's full sentence (its context's ending + continuation)."""
    shared, endings = split_contexts(contexts)
    options = "\n".join(
        f"({chr(ord('A') + i)}) {(ending + continuation).strip()}"
        for i, (ending, continuation) in enumerate(zip(endings, continuations, strict=True))
    )
    return f"{shared}{WHOLE_QUESTION}\n{options}\n"

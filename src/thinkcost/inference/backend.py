"""The lm-eval adapter: the registered `thinkcost` model.

It maps lm-eval's requests to questions and back and keeps what lm-eval must not lose: the
checkpoint a retried job resumes from, the per-question cost records and the rationales. The
work is done by two layers it only configures:

- an **engine** (`thinkcost.engines`): one loaded model and its token-level primitives;
- a **strategy** (`inference.strategies`): how a question becomes engine calls and an answer —
  `Direct` (the paper's direct format), `Hybrid` (generate up to T tokens after an optional
  trigger, append "The answer is:", score every choice; k samples combined by a vote) or
  `FreeForm` (generate the answer; lm-eval's filters extract it).

The adapter hands a strategy many questions at once (a checkpoint chunk), so the engine can
keep its batch full.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import asdict, replace

from lm_eval.api.model import TemplateLM
from lm_eval.api.registry import register_model

from thinkcost.engines import Engine, Generation, SamplingSpec, load_engine
from thinkcost.inference.checkpoint import Checkpoint
from thinkcost.inference.costs import RequestCost
from thinkcost.inference.questions import Answer, Question, whole_question
from thinkcost.inference.strategies import Direct, FreeForm, Hybrid
from thinkcost.inference.tree_search import SearchSettings

log = logging.getLogger(__name__)

# Changes whenever a checkpointed record would mean something else: older files are not reused.
CHECKPOINT_VERSION = 4


@register_model("thinkcost")
class ThinkcostLM(TemplateLM):
    def __init__(
        self,
        pretrained: str,
        engine: str | Engine = "hf",
        format: str = "hybrid",
        trigger: str = "",
        answer_prefix: str = "The answer is:",
        max_new_tokens: int = 256,
        stop: tuple[str, ...] | list[str] = ("Q:", "Question:"),
        do_sample: bool = False,
        temperature: float = 1.0,
        top_p: float = 1.0,
        num_samples: int = 1,
        vote: str = "majority",
        score: str = "mean",
        scorer: str | Engine | None = None,
        search: dict | None = None,
        seed: int = 1234,
        batch_size: int = 32,
        checkpoint: str | None = None,
        questions_per_checkpoint: int | None = None,
        **engine_options,
    ) -> None:
        super().__init__()
        if format not in ("hybrid", "loglikelihood"):
            raise ValueError(f"format must be 'hybrid' or 'loglikelihood', not {format!r}")
        self.format = format
        self.trigger = trigger
        self.answer_prefix = answer_prefix
        self.max_new_tokens = int(max_new_tokens)
        self.stop = list(stop)
        self.num_samples = int(num_samples)
        self.batch_size = int(batch_size)
        # A chunk is what a killed job can lose; large enough to keep the engine's batch full.
        self.questions_per_checkpoint = int(questions_per_checkpoint or 4 * self.batch_size)
        self.spec = SamplingSpec(
            max_new_tokens=self.max_new_tokens,
            stop=tuple(self.stop),
            do_sample=bool(do_sample),
            temperature=float(temperature),
            top_p=float(top_p),
            seed=int(seed),
        )
        # The strategies check their knobs before a model is loaded.
        self.hybrid, self.free_form = self._strategies(vote, score, search)
        self.engine, self.scorer = self._load_engines(pretrained, engine, scorer, engine_options)
        self.hybrid = replace(self.hybrid, scorer=self.scorer)
        self.free_form = replace(self.free_form, scorer=self.scorer)
        self.tokenizer = getattr(self.engine, "tokenizer", None)
        self._check_budget(pretrained)

        self.request_costs: list[RequestCost] = []
        self.rationales: dict[tuple[str | None, int | None], list[Generation]] = {}
        # Per question with k > 1 samples: each sample's answer and score (Answer.samples).
        self.samples: dict[tuple[str | None, int | None], dict] = {}
        self.resumed_requests = 0
        self.resumed_seconds = 0.0
        self.resumed_generation_seconds = 0.0
        signature = self._signature(pretrained, engine, vote, score, search, scorer, engine_options)
        self.checkpoint = Checkpoint(checkpoint, signature=signature)

    def _strategies(self, vote: str, score: str, search: dict | None) -> tuple[Hybrid, FreeForm]:
        """The hybrid and free-form strategies of this model's knobs (no scorer model yet)."""
        # A model that starts its own "The answer is" has finished its rationale: ours follows.
        answer_stop = (self.answer_prefix.rstrip(": "),) if self.answer_prefix else ()
        hybrid = Hybrid(
            spec=replace(self.spec, stop=(*self.spec.stop, *answer_stop)),
            trigger=self.trigger,
            answer_prefix=self.answer_prefix,
            num_samples=self.num_samples,
            vote=vote,
            score=score,
            search=SearchSettings(**search) if search else None,
        )
        free_form = FreeForm(
            spec=self.spec,
            trigger=self.trigger,
            num_samples=self.num_samples,
            vote=vote,
            score=score,
            search=hybrid.search,
        )
        return hybrid, free_form

    def _load_engines(
        self,
        pretrained: str,
        engine: str | Engine,
        scorer: str | Engine | None,
        engine_options: dict,
    ) -> tuple[Engine, Engine | None]:
        """The generating engine and the separate scorer model, if any (best-of-n, weighted
        votes), loaded alike; an engine already loaded (a benchmark, a test) is used as it is."""
        generator = (
            engine
            if isinstance(engine, Engine)
            else load_engine(engine, pretrained, max_batch_size=self.batch_size, **engine_options)
        )
        if not isinstance(scorer, str):
            return generator, scorer
        return generator, load_engine(
            engine if isinstance(engine, str) else "hf",
            scorer,
            max_batch_size=self.batch_size,
            # It only scores: the generator's draft model is none of its business.
            **{k: v for k, v in engine_options.items() if k != "assistant"},
        )

    def _check_budget(self, pretrained: str) -> None:
        """Checked as the model loads, before a token is generated: a generation budget the
        context cannot hold would leave no room for the prompt."""
        if self.format == "hybrid" and self.max_new_tokens >= self.engine.max_length:
            raise ValueError(
                f"max_new_tokens={self.max_new_tokens} does not fit the context of {pretrained} "
                f"({self.engine.max_length} tokens) and leaves no room for the prompt; lower it"
            )

    def _signature(
        self,
        pretrained: str,
        engine: str | Engine,
        vote: str,
        score: str,
        search: dict | None,
        scorer: str | Engine | None,
        engine_options: dict,
    ) -> dict:
        """What the checkpoint's records depend on: a file written under another is not reused."""
        return {
            "version": CHECKPOINT_VERSION,
            "pretrained": str(pretrained),
            "engine": engine if isinstance(engine, str) else type(engine).__name__,
            "format": self.format,
            "trigger": self.trigger,
            "answer_prefix": self.answer_prefix,
            "num_samples": self.num_samples,
            "vote": vote,
            "score": score,
            "search": search,
            "scorer": scorer if scorer is None or isinstance(scorer, str) else "instance",
            "spec": asdict(self.spec),
            "engine_options": {k: str(v) for k, v in sorted(engine_options.items())},
        }

    # ------------------------------------------------------------------ lm-eval's model API

    @property
    def eot_token_id(self) -> int:
        return min(self.engine.eos_token_ids)

    @property
    def max_length(self) -> int:
        return self.engine.max_length

    def tok_encode(
        self, string: str, add_special_tokens: bool | None = None, **kwargs
    ) -> list[int]:
        return self.engine.tokenize(string, add_special_tokens=add_special_tokens is not False)

    def tok_decode(self, tokens) -> str:
        return self.engine.detokenize(tokens)

    @property
    def tokenizer_name(self) -> str:
        return str(getattr(self.tokenizer, "name_or_path", "thinkcost")).replace("/", "__")

    def apply_chat_template(self, chat_history, add_generation_prompt: bool = True) -> str:
        return self.tokenizer.apply_chat_template(
            chat_history,
            tokenize=False,
            add_generation_prompt=add_generation_prompt,
            continue_final_message=not add_generation_prompt,
        )

    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, **kwargs):
        raise NotImplementedError("thinkcost scores text through its engine (loglikelihood)")

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
        raise NotImplementedError(
            "thinkcost evaluates multiple-choice and free-form tasks; perplexity tasks "
            "(loglikelihood_rolling) are not supported: use lm-eval's hf model for them"
        )

    # ------------------------------------------------------------------ metering

    @property
    def forward_passes(self) -> int:
        return self.engine.counters.forward_passes

    @property
    def forward_tokens(self) -> int:
        return self.engine.counters.forward_tokens

    @property
    def generation_seconds(self) -> float:
        """Seconds spent generating, those of requests a killed attempt finished included."""
        counters = self.engine.counters
        return counters.prefill_seconds + counters.decode_seconds + self.resumed_generation_seconds

    # ------------------------------------------------------------------ requests → questions

    def loglikelihood(self, requests, disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        strategy = Direct() if self.format == "loglikelihood" else self.hybrid
        questions = self._questions(requests)

        results: list[tuple[float, bool] | None] = [None] * len(requests)
        answered = self._answer_checkpointed([q for q, _ in questions], strategy)
        for (_, indices), record in zip(questions, answered, strict=True):
            for index, (loglik, greedy) in zip(indices, record["scores"], strict=True):
                results[index] = (loglik, greedy)
            self._restore(requests[indices[0]], record)
        return results  # type: ignore[return-value]

    def _questions(self, requests) -> list[tuple[Question, list[int]]]:
        """lm-eval's log-likelihood requests as questions, with the requests each answers.

        A document's requests are one question: its choices after one shared context, or,
        where each choice is its own context before one shared continuation (WinoGrande's
        partial scoring), one question shown as a whole, so it gets one rationale.
        """
        docs: dict[tuple, list[int]] = defaultdict(list)
        for index, request in enumerate(requests):
            doc = request.doc_id is not None
            docs[(request.task_name, request.doc_id) if doc else (request.args[0],)].append(index)
        questions = []
        for indices in docs.values():
            contexts = [requests[i].args[0] for i in indices]
            continuations = tuple(requests[i].args[1] for i in indices)
            if len(indices) > 1 and len(set(continuations)) == 1 and len(set(contexts)) > 1:
                context = whole_question(contexts, continuations)
                key = self.checkpoint.key(context, *contexts, *continuations)
                question = Question(key, context, continuations, choice_contexts=tuple(contexts))
                questions.append((question, indices))
                continue
            by_context: dict[str, list[int]] = defaultdict(list)
            for i in indices:
                by_context[requests[i].args[0]].append(i)
            for context, members in by_context.items():
                choices = tuple(requests[i].args[1] for i in members)
                key = self.checkpoint.key(context, *choices)
                questions.append((Question(key=key, context=context, choices=choices), members))
        return questions

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        """Free-form tasks: generate after the trigger, stop at the task's or our stop strings."""
        questions = []
        for request in requests:
            context, arguments = request.args
            until = arguments.get("until", [])
            until = (until,) if isinstance(until, str) else tuple(until)
            key = self.checkpoint.key(context, *until, *self.stop)
            questions.append(Question(key=key, context=context, stop=until))
        strategy = self.free_form
        outputs = []
        for request, record in zip(
            requests, self._answer_checkpointed(questions, strategy), strict=True
        ):
            self._restore(request, record)
            outputs.append(record["text"])
        return outputs

    # ------------------------------------------------------------------ resuming

    def _answer_checkpointed(self, questions: list[Question], strategy) -> list[dict]:
        """The strategy's answer to every question, one chunk at a time, each chunk saved.

        Questions whose record the checkpoint already holds (a previous attempt of this job got
        that far before it was killed or preempted) are not asked again. Samples are seeded by
        question, so the rest come out as they would have without the interruption.
        """
        records: dict[str, dict] = {}
        fresh: dict[str, Question] = {}
        for question in questions:
            if question.key in records or question.key in fresh:
                continue
            record = self.checkpoint.get(question.key)
            if record is None:
                fresh[question.key] = question
                continue
            self.resumed_requests += 1
            self.resumed_seconds += record["seconds"]
            self.resumed_generation_seconds += record["generation_seconds"]
            records[question.key] = record
        pending = list(fresh.values())
        size = self.questions_per_checkpoint
        for begin in range(0, len(pending), size):
            chunk = pending[begin : begin + size]
            started, generation_before = time.perf_counter(), self.generation_seconds
            answers = strategy.answer(self.engine, chunk)
            seconds = (time.perf_counter() - started) / len(chunk)
            generation = (self.generation_seconds - generation_before) / len(chunk)
            for question, answer in zip(chunk, answers, strict=True):
                record = self._record(answer, seconds, generation)
                self.checkpoint.put(question.key, record)
                records[question.key] = record
        return [records[question.key] for question in questions]

    @staticmethod
    def _record(answer: Answer, seconds: float, generation_seconds: float) -> dict:
        return {
            "scores": answer.scores,
            "text": answer.text,
            "generations": [asdict(g) for g in answer.generations],
            "cost": asdict(answer.cost),
            "samples": answer.samples,
            "seconds": seconds,
            "generation_seconds": generation_seconds,
        }

    def _restore(self, request, record: dict) -> None:
        cost = RequestCost(**record["cost"])
        cost.task = request.task_name or ""
        cost.doc_id = int(request.doc_id) if request.doc_id is not None else -1
        self.request_costs.append(cost)
        if record["generations"]:
            self.rationales[(request.task_name, request.doc_id)] = [
                Generation(**g) for g in record["generations"]
            ]
        if record["samples"]:
            self.samples[(request.task_name, request.doc_id)] = record["samples"]

    def extract_answers_with(self, extract) -> None:
        """Free-form samples vote on `extract(text)`, the task's filter (set by `evaluate.cell`)."""
        self.free_form = replace(self.free_form, extract=extract)

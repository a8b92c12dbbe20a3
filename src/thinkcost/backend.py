"""The lm-eval model that evaluates an optimization and measures what it costs.

`ThinkcostLM` is lm-eval's HF model (`HFLM`) with two additions:

- the paper's **hybrid format** for multiple-choice tasks: for each question generate up to T
  tokens (after an optional trigger such as "Let's think step by step."), append
  "The answer is:", then score every choice by log-likelihood with lm-eval's own scorer;
- a **cost meter**: prompt, generated and answer tokens per request (counted with the model's
  tokenizer), forward passes and tokens actually run, generation time.

Generation returns k rationales per question (self-consistency with `num_samples`), combined by
a vote rule. The choices after a rationale are scored on one shared KV cache (`score_choices`).
"""

from __future__ import annotations

import logging
import math
import time
from collections import defaultdict
from dataclasses import asdict, dataclass

import torch
import transformers
from lm_eval.api.registry import register_model
from lm_eval.models.huggingface import HFLM

from thinkcost.checkpoint import Checkpoint
from thinkcost.costs import RequestCost

log = logging.getLogger(__name__)


@dataclass
class Generation:
    """One generated continuation, cut at its first stop sequence or end-of-sequence token."""

    text: str
    tokens: int  # tokens the model generated for it, the stop sequence or EOS included
    stopped_by: str  # "eos", "stop:<sequence>" or "length"


@register_model("thinkcost")
class ThinkcostLM(HFLM):
    def __init__(
        self,
        pretrained,
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
        seed: int = 1234,
        compile: bool = False,
        checkpoint: str | None = None,
        **kwargs,
    ) -> None:
        super().__init__(pretrained=pretrained, **kwargs)
        if format not in ("hybrid", "loglikelihood"):
            raise ValueError(f"format must be 'hybrid' or 'loglikelihood', not {format!r}")
        if vote not in ("majority", "marginal"):
            raise ValueError(f"vote must be 'majority' or 'marginal', not {vote!r}")
        self.format = format
        self.trigger = trigger
        self.answer_prefix = answer_prefix
        self.max_new_tokens = int(max_new_tokens)
        self.stop = list(stop)
        self.do_sample = bool(do_sample)
        self.temperature = float(temperature)
        self.top_p = float(top_p)
        self.num_samples = int(num_samples)
        self.vote = vote
        self.seed = int(seed)

        self.request_costs: list[RequestCost] = []
        self.rationales: dict[tuple[str | None, int | None], list[Generation]] = {}
        self.forward_passes = 0
        self.forward_tokens = 0
        self.generation_seconds = 0.0
        self.resumed_requests = 0
        self.resumed_seconds = 0.0
        self.checkpoint = Checkpoint(
            checkpoint,
            signature={
                "pretrained": str(pretrained),
                "format": format,
                "trigger": trigger,
                "answer_prefix": answer_prefix,
                "max_new_tokens": int(max_new_tokens),
                "stop": list(stop),
                "do_sample": bool(do_sample),
                "temperature": float(temperature),
                "top_p": float(top_p),
                "num_samples": int(num_samples),
                "vote": vote,
                "seed": int(seed),
                "kwargs": {k: str(v) for k, v in sorted(kwargs.items()) if k != "batch_size"},
            },
        )
        self.model.register_forward_hook(self._count_forward)
        if compile:
            self.model.forward = torch.compile(self.model.forward)

    # ------------------------------------------------------------------ metering

    def _count_forward(self, module, args, output) -> None:
        self.forward_passes += 1
        input_ids = args[0] if args else None
        if isinstance(input_ids, torch.Tensor):
            self.forward_tokens += int(input_ids.numel())

    def generation_prompt(self, context: str) -> str:
        """The question as the model sees it before it starts generating."""
        if not self.trigger:
            return context
        separator = "" if not context or context[-1].isspace() else " "
        return f"{context}{separator}{self.trigger}"

    def scoring_context(self, prompt: str, rationale: str) -> str:
        """What the choices are scored after: prompt, rationale, then the answer prefix."""
        body = f"{prompt}{rationale}".rstrip()
        return f"{body} {self.answer_prefix}" if self.answer_prefix else body

    # ------------------------------------------------------------------ generation

    def _cut(self, new_tokens: list[int], stop: list[str]) -> Generation:
        """Cut generated tokens at EOS or the first stop sequence; count what was generated."""
        eos = self.eot_token_id
        end = new_tokens.index(eos) + 1 if eos in new_tokens else len(new_tokens)
        stopped_by = "eos" if eos in new_tokens else "length"
        text = self.tok_decode(new_tokens[: end - 1 if stopped_by == "eos" else end])
        hits = [(text.find(s), s) for s in stop if s and s in text]
        if hits:
            position, sequence = min(hits)
            # The fewest tokens whose decoding already contains the stop sequence: what the
            # model had to generate before the stopping criterion could fire.
            low, high = 1, end
            while low < high:
                middle = (low + high) // 2
                if sequence in self.tok_decode(new_tokens[:middle]):
                    high = middle
                else:
                    low = middle + 1
            return Generation(text=text[:position], tokens=low, stopped_by=f"stop:{sequence}")
        return Generation(text=text, tokens=end, stopped_by=stopped_by)

    def generate_texts(
        self, prompts: list[str], stop: list[str], max_new_tokens: int, num_samples: int = 1
    ) -> list[list[Generation]]:
        """`num_samples` generations for every prompt, batched, in the order of `prompts`."""
        transformers.set_seed(self.seed)
        jobs = [(i, j) for i in range(len(prompts)) for j in range(num_samples)]
        # Longest first: a batch's padding is then small, and an out-of-memory shows up at once.
        lengths = [len(self.tok_encode(p)) for p in prompts]
        jobs.sort(key=lambda job: -lengths[job[0]])
        results: list[list[Generation | None]] = [[None] * num_samples for _ in prompts]
        batch_size = int(self.batch_size) if str(self.batch_size).isdigit() else 8
        max_context = self.max_length - max_new_tokens
        started = time.perf_counter()
        for begin in range(0, len(jobs), batch_size):
            batch = jobs[begin : begin + batch_size]
            input_ids, attention_mask = self.tok_batch_encode(
                [prompts[i] for i, _ in batch], left_truncate_len=max_context
            )
            input_ids = input_ids.to(self.device)
            attention_mask = attention_mask.to(self.device)
            kwargs = {"do_sample": self.do_sample}
            if self.do_sample:
                kwargs.update(temperature=self.temperature, top_p=self.top_p)
            output = self._model_generate(
                context=input_ids,
                max_length=input_ids.shape[1] + max_new_tokens,
                stop=stop,
                attention_mask=attention_mask,
                **kwargs,
            )
            for row, (i, j) in enumerate(batch):
                new_tokens = output[row, input_ids.shape[1] :].tolist()
                results[i][j] = self._cut(new_tokens, stop)
        self.generation_seconds += time.perf_counter() - started
        return results  # type: ignore[return-value]

    # ------------------------------------------------------------------ lm-eval API

    def _prompt_cost(self, request, prompt: str) -> RequestCost:
        encoded = self.tok_encode(prompt)
        return RequestCost(
            task=request.task_name or "",
            doc_id=int(request.doc_id) if request.doc_id is not None else -1,
            prompt_tokens=len(encoded),
            truncated=len(encoded) > self.max_length,
        )

    @torch.no_grad()
    def score_choices(self, context: str, continuations: list[str]) -> list[tuple[float, bool]]:
        """Log-likelihood of each continuation after one shared context, reusing its KV cache.

        lm-eval's scorer runs context + continuation once per choice; after a 256-token
        rationale that is almost all repeated work. Here the context runs once and the choices,
        right-padded (causal attention never looks ahead, so no mask is needed), run as one
        batch on copies of its cache. Tokenization follows lm-eval's `_encode_pair`, so the
        numbers are those `HFLM.loglikelihood` would give for the same strings.
        """
        pairs = [self._encode_pair(context, continuation) for continuation in continuations]
        context_enc = pairs[0][0]
        if any(pair[0] != context_enc for pair in pairs):
            raise ValueError("continuations changed the tokenization of their shared context")
        choices = [pair[1] for pair in pairs]
        width = max(len(choice) for choice in choices)
        context_enc = context_enc[-(self.max_length - width) :]

        prefix = self.model(torch.tensor([context_enc], device=self.device), use_cache=True)
        cache = prefix.past_key_values
        cache.batch_repeat_interleave(len(choices))
        padded = torch.full((len(choices), width), self.eot_token_id, device=self.device)
        for row, choice in enumerate(choices):
            padded[row, : len(choice)] = torch.tensor(choice, device=self.device)
        logits = self.model(padded, past_key_values=cache, use_cache=True).logits
        # The context's last position predicts each choice's first token.
        first = prefix.logits[:, -1:, :].expand(len(choices), 1, -1)
        logprobs = torch.log_softmax(torch.cat([first, logits[:, :-1]], dim=1).float(), dim=-1)

        results = []
        for row, choice in enumerate(choices):
            target = torch.tensor(choice, device=self.device)
            scores = logprobs[row, : len(choice)]
            loglik = scores.gather(1, target[:, None]).sum()
            results.append((float(loglik), bool((scores.argmax(dim=-1) == target).all())))
        return results

    def loglikelihood(self, requests, disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        docs: dict[str, list[int]] = defaultdict(list)
        for index, request in enumerate(requests):
            docs[request.args[0]].append(index)

        if self.format == "loglikelihood":
            # The paper's direct format is plain lm-eval scoring, by lm-eval's own code.
            results = super().loglikelihood(requests, disable_tqdm=True)
            for indices in docs.values():
                first = requests[indices[0]]
                cost = self._prompt_cost(first, first.args[0])
                cost.answer = [
                    [
                        len(self.tok_encode(requests[i].args[1], add_special_tokens=False))
                        for i in indices
                    ]
                ]
                self.request_costs.append(cost)
            return results

        # A model that starts its own "The answer is" has finished its rationale: ours follows.
        stop = [*self.stop, self.answer_prefix.rstrip(": ")] if self.answer_prefix else self.stop
        prefix_tokens = len(self.tok_encode(" " + self.answer_prefix, add_special_tokens=False))

        def key(context: str) -> str:
            return self.checkpoint.key(context, *(requests[i].args[1] for i in docs[context]))

        def run(contexts: list[str]) -> list[dict]:
            prompts = [self.generation_prompt(context) for context in contexts]
            generations = self.generate_texts(prompts, stop, self.max_new_tokens, self.num_samples)
            records = []
            for context, prompt, samples in zip(contexts, prompts, generations, strict=True):
                indices = docs[context]
                continuations = [requests[i].args[1] for i in indices]
                per_sample = [
                    self.score_choices(self.scoring_context(prompt, g.text), continuations)
                    for g in samples
                ]
                per_choice = [list(choice) for choice in zip(*per_sample, strict=True)]
                cost = self._prompt_cost(requests[indices[0]], prompt)
                cost.generated = [g.tokens for g in samples]
                choice_tokens = [
                    len(self.tok_encode(c, add_special_tokens=False)) for c in continuations
                ]
                cost.answer = [[prefix_tokens + t for t in choice_tokens] for _ in samples]
                records.append(
                    {
                        "scores": self.combine(per_choice),
                        "generations": [asdict(g) for g in samples],
                        "cost": asdict(cost),
                    }
                )
            return records

        results: list[tuple[float, bool] | None] = [None] * len(requests)
        for context, record in self._run_checkpointed(list(docs), key, run):
            for index, (loglik, greedy) in zip(docs[context], record["scores"], strict=True):
                results[index] = (loglik, greedy)
            self._restore(requests[docs[context][0]], record)
        return results  # type: ignore[return-value]

    # ------------------------------------------------------------------ resuming

    def _run_checkpointed(self, items: list, key, run) -> list[tuple]:
        """`run` over `items` in chunks, each chunk's records saved before the next starts.

        Items whose record the checkpoint already holds (a previous attempt of this job got that
        far before it was killed or preempted) are not run again.
        """
        size = max(1, 4 * (int(self.batch_size) if str(self.batch_size).isdigit() else 8))
        done = []
        for begin in range(0, len(items), size):
            part = items[begin : begin + size]
            fresh = [item for item in part if self.checkpoint.get(key(item)) is None]
            if fresh:
                started, generation_before = time.perf_counter(), self.generation_seconds
                records = run(fresh)
                seconds = (time.perf_counter() - started) / len(fresh)
                generation = (self.generation_seconds - generation_before) / len(fresh)
                for item, record in zip(fresh, records, strict=True):
                    record.update(seconds=seconds, generation_seconds=generation)
                    self.checkpoint.put(key(item), record)
            for item in part:
                record = self.checkpoint.get(key(item))
                if item not in fresh:
                    self.resumed_requests += 1
                    self.resumed_seconds += record["seconds"]
                    self.generation_seconds += record["generation_seconds"]
                done.append((item, record))
        return done

    def _restore(self, request, record: dict) -> None:
        cost = RequestCost(**record["cost"])
        self.request_costs.append(cost)
        self.rationales[(request.task_name, request.doc_id)] = [
            Generation(**g) for g in record["generations"]
        ]

    def combine(self, per_choice: list[list[tuple[float, bool]]]) -> list[tuple[float, bool]]:
        """Combine the k samples' scores of each choice into one score per choice.

        With one sample the log-likelihoods pass through unchanged (so acc_norm stays valid).
        `marginal`: log of the mean probability over samples. `majority`: each sample votes for
        its most likely choice; the returned score is votes + a tie-break in [0, 0.5) from the
        marginal choice distribution, so it orders choices correctly but is not a
        log-likelihood: use the `acc` metric with voting.
        """
        k = len(per_choice[0])
        if k == 1:
            return [samples[0] for samples in per_choice]
        loglik = torch.tensor([[s[0] for s in samples] for samples in per_choice])  # choices × k
        marginal = torch.logsumexp(loglik, dim=1) - math.log(k)
        if self.vote == "marginal":
            return [(float(m), False) for m in marginal]
        votes = torch.bincount(loglik.argmax(dim=0), minlength=loglik.shape[0]).float()
        tie_break = 0.5 * torch.softmax(marginal, dim=0)
        return [(float(v + t), False) for v, t in zip(votes, tie_break, strict=True)]

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        """Free-form tasks: generate after the trigger, stop at the task's or our stop strings."""
        stops: list[list[str]] = []
        for request in requests:
            until = request.args[1].get("until", [])
            until = [until] if isinstance(until, str) else list(until)
            stops.append(until + self.stop)

        def key(index: int) -> str:
            return self.checkpoint.key(requests[index].args[0], *stops[index])

        def run(indices: list[int]) -> list[dict]:
            groups: dict[tuple[str, ...], list[int]] = defaultdict(list)
            for index in indices:
                groups[tuple(stops[index])].append(index)
            records = {}
            for stop, members in groups.items():
                prompts = [self.generation_prompt(requests[i].args[0]) for i in members]
                generations = self.generate_texts(prompts, list(stop), self.max_new_tokens)
                for index, prompt, (generation,) in zip(members, prompts, generations, strict=True):
                    cost = self._prompt_cost(requests[index], prompt)
                    cost.generated, cost.answer = [generation.tokens], [[]]
                    records[index] = {"generations": [asdict(generation)], "cost": asdict(cost)}
            return [records[index] for index in indices]

        outputs: list[str] = [""] * len(requests)
        for index, record in self._run_checkpointed(list(range(len(requests))), key, run):
            self._restore(requests[index], record)
            outputs[index] = record["generations"][0]["text"]
        return outputs

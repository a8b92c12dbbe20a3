"""HFEngine: a transformers causal LM behind the engine interface, and the scheduling of its calls.

`generate` runs one decode loop for every sequence: a finished sequence leaves the batch at once
and waiting prompts are prefilled, once each for all their samples, and join it. `score` computes
every distinct context once (or finds it in the prefix cache) and then every continuation after
it, batched across questions. The passes themselves are `runner`'s, the batch layout `batch`'s,
the drafts that greedy decoding verifies `drafting`'s.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence

import torch

from thinkcost.engines.base import (
    Generation,
    GenerationRequest,
    SamplingSpec,
    ScoreRequest,
    TransformersTokenizerEngine,
)
from thinkcost.engines.hf import runtime
from thinkcost.engines.hf.batch import Batch, Row, chunks, merge
from thinkcost.engines.hf.drafting import AssistantDrafts, Drafter, FinishedRationales, PromptLookup
from thinkcost.engines.hf.loading import load_assistant, load_model
from thinkcost.engines.hf.prefix_cache import Prefix, PrefixCache, common_prefix
from thinkcost.engines.hf.runner import ModelRunner, choose
from thinkcost.engines.hf.stops import StopStrings

# Context tokens left after a cached prefix that are run with each continuation rather than in
# a pass of their own (see `HFEngine._context_heads`).
SHORT_REMAINDER = 16
# Prompts that join a batch together share their common prefix through one pass of its own only
# where that saves at least this many prefill tokens (a pass costs about as much as tens of
# tokens besides those it computes, see drafting.CPU_PASS_OVERHEAD).
SHARED_PREFIX_MIN_SAVING = 64

# One distinct scoring context: its tokens, and each (request, continuation, tokens) after it.
Context = tuple[list[int], list[tuple[int, int, list[int]]]]


class HFEngine(TransformersTokenizerEngine):
    """A transformers causal LM behind the engine interface."""

    def __init__(
        self,
        pretrained: str,
        *,
        device: str = "cpu",
        dtype: str = "float32",
        attn_implementation: str | None = None,
        max_batch_size: int = 32,
        max_length: int | None = None,
        batch_tokens: int = 8192,
        prefix_cache_bytes: int = 2 << 30,
        draft_tokens: int = 4,
        compile: bool = False,
        quantization: str | None = None,
        assistant: str | None = None,
        trust_remote_code: bool = False,
    ) -> None:
        super().__init__()
        started = time.perf_counter()
        self.device = torch.device(device)
        self.tokenizer, self.model = load_model(
            pretrained, self.device, dtype, attn_implementation, quantization, trust_remote_code
        )
        self.quantization = quantization
        # The forward that the runner calls (through the module) is this one.
        self.compiled = runtime.CompiledForward(self.model.forward) if compile else None
        if self.compiled is not None:
            self.model.forward = self.compiled
        self.max_batch_size = int(max_batch_size)
        self.batch_tokens = int(batch_tokens)
        self.prefixes = PrefixCache(prefix_cache_bytes)
        draft_model = None
        if assistant:
            draft_model = load_assistant(
                assistant, pretrained, self.tokenizer, self.model, self.device, trust_remote_code
            )
        self._max_length = int(max_length) if max_length else self._model_max_length()
        self._set_eos(getattr(self.model.generation_config, "eos_token_id", None))
        self.runner = ModelRunner(self.model, self.device, self._pad_id, self.counters)
        self.drafter = self._drafter(int(draft_tokens), draft_model)
        self.counters.load_seconds += time.perf_counter() - started

    def _drafter(self, draft_tokens: int, draft_model) -> Drafter | None:
        """What greedy decoding verifies, up to `draft_tokens` tokens a step (0: nothing): the
        draft model's greedy continuation (speculative decoding), else prompt lookup's."""
        if draft_tokens <= 0:
            return None
        if draft_model is not None:
            return AssistantDrafts(
                draft_model, draft_tokens, self.device, self._pad_id, self.counters
            )
        return PromptLookup(draft_tokens, on_cpu=self.device.type == "cpu")

    def runtime(self) -> dict:
        return runtime.record(self.model, self.quantization, self.compiled)

    def _model_max_length(self) -> int:
        from lm_eval.models.utils import resolve_max_length

        return int(resolve_max_length(self.model.config, self.tokenizer, default=2048))

    @property
    def _pad_id(self) -> int:
        pad = self.tokenizer.pad_token_id
        return int(pad if pad is not None else next(iter(self._eos)))

    def clear_prefix_cache(self) -> None:
        self.prefixes.clear()

    def _chunks(self, items: list, length) -> list[list]:
        return chunks(items, length, self.max_batch_size, self.batch_tokens)

    # ------------------------------------------------------------------ generation

    def generate(
        self, requests: Sequence[GenerationRequest], spec: SamplingSpec
    ) -> list[list[Generation]]:
        prompt_limit = self.prompt_limit(spec.max_new_tokens)
        prompts = [self.tokenize(r.prompt)[-prompt_limit:] or [self._pad_id] for r in requests]
        stops = StopStrings(spec.stop, self.detokenize)
        results: list[list[Generation | None]] = [[None] * r.n for r in requests]
        # Longest prompts first: a memory peak shows at once, and prefills group similar lengths.
        waiting = deque(sorted(range(len(requests)), key=lambda i: -len(prompts[i])))
        batch: Batch | None = None
        finished = FinishedRationales()  # the latest rationales done, for prompt lookup
        while waiting or (batch is not None and batch.rows):
            joining = self._joining(waiting, batch, prompts, requests)
            if joining:
                batch = self._join(batch, joining, prompts, requests, spec)
            else:
                self._step(batch, spec, finished)
            done = [i for i, row in enumerate(batch.rows) if self._finished(row, spec, stops)]
            if done:
                batch = self._retire(batch, done, spec, results, finished)
        return results  # type: ignore[return-value]

    def _joining(
        self,
        waiting: deque[int],
        batch: Batch | None,
        prompts: list[list[int]],
        requests: Sequence[GenerationRequest],
    ) -> list[int]:
        """The waiting prompts that join the batch now (taken from `waiting`): none while it is
        more than three quarters full; else as many as fit its free rows and `batch_tokens`."""
        running = len(batch.rows) if batch is not None else 0
        free = self.max_batch_size - running
        if not waiting or (running and free < max(1, self.max_batch_size // 4)):
            return []
        joining, rows_needed = [], 0
        while waiting and (
            not joining
            or (
                rows_needed + requests[waiting[0]].n <= free
                and len(prompts[joining[0]]) * (len(joining) + 1) <= self.batch_tokens
            )
        ):
            joining.append(waiting.popleft())
            rows_needed += requests[joining[-1]].n
        return joining

    def _finished(self, row: Row, spec: SamplingSpec, stops: StopStrings) -> bool:
        added = row.generated[-row.added :]
        if not self._eos.isdisjoint(added) or len(row.generated) >= spec.max_new_tokens:
            return True
        return stops.completed(row.generated, row.added)

    def _retire(
        self,
        batch: Batch,
        done: list[int],
        spec: SamplingSpec,
        results: list[list[Generation | None]],
        finished: FinishedRationales,
    ) -> Batch | None:
        """Record the rows `done`, keep their sequences in the prefix cache and their
        rationales for prompt lookup; the batch of the rows left, if any."""
        for i in done:
            row = batch.rows[i]
            generation = self.cut(row.generated, spec.stop, row.logprobs)
            generation.assistant_tokens = row.assistant_tokens
            generation.assistant_pairs = row.assistant_pairs
            results[row.request][row.sample] = generation
            self.counters.generated_tokens += generation.tokens
            finished.add(row.generated)
            # The cache holds the prompt and every generated token but the last.
            self.prefixes.remember(Prefix.of_row(batch, i, row.prompt + row.generated[:-1]))
        keep = [i for i in range(len(batch.rows)) if i not in set(done)]
        return batch.select(keep, spec.max_new_tokens) if keep else None

    def _join(
        self,
        batch: Batch | None,
        joining: list[int],
        prompts: list[list[int]],
        requests: Sequence[GenerationRequest],
        spec: SamplingSpec,
    ) -> Batch:
        """Prefill the joining prompts once each, give each its n samples' rows, merge."""
        started = time.perf_counter()
        self._prefill_shared_prefix([prompts[i] for i in joining])
        rows_in = []
        for i in joining:
            # At least the last prompt token runs: its logits give the first new token.
            prefix, r = self.prefixes.longest(prompts[i], len(prompts[i]) - 1)
            rows_in.append((prefix, r, prompts[i][r:]))
            self.counters.reused_tokens += r
        logits, fresh = self.runner.extend(rows_in, align="left", logits_to_keep=1)
        self.counters.prefill_tokens += sum(len(new) for _, _, new in rows_in)
        repeats = torch.tensor([requests[i].n for i in joining], device=self.device)
        fresh = fresh.repeated(
            repeats,
            [
                Row(
                    request=i,
                    sample=j,
                    prompt=prompts[i],
                    generator=(
                        torch.Generator().manual_seed(spec.sample_seed(requests[i].key, j))
                        if spec.do_sample
                        else None
                    ),
                )
                for i in joining
                for j in range(requests[i].n)
            ],
        )
        first = logits[:, -1].repeat_interleave(repeats, dim=0)
        for row, token in zip(fresh.rows, choose(first, fresh.rows, spec), strict=True):
            row.generated.append(token)
        self.counters.prefill_seconds += time.perf_counter() - started
        return merge(batch, fresh).decoding(spec.max_new_tokens)

    def _prefill_shared_prefix(self, prompts: list[list[int]]) -> None:
        """Compute the prefix the joining prompts share (a task's instructions, its few-shot
        examples) once, into the prefix cache, where each prompt's lookup then finds it: a
        8-shot GSM8K prompt is mostly shared. Only where it saves more tokens than a pass
        costs on its own."""
        if len(prompts) < 2 or not self.prefixes.enabled:
            return
        shared = common_prefix(prompts)
        # At least each prompt's last token runs with the prompt: it gives the first new token.
        length = min(len(shared), min(len(prompt) for prompt in prompts) - 1)
        prefix, r = self.prefixes.longest(shared[:length], length)
        if (len(prompts) - 1) * (length - r) < SHARED_PREFIX_MIN_SAVING:
            return
        rows = [(prefix, r, shared[r:length])]
        _, computed = self.runner.extend(rows, align="left", logits_to_keep=1)
        self.counters.prefill_tokens += length - r
        self.counters.reused_tokens += r
        self.prefixes.remember(Prefix.of_row(computed, 0, shared[:length]))

    def _step(self, batch: Batch, spec: SamplingSpec, finished: FinishedRationales) -> None:
        """One decode step for every row: its next token, or, greedy with a drafter, its next
        tokens, as many as the model confirms of the row's draft, plus one."""
        started = time.perf_counter()
        drafter = None if spec.do_sample else self.drafter
        rows = batch.rows
        drafts = drafter.get_candidates(rows, spec, finished) if drafter else [[] for _ in rows]
        width = 1 + max(len(draft) for draft in drafts)
        # Built as lists and made tensors once: no tensor per row.
        fed_tokens = [[row.generated[-1], *draft] for row, draft in zip(rows, drafts, strict=True)]
        tokens = torch.tensor([t + [self._pad_id] * (width - len(t)) for t in fed_tokens])
        fed = torch.tensor([[1] * len(t) + [0] * (width - len(t)) for t in fed_tokens])
        columns = batch.mask.shape[1]
        logits = self.runner.decode_step(batch, tokens.to(self.device), fed)
        if drafter is not None:
            self._verify(batch, drafts, logits, columns, drafter)
        else:
            for row, token in zip(rows, choose(logits[:, 0], rows, spec), strict=True):
                row.generated.append(token)
                row.added = 1
            batch.positions = batch.positions + 1
        self.counters.decode_tokens += int(fed.sum())
        self.counters.decode_seconds += time.perf_counter() - started

    def _verify(
        self,
        batch: Batch,
        drafts: list[list[int]],
        logits: torch.Tensor,
        columns: int,
        drafter: Drafter,
    ) -> None:
        """Append to each row the draft tokens the model confirms and its own token after
        them: those greedy decoding would have produced one by one. The keys and values of
        rejected draft tokens (the batch's columns after `columns`) are masked out."""
        best = torch.log_softmax(logits.float(), dim=-1).max(dim=-1)
        predicted, best_logprobs = best.indices.tolist(), best.values.tolist()
        advanced, seen = [], []
        for i, (row, draft) in enumerate(zip(batch.rows, drafts, strict=True)):
            accepted = 0
            while accepted < len(draft) and draft[accepted] == predicted[i][accepted]:
                accepted += 1
            row.generated.extend([*draft[:accepted], predicted[i][accepted]])
            row.logprobs.extend(best_logprobs[i][: accepted + 1])
            row.added = accepted + 1
            batch.mask[i, columns + 1 + accepted :] = 0
            advanced.append(accepted + 1)
            seen.append(predicted[i][: accepted + 1])
            self.counters.draft_tokens += len(draft)
            self.counters.accepted_draft_tokens += accepted
        batch.positions = batch.positions + torch.tensor(advanced, device=self.device)
        drafter.update_candidate_strategy(seen)

    # ------------------------------------------------------------------ scoring

    @torch.no_grad()
    def score(self, requests: Sequence[ScoreRequest]) -> list[list[tuple[float, bool]]]:
        started = time.perf_counter()
        contexts = self._score_contexts(requests)
        heads = self._context_heads(contexts)
        # Then every continuation after its context's last token, batched across questions.
        results: list[list[tuple[float, bool] | None]] = [
            [None] * len(r.continuations) for r in requests
        ]
        pairs = [
            (index, member) for index, (_, members) in enumerate(contexts) for member in members
        ]
        for chunk in self._chunks(pairs, lambda pair: len(contexts[pair[0]][0]) + len(pair[1][2])):
            rows = [
                (
                    heads[index][0],
                    heads[index][1],
                    [*contexts[index][0][heads[index][1] :], *tokens],
                )
                for index, (_, _, tokens) in chunk
            ]
            logits, _ = self.runner.extend(rows, align="right", logits_to_keep=0)
            self.counters.scoring_tokens += sum(len(new) for _, _, new in rows)
            logprobs = torch.log_softmax(logits.float(), dim=-1)
            for row, (index, (i, j, tokens)) in enumerate(chunk):
                target = torch.tensor(tokens, device=logprobs.device)
                # The context's last token predicts the continuation's first.
                first = len(contexts[index][0]) - heads[index][1] - 1
                scores = logprobs[row, first : first + len(tokens)]
                loglik = float(scores.gather(1, target[:, None]).sum())
                results[i][j] = (loglik, bool((scores.argmax(dim=-1) == target).all()))
        self.counters.scoring_seconds += time.perf_counter() - started
        return results  # type: ignore[return-value]

    def _score_contexts(self, requests: Sequence[ScoreRequest]) -> list[Context]:
        """Each (context, continuation) pair tokenized as lm-eval does, grouped by context (the
        continuations of one request normally share its tokens), each context cut on the left
        to leave room for its longest continuation."""
        groups: dict[tuple[int, ...], list[tuple[int, int, list[int]]]] = {}
        for i, request in enumerate(requests):
            for j, continuation in enumerate(request.continuations):
                context, tokens = self.encode_pair(request.context, continuation)
                if not context:  # lm-eval conditions an empty context on the EOS token
                    context = [next(iter(self._eos))]
                groups.setdefault(tuple(context), []).append((i, j, tokens))
        contexts = []
        for context, members in groups.items():
            widest = max(len(tokens) for _, _, tokens in members)
            contexts.append((list(context)[-(self.max_length - widest) :], members))
        return contexts

    def _context_heads(self, contexts: list[Context]) -> list[tuple[Prefix | None, int]]:
        """Every context but its last token, computed once (or found in the prefix cache): each
        context's cached prefix and how many of its tokens that prefix holds.

        A short remainder (the answer prefix after a cached rationale) is cheaper to run again
        with each of two continuations than in a pass of its own; with three or more (BBH's
        option texts: up to six after each sample) the pass of its own costs fewer tokens, and
        it is one batched pass for every such context."""
        heads: list[tuple[Prefix | None, int]] = []
        missing = []
        for index, (context, members) in enumerate(contexts):
            prefix, r = self.prefixes.longest(context, len(context) - 1)
            self.counters.reused_tokens += r
            heads.append((prefix, r))
            remainder = len(context) - 1 - r
            if remainder > SHORT_REMAINDER or (remainder > 0 and len(members) > 2):
                missing.append(index)
        for chunk in self._chunks(missing, lambda index: len(contexts[index][0])):
            rows = [
                (heads[index][0], heads[index][1], contexts[index][0][heads[index][1] : -1])
                for index in chunk
            ]
            _, computed = self.runner.extend(rows, align="left", logits_to_keep=1)
            self.counters.scoring_tokens += sum(len(new) for _, _, new in rows)
            for row, index in enumerate(chunk):
                prefix = Prefix.of_row(computed, row, contexts[index][0][:-1])
                heads[index] = (prefix, len(prefix.tokens))
                self.prefixes.remember(prefix)
        return heads

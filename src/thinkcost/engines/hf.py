"""The transformers engine: continuous batching, one prefill per prompt, a cache of prefixes.

Why not `model.generate`: a static batch decodes until its longest member stops (on a CoT task
half the rationales stop after a few tokens while the rest run to the budget), k samples of a
prompt prefill it k times, and the choices scored after a rationale recompute the rationale.
Here one decode loop serves every sequence:

- **continuous batching**: a finished sequence leaves the batch at once and waiting prompts are
  prefilled and join it, so the batch stays full;
- **one prefill per prompt**: its key/value cache is copied to its k samples;
- **prefix cache**: a finished sequence's keys and values are kept (within a memory budget), so
  scoring the choices after "rationale + The answer is:" computes only the tokens that are new;
  contexts with no cached prefix are prefilled once, batched across questions, and every choice
  is scored on that shared prefix.

A batch is a list of per-layer key/value tensors plus a 0/1 mask over their columns. A row's
tokens are the columns its mask marks, in order; pads (and holes left where rows joined or
prefixes differ in length) are masked out, and every token's position id is given explicitly,
so the arithmetic per token is that of the row computed alone.
"""

from __future__ import annotations

import functools
import itertools
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from thinkcost.engines import runtime
from thinkcost.engines.base import (
    Generation,
    GenerationRequest,
    SamplingSpec,
    ScoreRequest,
    TransformersTokenizerEngine,
)

log = logging.getLogger(__name__)

KV = list[tuple[torch.Tensor, torch.Tensor]]
# Context tokens left after a cached prefix that are run with each continuation rather than in
# a pass of their own (see `HFEngine.score`).
SHORT_REMAINDER = 16  # per layer: keys, values [batch, heads, seq, dim]
# A decode pass on a CPU costs about as much as this many token positions besides those it
# computes (SmolLM2-135M fp32, 2 cores, 300 cached columns: 24 rows × 1 position 82 ms, each
# further position about 1.5 ms): what `HFEngine._lookup_width` weighs draft tokens against.
CPU_PASS_OVERHEAD = 30
# Prompts that join a batch together share their common prefix through one pass of its own only
# where that saves at least this many prefill tokens (a pass costs about as much as tens of
# tokens besides those it computes, see CPU_PASS_OVERHEAD).
SHARED_PREFIX_MIN_SAVING = 64


# Where a prompt-lookup draft came from, by index: none; the row's own prompt and rationale,
# matching its last 1, 2 or 3 tokens; the rationales of the rows decoding beside it (and those
# that finished in the same call), matching its last 3 or 4 tokens. Rationales of one task's
# questions follow one template ("The first paragraph is: ..."), so where a row's own text has
# no match for its last 3 tokens another row's often has: 10 % fewer decode positions in a
# replay of 96 CoT rationales, and 15 % less decode time (bench/decode_profile.py, the default
# tasks, identical rationales). The prior: how often each kind's first draft token was confirmed
# on those 96 rationales (own-1 509 tries, own-2 382, own-3 6030, others-3 96, others-4 522).
LOOKUP_KINDS = ("none", "own-1", "own-2", "own-3", "others-3", "others-4")
LOOKUP_PRIOR = (0.0, 0.3, 0.4, 0.85, 0.85, 0.9)
# Finished rationales that prompt lookup searches: the latest, up to this many tokens in all, so
# that one step's search stays bounded however many questions one call holds (a whole GSM8K
# would otherwise be searched at every step). The default cells finish under 8,000 tokens a call.
LOOKUP_POOL_TOKENS = 16_384


@dataclass
class _Prefix:
    """A computed sequence: its tokens and, per layer, its keys and values [heads, seq, dim]."""

    tokens: np.ndarray
    kv: KV

    @property
    def nbytes(self) -> int:
        return sum(k.numel() * k.element_size() * 2 for k, _ in self.kv)


def _after_latest(searched: np.ndarray, key: np.ndarray, text: np.ndarray, room: int) -> list[int]:
    """Up to `room` tokens of `text` after the latest occurrence of `key` in `searched` (a
    prefix of `text`), stopping at a -1 (the end of one rationale in `_rationales`)."""
    windows = np.lib.stride_tricks.sliding_window_view(searched, len(key))
    ends = np.flatnonzero((windows == key).all(axis=1)) + len(key)
    ends = ends[(ends < len(text))]
    ends = ends[text[ends] >= 0]
    if not ends.size:
        return []
    draft = text[ends[-1] : ends[-1] + room]
    stop = np.flatnonzero(draft < 0)
    return (draft[: stop[0]] if stop.size else draft).tolist()


def _common_prefix(sequences: list[list[int]]) -> list[int]:
    # The lexicographic least and greatest share exactly the prefix that all share.
    low, high = min(sequences), max(sequences)
    length = 0
    while length < min(len(low), len(high)) and low[length] == high[length]:
        length += 1
    return low[:length]


@functools.cache
def _roomy_layer_class():
    from transformers.cache_utils import DynamicLayer

    class RoomyLayer(DynamicLayer):
        """Keys and values in a buffer with room to grow, for transformers' cache.

        transformers' DynamicLayer appends a token by concatenating, which copies the whole
        cache every decode step: 45 % of a step's time at batch 16 and 300 tokens, measured.
        Here a step writes its column in place and attention reads a view of the filled part.
        """

        def __init__(self, keys: torch.Tensor, values: torch.Tensor, room: int) -> None:
            super().__init__()
            batch, heads, length, dim = keys.shape
            self._keys = keys.new_empty(batch, heads, length + room, dim)
            self._values = values.new_empty(batch, heads, length + room, dim)
            self._keys[:, :, :length] = keys
            self._values[:, :, :length] = values
            self.length = length
            self.is_initialized = True
            self.dtype, self.device = keys.dtype, keys.device
            self._view()

        def _view(self) -> None:
            self.keys = self._keys[:, :, : self.length]
            self.values = self._values[:, :, : self.length]

        def take(self, index: torch.Tensor) -> None:
            """Keep the batch rows `index`, room included."""
            self._keys = self._keys.index_select(0, index)
            self._values = self._values.index_select(0, index)
            self._view()

        def update(self, key_states, value_states, *args, **kwargs):
            new = key_states.shape[-2]
            if self.length + new > self._keys.shape[2]:  # out of room: grow by copying, rarely
                grown = RoomyLayer(self.keys, self.values, room=max(new, self.length))
                self._keys, self._values = grown._keys, grown._values
            self._keys[:, :, self.length : self.length + new] = key_states
            self._values[:, :, self.length : self.length + new] = value_states
            self.length += new
            self._view()
            return self.keys, self.values

    return RoomyLayer


@functools.cache
def _gqa_sdpa_attention() -> str:
    """The name of transformers' sdpa attention with grouped-query attention left to torch's
    kernel even under a mask (registered once, with sdpa's mask)."""
    from transformers import AttentionInterface
    from transformers.integrations.sdpa_attention import sdpa_attention_forward
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    def attention(module, query, key, value, attention_mask, dropout=0.0, scaling=None, **kwargs):
        if (
            attention_mask is None
            or getattr(module, "num_key_value_groups", 1) == 1
            or kwargs.get("position_bias") is not None
            or kwargs.get("cache") is not None
        ):
            return sdpa_attention_forward(
                module, query, key, value, attention_mask, dropout, scaling, **kwargs
            )
        # What sdpa_attention_forward computes under a mask (not causal: the mask says it),
        # without repeat_kv's copies: torch's kernel reads each key/value head per group.
        output = torch.nn.functional.scaled_dot_product_attention(
            query,
            key,
            value,
            attn_mask=attention_mask,
            dropout_p=dropout,
            scale=scaling,
            is_causal=False,
            enable_gqa=True,
        )
        return output.transpose(1, 2).contiguous(), None

    name = "thinkcost_sdpa_gqa"
    AttentionInterface.register(name, attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(name, sdpa_mask)
    return name


def _roomy_cache(kv: KV, room: int):
    from transformers import DynamicCache

    layer = _roomy_layer_class()
    cache = DynamicCache()
    cache.layers = [layer(k, v, room) for k, v in kv]
    return cache


@dataclass
class _Row:
    """One sequence being decoded."""

    request: int
    sample: int
    prompt: list[int]
    generator: torch.Generator | None
    generated: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)  # of each generated token
    added: int = 1  # tokens the last step appended
    assistant_tokens: int = 0  # what the draft model's passes processed for this row …
    assistant_pairs: int = 0  # … and Σ L·(L+1) over them (Generation says why)


@dataclass
class _Batch:
    """Sequences that decode together: their cache, column mask and next position ids."""

    kv: KV
    mask: torch.Tensor  # [rows, columns], 1 where a column holds one of the row's tokens
    positions: torch.Tensor  # [rows]: the position id of each row's next token
    rows: list[_Row]
    cache: object = None  # while decoding: the cache the model appends to, in place

    def select(self, keep: list[int], room: int) -> _Batch:
        """The rows `keep`. Columns no remaining row uses are dropped once they are a quarter
        of the cache; until then the rows are taken from the cache's buffers in one copy."""
        index = torch.tensor(keep, device=self.mask.device)
        mask = self.mask[index]
        rows = [self.rows[i] for i in keep]
        columns = mask.any(dim=0)
        if self.cache is not None and int(columns.sum()) > 0.75 * len(columns):
            for layer in self.cache.layers:
                layer.take(index)
            kv = [(layer.keys, layer.values) for layer in self.cache.layers]
            return _Batch(kv, mask, self.positions[index], rows, self.cache)
        kv = [(k[index][:, :, columns], v[index][:, :, columns]) for k, v in self.kv]
        return _Batch(kv, mask[:, columns], self.positions[index], rows).decoding(room)

    def decoding(self, room: int) -> _Batch:
        """This batch with a cache that decode steps append to in place (room: steps ahead)."""
        self.cache = _roomy_cache(self.kv, room)
        self.kv = [(layer.keys, layer.values) for layer in self.cache.layers]
        return self


def _pad_left(tensor: torch.Tensor, width: int, dim: int) -> torch.Tensor:
    if tensor.shape[dim] == width:
        return tensor
    shape = list(tensor.shape)
    shape[dim] = width - tensor.shape[dim]
    return torch.cat([tensor.new_zeros(shape), tensor], dim=dim)


def _merge(first: _Batch | None, second: _Batch) -> _Batch:
    """One batch of both, the shorter cache padded (masked) on the left."""
    if first is None or not first.rows:
        return second
    width = max(first.mask.shape[1], second.mask.shape[1])
    kv = [
        (
            torch.cat([_pad_left(k1, width, 2), _pad_left(k2, width, 2)]),
            torch.cat([_pad_left(v1, width, 2), _pad_left(v2, width, 2)]),
        )
        for (k1, v1), (k2, v2) in zip(first.kv, second.kv, strict=True)
    ]
    mask = torch.cat([_pad_left(first.mask, width, 1), _pad_left(second.mask, width, 1)])
    positions = torch.cat([first.positions, second.positions])
    return _Batch(kv, mask, positions, first.rows + second.rows)


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
        from transformers import AutoModelForCausalLM, AutoTokenizer

        started = time.perf_counter()
        self.device = torch.device(device)
        # A precision or quantization the device cannot run fails here, before any weight loads.
        runtime.check_dtype(self.device, dtype)
        quantized_load = runtime.quantization_load_options(quantization, self.device)
        self.tokenizer = AutoTokenizer.from_pretrained(
            pretrained, trust_remote_code=trust_remote_code
        )
        kwargs = {"dtype": getattr(torch, dtype) if dtype != "auto" else "auto"}
        if attn_implementation:
            kwargs["attn_implementation"] = attn_implementation
        if quantized_load:  # bitsandbytes places the weights itself
            kwargs.update(quantized_load, device_map=str(self.device))
        model = AutoModelForCausalLM.from_pretrained(
            pretrained, trust_remote_code=trust_remote_code, **kwargs
        )
        self.model = (model if quantized_load else model.to(self.device)).eval()
        if self.device.type == "cpu" and self.model.config._attn_implementation == "sdpa":
            # Grouped-query attention inside torch's CPU attention kernel, mask and all, instead
            # of transformers copying each key/value head to its query heads every layer and
            # step (transformers 5.19's sdpa whenever there is a mask): 11 % of the decode time
            # of 2 × 24 CoT questions here, bit for bit the same attention. On CUDA a mask would
            # send that path to the slow math kernel, so CPU only; this model only, not every
            # model in the process.
            self.model.set_attn_implementation(_gqa_sdpa_attention())
        if quantization and not quantized_load:
            self.model = runtime.quantize_on_cpu(self.model)
        self.quantization = quantization
        # The forward that _extend and _decode_step call (through the module) is this one.
        self.compiled = runtime.CompiledForward(self.model.forward) if compile else None
        if self.compiled is not None:
            self.model.forward = self.compiled
        self.max_batch_size = int(max_batch_size)
        self.batch_tokens = int(batch_tokens)
        self.prefix_cache_bytes = int(prefix_cache_bytes)
        # Greedy decoding verifies up to this many draft tokens per step (0: off): the tokens
        # that followed an earlier occurrence of the row's last tokens (prompt lookup), or,
        # with an assistant, a smaller model's greedy continuation (speculative decoding).
        self.draft_tokens = int(draft_tokens)
        # How often prompt-lookup drafts were confirmed, per kind of match (LOOKUP_KINDS) and
        # draft position, given every earlier one was: accepted and tried counts, from a prior
        # (what CoT rationales of this project's tasks gave).
        prior = np.array(LOOKUP_PRIOR)[:, None].repeat(max(self.draft_tokens, 1), 1)
        self._lookup_tried = np.full_like(prior, 4.0)
        self._lookup_accepted = prior * self._lookup_tried
        self.assistant = (
            AutoModelForCausalLM.from_pretrained(
                assistant, trust_remote_code=trust_remote_code, dtype=self.model.dtype
            )
            .to(self.device)
            .eval()
            if assistant
            else None
        )
        if self.assistant is not None:
            ours, theirs = len(self.tokenizer), self.assistant.config.get_text_config().vocab_size
            if theirs < ours:
                raise ValueError(
                    f"assistant {assistant} has a vocabulary of {theirs} tokens, the model "
                    f"{pretrained} {ours}: a draft model must share the model's tokenizer"
                )
        self._max_length = int(max_length) if max_length else self._model_max_length()
        self._set_eos(getattr(self.model.generation_config, "eos_token_id", None))
        # The batch layout puts masked columns between a row's tokens, so a sliding window
        # measured in columns would not be one in tokens: refuse sequences that reach it.
        text_config = self.model.config.get_text_config()
        self._sliding_window = (
            getattr(text_config, "sliding_window", None)
            if "sliding_attention" in (getattr(text_config, "layer_types", None) or [])
            or getattr(text_config, "use_sliding_window", False)
            else None
        )
        self._prefixes: OrderedDict[int, _Prefix] = OrderedDict()
        self._prefix_bytes = 0
        self.counters.load_seconds += time.perf_counter() - started

    def runtime(self) -> dict:
        """What the cost record keeps of the runtime: the weights' resident bytes, the
        quantization, and for a compiled forward its calls, graphs and warm-up seconds."""
        record = {
            "model_memory_bytes": runtime.memory_footprint(self.model),
            "dtype": str(next(self.model.parameters()).dtype).removeprefix("torch."),
            "quantization": self.quantization,
        }
        if self.compiled is not None:
            record.update(
                compiled_calls=self.compiled.calls,
                compiled_graphs=self.compiled.graphs,
                compile_warmup_seconds=self.compiled.warmup_seconds,
            )
        return record

    def _model_max_length(self) -> int:
        from lm_eval.models.utils import resolve_max_length

        return int(resolve_max_length(self.model.config, self.tokenizer, default=2048))

    # ------------------------------------------------------------------ the model

    @torch.no_grad()
    def _extend(
        self, rows: list[tuple[_Prefix | None, int, list[int]]], align: str, logits_to_keep: int
    ) -> tuple[torch.Tensor, _Batch]:
        """Run each row's new tokens after the first `r` tokens of its cached prefix.

        `align="left"` pads the new tokens on the left, so every row's last token is in the
        last column (the logits of the next token, for generation); `"right"` pads on the
        right, so row i's new tokens sit at columns R … R+len−1 (for scoring them).
        """
        width_prefix = max(r for _, r, _ in rows)
        width_new = max(len(new) for _, _, new in rows)
        batch = len(rows)
        mask = torch.zeros(batch, width_prefix + width_new, dtype=torch.long)
        input_ids = torch.full((batch, width_new), self._pad_id, dtype=torch.long)
        positions = torch.zeros(batch, width_new, dtype=torch.long)
        for i, (_, r, new) in enumerate(rows):
            mask[i, width_prefix - r : width_prefix] = 1
            start = width_new - len(new) if align == "left" else 0
            input_ids[i, start : start + len(new)] = torch.tensor(new)
            mask[i, width_prefix + start : width_prefix + start + len(new)] = 1
            positions[i, start : start + len(new)] = torch.arange(r, r + len(new))

        from transformers import DynamicCache

        cache = DynamicCache()
        if width_prefix:
            # A row with nothing cached takes an all-padding prefix shaped like another's.
            reference = next(prefix for prefix, r, _ in rows if r)
            kv = []
            for layer in range(len(reference.kv)):
                keys, values = [], []
                for prefix, r, _ in rows:
                    k, v = (prefix if r else reference).kv[layer]
                    keys.append(_pad_left(k[:, :r], width_prefix, 1))
                    values.append(_pad_left(v[:, :r], width_prefix, 1))
                kv.append((torch.stack(keys), torch.stack(values)))
            cache = DynamicCache(ddp_cache_data=kv)
        self._check_window(mask.shape[1])
        mask = mask.to(self.device)
        output = self.model(
            input_ids=input_ids.to(self.device),
            attention_mask=mask,
            position_ids=positions.to(self.device),
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=logits_to_keep,
        )
        self.counters.forward_passes += 1
        self.counters.forward_tokens += sum(len(new) for _, _, new in rows)
        kv = [(layer.keys, layer.values) for layer in output.past_key_values.layers]
        next_positions = torch.tensor([r + len(new) for _, r, new in rows], device=self.device)
        return output.logits, _Batch(kv, mask, next_positions, [])

    def _check_window(self, columns: int) -> None:
        if self._sliding_window and columns > self._sliding_window:
            raise ValueError(
                f"a batch of {columns} columns reaches the model's sliding attention window "
                f"({self._sliding_window} tokens), which the hf engine does not support; "
                "lower max_new_tokens or batch_size, or use lm-eval's hf model"
            )

    @property
    def _pad_id(self) -> int:
        pad = self.tokenizer.pad_token_id
        return int(pad if pad is not None else next(iter(self._eos)))

    @torch.no_grad()
    def _decode_step(self, batch: _Batch, tokens: torch.Tensor, fed: torch.Tensor) -> torch.Tensor:
        """Run `tokens` [rows, width] after each row's cache (`fed` marks the real ones); the
        logits of every position. The batch's cache, mask and positions take the new columns."""
        width = tokens.shape[1]
        mask = torch.cat([batch.mask, fed.to(batch.mask)], dim=1)
        self._check_window(mask.shape[1])
        positions = batch.positions[:, None] + torch.arange(width, device=self.device)
        output = self.model(
            input_ids=tokens,
            attention_mask=mask,
            position_ids=positions,
            past_key_values=batch.cache,
            use_cache=True,
        )
        self.counters.forward_passes += 1
        self.counters.forward_tokens += int(fed.sum())
        batch.kv = [(layer.keys, layer.values) for layer in batch.cache.layers]
        batch.mask = mask
        return output.logits

    def _draft(self, row: _Row, spec: SamplingSpec, others: np.ndarray) -> tuple[list[int], int]:
        """Prompt lookup: the tokens that followed the latest earlier occurrence of the row's
        last n tokens in its prompt or its own rationale (n = 3), else in `others` (the batch's
        rationales, see `_rationales`; n = 4, 3), else in its own text (n = 2, 1); and the
        match's kind, an index into LOOKUP_KINDS (0: none)."""
        room = min(self.draft_tokens, spec.max_new_tokens - len(row.generated) - 1)
        if room <= 0:
            return [], 0
        context = np.asarray(row.prompt + row.generated, dtype=np.int64)
        # The row's own last n tokens are not an earlier occurrence: its text minus the last.
        own = len(context) - 1
        for n, text, searched, kind in (
            (3, context, own, 3),
            (4, others, len(others), 5),
            (3, others, len(others), 4),
            (2, context, own, 2),
            (1, context, own, 1),
        ):
            if len(context) > n and searched >= n:
                draft = _after_latest(text[:searched], context[-n:], text, room)
                if draft:
                    return draft, kind
        return [], 0

    @staticmethod
    def _rationales(rows: list[_Row], finished: Iterable[list[int]]) -> np.ndarray:
        """Every rationale so far of the running rows and of those finished, each followed by
        -1 (no token id), in one array for `_draft` to search."""
        flat: list[int] = []
        for text in itertools.chain((row.generated for row in rows), finished):
            flat += text
            flat.append(-1)
        return np.array(flat, dtype=np.int64)

    def _lookup_width(self, drafts: list[list[int]], kinds: list[int]) -> int:
        """How many draft tokens per row to verify this step: on a CPU, where a pass costs
        about the fixed cost of `CPU_PASS_OVERHEAD` positions plus one per position computed
        (every row computes every column), the count that maximizes the expected confirmed
        tokens per cost, from how often drafts of each kind were confirmed; elsewhere all."""
        longest = max(len(draft) for draft in drafts)
        if self.device.type != "cpu" or longest == 0:
            return longest
        rates = self._lookup_accepted / self._lookup_tried
        # Row r's chance that its first j+1 draft tokens are all confirmed.
        chances = np.zeros((len(drafts), longest))
        for r, (draft, kind) in enumerate(zip(drafts, kinds, strict=True)):
            chances[r, : len(draft)] = np.cumprod(rates[kind, : len(draft)])
        expected = len(drafts) + np.concatenate([[0.0], np.cumsum(chances.sum(axis=0))])
        cost = CPU_PASS_OVERHEAD + len(drafts) * np.arange(1, longest + 2)
        return int(np.argmax(expected / cost))

    def _learn_lookup(self, kind: int, draft: list[int], predicted: list[int]) -> None:
        """Count which of the draft's tokens the model's own predictions (one more than were
        verified) tested and confirmed, whether or not they were verified."""
        tested = 0
        while tested < min(len(draft), len(predicted)):
            tested += 1
            if draft[tested - 1] != predicted[tested - 1]:
                self._lookup_tried[kind, :tested] += 1
                self._lookup_accepted[kind, : tested - 1] += 1
                return
        self._lookup_tried[kind, :tested] += 1
        self._lookup_accepted[kind, :tested] += 1

    @torch.no_grad()
    def _assistant_drafts(self, rows: list[_Row], spec: SamplingSpec) -> list[list[int]]:
        """The assistant's greedy continuation of every row, `draft_tokens` long at most: one
        batched pass per draft token over the rows' whole contexts (left-padded). The assistant
        keeps no cache between steps: it is meant to be small, and its passes are counted
        (`assistant_forward_tokens`) so their FLOPs enter the cost record."""
        started = time.perf_counter()
        rooms = [min(self.draft_tokens, spec.max_new_tokens - len(r.generated) - 1) for r in rows]
        contexts = [r.prompt + r.generated for r in rows]
        drafts: list[list[int]] = [[] for _ in rows]
        for step in range(max(rooms, default=0)):
            active = [i for i, room in enumerate(rooms) if room > step]
            if not active:
                break
            width = max(len(contexts[i]) + step for i in active)
            ids = torch.full((len(active), width), self._pad_id, dtype=torch.long)
            mask = torch.zeros(len(active), width, dtype=torch.long)
            for j, i in enumerate(active):
                sequence = contexts[i] + drafts[i]
                ids[j, width - len(sequence) :] = torch.tensor(sequence)
                mask[j, width - len(sequence) :] = 1
            positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
            logits = self.assistant(
                input_ids=ids.to(self.device),
                attention_mask=mask.to(self.device),
                position_ids=positions.to(self.device),
                logits_to_keep=1,
            ).logits[:, -1]
            for j, token in zip(active, logits.argmax(dim=-1).tolist(), strict=True):
                drafts[j].append(token)
                # Each row's own cost, so that its question carries it (a resumed cell too).
                length = len(contexts[j]) + step
                rows[j].assistant_tokens += length
                rows[j].assistant_pairs += length * (length + 1)
            self.counters.assistant_forward_passes += 1
            self.counters.assistant_forward_tokens += int(mask.sum())
        self.counters.assistant_seconds += time.perf_counter() - started
        return drafts

    def _step(self, batch: _Batch, spec: SamplingSpec, finished: Iterable[list[int]]) -> None:
        """One decode step for every row: its next token, or, greedy with prompt lookup, its
        next tokens, as many as the model confirms of a draft, plus one.

        Verifying a draft costs one forward pass of a few tokens per row, about what one token
        costs while decoding is bound by reading the weights. The confirmed tokens are the ones
        greedy decoding would have produced one by one; the keys and values of rejected draft
        tokens are masked out of the cache. On a CPU, where every position costs, the drafts
        are cut to the length that pays (`_lookup_width`).
        """
        started = time.perf_counter()
        lookup = self.draft_tokens > 0 and not spec.do_sample
        kinds = None
        if lookup and self.assistant is not None:
            drafts = self._assistant_drafts(batch.rows, spec)
        else:
            others = self._rationales(batch.rows, finished) if lookup else None
            drafted = [self._draft(row, spec, others) if lookup else ([], 0) for row in batch.rows]
            drafts = [draft for draft, _ in drafted]
            kinds = [kind for _, kind in drafted]
            full = drafts
            if lookup:
                room = self._lookup_width(drafts, kinds)
                drafts = [draft[:room] for draft in drafts]
        width = 1 + max(len(draft) for draft in drafts)
        tokens = torch.full((len(batch.rows), width), self._pad_id, dtype=torch.long)
        fed = torch.zeros(len(batch.rows), width, dtype=torch.long)
        for i, (row, draft) in enumerate(zip(batch.rows, drafts, strict=True)):
            tokens[i, : 1 + len(draft)] = torch.tensor([row.generated[-1], *draft])
            fed[i, : 1 + len(draft)] = 1
        columns = batch.mask.shape[1]
        logits = self._decode_step(batch, tokens.to(self.device), fed)
        if lookup:
            best = torch.log_softmax(logits.float(), dim=-1).max(dim=-1)
            predicted, best_logprobs = best.indices.tolist(), best.values.tolist()
            advanced = []
            for i, (row, draft) in enumerate(zip(batch.rows, drafts, strict=True)):
                accepted = 0
                while accepted < len(draft) and draft[accepted] == predicted[i][accepted]:
                    accepted += 1
                row.generated.extend([*draft[:accepted], predicted[i][accepted]])
                row.logprobs.extend(best_logprobs[i][: accepted + 1])
                row.added = accepted + 1
                batch.mask[i, columns + 1 + accepted :] = 0
                advanced.append(accepted + 1)
                if kinds is not None and full[i]:
                    self._learn_lookup(kinds[i], full[i], predicted[i][: accepted + 1])
                self.counters.draft_tokens += len(draft)
                self.counters.accepted_draft_tokens += accepted
            batch.positions = batch.positions + torch.tensor(advanced, device=self.device)
        else:
            for row, token in zip(
                batch.rows, self._choose(logits[:, 0], batch.rows, spec), strict=True
            ):
                row.generated.append(token)
                row.added = 1
            batch.positions = batch.positions + 1
        self.counters.decode_tokens += int(fed.sum())
        self.counters.decode_seconds += time.perf_counter() - started

    # ------------------------------------------------------------------ the prefix cache

    def _row_prefix(self, batch: _Batch, row: int, tokens: list[int]) -> _Prefix:
        columns = batch.mask[row].bool()
        kv = [(k[row][:, columns].clone(), v[row][:, columns].clone()) for k, v in batch.kv]
        return _Prefix(np.asarray(tokens, dtype=np.int64), kv)

    def _remember(self, prefix: _Prefix) -> None:
        if self.prefix_cache_bytes <= 0:
            return
        self._prefixes[id(prefix)] = prefix
        self._prefix_bytes += prefix.nbytes
        while self._prefix_bytes > self.prefix_cache_bytes and len(self._prefixes) > 1:
            _, evicted = self._prefixes.popitem(last=False)
            self._prefix_bytes -= evicted.nbytes

    def _longest_prefix(self, tokens: list[int], limit: int) -> tuple[_Prefix | None, int]:
        """The cached sequence sharing the longest prefix with `tokens`, up to `limit` tokens."""
        query = np.asarray(tokens[:limit], dtype=np.int64)
        best, best_length = None, 0
        for prefix in self._prefixes.values():
            m = min(len(prefix.tokens), len(query))
            if m <= best_length:
                continue
            equal = prefix.tokens[:m] == query[:m]
            length = m if bool(equal.all()) else int(equal.argmin())
            if length > best_length:
                best, best_length = prefix, length
        if best is not None:
            self._prefixes.move_to_end(id(best))
        return best, best_length

    def clear_prefix_cache(self) -> None:
        self._prefixes.clear()
        self._prefix_bytes = 0

    def _chunks(self, items: list, length) -> list[list]:
        """Consecutive groups of at most max_batch_size items and about batch_tokens tokens."""
        chunks, current, widest = [], [], 0
        for item in items:
            widest_after = max(widest, length(item))
            if current and (
                len(current) >= self.max_batch_size
                or widest_after * (len(current) + 1) > self.batch_tokens
            ):
                chunks.append(current)
                current, widest_after = [], length(item)
            current.append(item)
            widest = widest_after
        if current:
            chunks.append(current)
        return chunks

    # ------------------------------------------------------------------ generation

    def _choose(self, logits: torch.Tensor, rows: list[_Row], spec: SamplingSpec) -> list[int]:
        """Each row's next token, greedy or sampled; its log-probability under the model itself
        (temperature 1) goes to the row's `logprobs`."""
        logprobs = torch.log_softmax(logits.float(), dim=-1)
        if not spec.do_sample:
            chosen = logprobs.argmax(dim=-1).tolist()
        else:
            warped = logits.float() / spec.temperature
            if spec.top_p < 1.0:
                from transformers import TopPLogitsWarper

                warped = TopPLogitsWarper(spec.top_p)(None, warped)
            probs = warped.softmax(dim=-1).cpu()
            chosen = [
                int(torch.multinomial(probs[i], 1, generator=row.generator))
                for i, row in enumerate(rows)
            ]
        picked = logprobs.gather(1, torch.tensor(chosen, device=logprobs.device)[:, None])
        for row, value in zip(rows, picked[:, 0].tolist(), strict=True):
            row.logprobs.append(value)
        return chosen

    def _finished(self, row: _Row, spec: SamplingSpec, stop_window: int) -> bool:
        added = row.generated[-row.added :]
        if not self._eos.isdisjoint(added) or len(row.generated) >= spec.max_new_tokens:
            return True
        if not spec.stop:
            return False
        tail = self.detokenize(row.generated[-(stop_window + row.added - 1) :])
        return any(s in tail for s in spec.stop if s)

    def generate(
        self, requests: Sequence[GenerationRequest], spec: SamplingSpec
    ) -> list[list[Generation]]:
        prompt_limit = self.prompt_limit(spec.max_new_tokens)
        prompts = [self.tokenize(r.prompt)[-prompt_limit:] or [self._pad_id] for r in requests]
        # A stop string of c characters spans at most c tokens, plus a partial one each side.
        stop_window = max((len(s) for s in spec.stop), default=0) + 2
        results: list[list[Generation | None]] = [[None] * r.n for r in requests]
        # Longest prompts first: a memory peak shows at once, and prefills group similar lengths.
        waiting = deque(sorted(range(len(requests)), key=lambda i: -len(prompts[i])))
        batch: _Batch | None = None
        refill_at = max(1, self.max_batch_size // 4)
        finished: deque[list[int]] = deque()  # the latest rationales done, for prompt lookup
        pooled = 0  # their tokens
        while waiting or (batch is not None and batch.rows):
            running = len(batch.rows) if batch is not None else 0
            free = self.max_batch_size - running
            if waiting and (running == 0 or free >= refill_at):
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
                batch = self._join(batch, joining, prompts, requests, spec)
            else:
                self._step(batch, spec, finished)
            done = [i for i, row in enumerate(batch.rows) if self._finished(row, spec, stop_window)]
            if done:
                for i in done:
                    row = batch.rows[i]
                    generation = self.cut(row.generated, spec.stop, row.logprobs)
                    generation.assistant_tokens = row.assistant_tokens
                    generation.assistant_pairs = row.assistant_pairs
                    results[row.request][row.sample] = generation
                    self.counters.generated_tokens += results[row.request][row.sample].tokens
                    finished.append(row.generated)
                    pooled += len(row.generated)
                    while pooled > LOOKUP_POOL_TOKENS:
                        pooled -= len(finished.popleft())
                    # The cache holds the prompt and every generated token but the last.
                    self._remember(self._row_prefix(batch, i, row.prompt + row.generated[:-1]))
                keep = [i for i in range(len(batch.rows)) if i not in set(done)]
                batch = batch.select(keep, spec.max_new_tokens) if keep else None
        return results  # type: ignore[return-value]

    def _join(
        self,
        batch: _Batch | None,
        joining: list[int],
        prompts: list[list[int]],
        requests: Sequence[GenerationRequest],
        spec: SamplingSpec,
    ) -> _Batch:
        """Prefill the joining prompts once each, give each its n samples' rows, merge."""
        started = time.perf_counter()
        self._prefill_shared_prefix([prompts[i] for i in joining])
        rows_in = []
        for i in joining:
            # At least the last prompt token runs: its logits give the first new token.
            prefix, r = self._longest_prefix(prompts[i], len(prompts[i]) - 1)
            rows_in.append((prefix, r, prompts[i][r:]))
            self.counters.reused_tokens += r
        logits, fresh = self._extend(rows_in, align="left", logits_to_keep=1)
        self.counters.prefill_tokens += sum(len(new) for _, _, new in rows_in)
        repeats = torch.tensor([requests[i].n for i in joining], device=self.device)
        fresh = _Batch(
            kv=[
                (k.repeat_interleave(repeats, dim=0), v.repeat_interleave(repeats, dim=0))
                for k, v in fresh.kv
            ],
            mask=fresh.mask.repeat_interleave(repeats, dim=0),
            positions=fresh.positions.repeat_interleave(repeats, dim=0),
            rows=[
                _Row(
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
        tokens_list = self._choose(first, fresh.rows, spec)
        for row, token in zip(fresh.rows, tokens_list, strict=True):
            row.generated.append(token)
        self.counters.prefill_seconds += time.perf_counter() - started
        return _merge(batch, fresh).decoding(spec.max_new_tokens)

    def _prefill_shared_prefix(self, prompts: list[list[int]]) -> None:
        """Compute the prefix the joining prompts share (a task's instructions, its few-shot
        examples) once, into the prefix cache, where each prompt's lookup then finds it: a
        8-shot GSM8K prompt is mostly shared. Only where it saves more tokens than a pass
        costs on its own."""
        if len(prompts) < 2 or self.prefix_cache_bytes <= 0:
            return
        shared = _common_prefix(prompts)
        # At least each prompt's last token runs with the prompt: it gives the first new token.
        length = min(len(shared), min(len(prompt) for prompt in prompts) - 1)
        prefix, r = self._longest_prefix(shared[:length], length)
        if (len(prompts) - 1) * (length - r) < SHARED_PREFIX_MIN_SAVING:
            return
        _, computed = self._extend([(prefix, r, shared[r:length])], align="left", logits_to_keep=1)
        self.counters.prefill_tokens += length - r
        self.counters.reused_tokens += r
        self._remember(self._row_prefix(computed, 0, shared[:length]))

    # ------------------------------------------------------------------ scoring

    @torch.no_grad()
    def score(self, requests: Sequence[ScoreRequest]) -> list[list[tuple[float, bool]]]:
        started = time.perf_counter()
        # Each (context, continuation) pair tokenized as lm-eval does; the continuations of one
        # request normally share the context's tokens, and each distinct context is one group.
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

        # Every context but its last token, computed once (or found in the prefix cache). A
        # short remainder (the answer prefix after a cached rationale) is cheaper to run again
        # with each of two continuations than in a pass of its own; with three or more (BBH's
        # option texts: up to six after each sample) the pass of its own costs fewer tokens,
        # and it is one batched pass for every such context.
        heads: list[tuple[_Prefix | None, int]] = []
        missing = []
        for index, (context, members) in enumerate(contexts):
            prefix, r = self._longest_prefix(context, len(context) - 1)
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
            _, computed = self._extend(rows, align="left", logits_to_keep=1)
            self.counters.scoring_tokens += sum(len(new) for _, _, new in rows)
            for row, index in enumerate(chunk):
                prefix = self._row_prefix(computed, row, contexts[index][0][:-1])
                heads[index] = (prefix, len(prefix.tokens))
                self._remember(prefix)

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
            logits, _ = self._extend(rows, align="right", logits_to_keep=0)
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

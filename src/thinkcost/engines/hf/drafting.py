"""Draft tokens for the hf engine's greedy decoding to verify: prompt lookup or an assistant model.

Verifying a draft costs one forward pass of a few tokens per row, about what one token costs
while decoding is bound by reading the weights; the confirmed tokens are the ones greedy
decoding would have produced one by one. Every kind of drafting is one `Drafter`, the shape of
transformers' `CandidateGenerator` (`generation/candidate_generator.py`): `get_candidates` gives
each row's draft, `update_candidate_strategy` learns from what the model predicted after it.
A new kind of drafting is one new subclass, chosen in `HFEngine`'s loading.
"""

from __future__ import annotations

import itertools
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Iterable, Iterator

import numpy as np
import torch

from thinkcost.engines.base import EngineCounters, SamplingSpec
from thinkcost.engines.hf.batch import Row

# A decode pass on a CPU costs about as much as this many token positions besides those it
# computes (SmolLM2-135M fp32, 2 cores, 300 cached columns: 24 rows × 1 position 82 ms, each
# further position about 1.5 ms): what `PromptLookup.width` weighs draft tokens against.
CPU_PASS_OVERHEAD = 30

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


def match_ends(searched: np.ndarray, key: np.ndarray) -> np.ndarray:
    """Where each occurrence of `key` in `searched` ends (one past its last token), ascending."""
    n = len(key)
    if len(searched) < n:
        return np.empty(0, dtype=np.int64)
    # Where the key's first token is, then narrowed token by token: one pass over the text, where
    # comparing every n-token window (sliding_window_view) made n passes and a reduction: most of
    # a 128-row step's drafting (46 ms a step on BBH text, 0.19 s where nothing matched:
    # bench/drafting.py).
    starts = np.flatnonzero(searched[: len(searched) - n + 1] == key[0])
    for k in range(1, n):
        starts = starts[searched[starts + k] == key[k]]
    return starts + n


def after_latest(searched: np.ndarray, key: np.ndarray, text: np.ndarray, room: int) -> list[int]:
    """Up to `room` tokens of `text` after the latest occurrence of `key` in `searched` (a
    prefix of `text`), stopping at a -1 (the end of one rationale in `PromptLookup.rationales`)."""
    ends = match_ends(searched, key)
    ends = ends[(ends < len(text))]
    ends = ends[text[ends] >= 0]
    if not ends.size:
        return []
    draft = text[ends[-1] : ends[-1] + room]
    stop = np.flatnonzero(draft < 0)
    return (draft[: stop[0]] if stop.size else draft).tolist()


class FinishedRationales:
    """The rationales finished so far in one `generate` call, the latest `LOOKUP_POOL_TOKENS`
    tokens of them, oldest first."""

    def __init__(self) -> None:
        self._texts: deque[list[int]] = deque()
        self._tokens = 0

    def add(self, tokens: list[int]) -> None:
        self._texts.append(tokens)
        self._tokens += len(tokens)
        while self._tokens > LOOKUP_POOL_TOKENS:
            self._tokens -= len(self._texts.popleft())

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self._texts)


class Drafter(ABC):
    """Proposes up to `draft_tokens` tokens a row for a decode step to verify."""

    def __init__(self, draft_tokens: int) -> None:
        self.draft_tokens = draft_tokens

    def room(self, row: Row, spec: SamplingSpec) -> int:
        """How many draft tokens `row` takes: the model's own token after them must still fit
        its budget."""
        return min(self.draft_tokens, spec.max_new_tokens - len(row.generated) - 1)

    @abstractmethod
    def get_candidates(
        self, rows: list[Row], spec: SamplingSpec, finished: Iterable[list[int]]
    ) -> list[list[int]]:
        """Each row's draft (possibly empty); `finished`: the call's finished rationales."""

    @abstractmethod
    def update_candidate_strategy(self, predicted: list[list[int]]) -> None:
        """Learn from the model's greedy tokens after each row's last draft: the confirmed
        draft tokens and the one after them."""


class LookupRates:
    """How often prompt-lookup drafts were confirmed, per kind of match (LOOKUP_KINDS) and
    draft position, given every earlier one was: accepted and tried counts, from a prior
    (what CoT rationales of this project's tasks gave) worth four tries."""

    def __init__(self, draft_tokens: int) -> None:
        prior = np.array(LOOKUP_PRIOR)[:, None].repeat(max(draft_tokens, 1), 1)
        self.tried = np.full_like(prior, 4.0)
        self.accepted = prior * self.tried

    def confirmed(self) -> np.ndarray:
        """The rate [kind, position]."""
        return self.accepted / self.tried

    def learn(self, kind: int, draft: list[int], predicted: list[int]) -> None:
        """Count which of the draft's tokens the model's own predictions (one more than were
        verified) tested and confirmed, whether or not they were verified."""
        tested = 0
        while tested < min(len(draft), len(predicted)):
            tested += 1
            if draft[tested - 1] != predicted[tested - 1]:
                self.tried[kind, :tested] += 1
                self.accepted[kind, : tested - 1] += 1
                return
        self.tried[kind, :tested] += 1
        self.accepted[kind, :tested] += 1


class PromptLookup(Drafter):
    """Prompt lookup: the tokens that followed an earlier occurrence of a row's last tokens, in
    its own text or in the rationales beside it; on a CPU cut to the length that pays."""

    def __init__(self, draft_tokens: int, on_cpu: bool) -> None:
        super().__init__(draft_tokens)
        self.on_cpu = on_cpu
        self.rates = LookupRates(draft_tokens)
        self._drafted: list[tuple[list[int], int]] = []  # the last step's whole drafts, kinds

    def get_candidates(
        self, rows: list[Row], spec: SamplingSpec, finished: Iterable[list[int]]
    ) -> list[list[int]]:
        others = self.rationales(rows, finished)
        self._drafted = [self.draft(row, spec, others) for row in rows]
        drafts = [draft for draft, _ in self._drafted]
        room = self.width(drafts, [kind for _, kind in self._drafted])
        return [draft[:room] for draft in drafts]

    def update_candidate_strategy(self, predicted: list[list[int]]) -> None:
        for (draft, kind), seen in zip(self._drafted, predicted, strict=True):
            if draft:
                self.rates.learn(kind, draft, seen)

    def draft(self, row: Row, spec: SamplingSpec, others: np.ndarray) -> tuple[list[int], int]:
        """The tokens that followed the latest earlier occurrence of the row's last n tokens in
        its prompt or its own rationale (n = 3), else in `others` (the batch's rationales, see
        `rationales`; n = 4, 3), else in its own text (n = 2, 1); and the match's kind, an
        index into LOOKUP_KINDS (0: none)."""
        room = self.room(row, spec)
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
                draft = after_latest(text[:searched], context[-n:], text, room)
                if draft:
                    return draft, kind
        return [], 0

    @staticmethod
    def rationales(rows: list[Row], finished: Iterable[list[int]]) -> np.ndarray:
        """Every rationale so far of the running rows and of those finished, each followed by
        -1 (no token id), in one array for `draft` to search."""
        flat: list[int] = []
        for text in itertools.chain((row.generated for row in rows), finished):
            flat += text
            flat.append(-1)
        return np.array(flat, dtype=np.int64)

    def width(self, drafts: list[list[int]], kinds: list[int]) -> int:
        """How many draft tokens per row to verify this step: on a CPU, where a pass costs
        about the fixed cost of `CPU_PASS_OVERHEAD` positions plus one per position computed
        (every row computes every column), the count that maximizes the expected confirmed
        tokens per cost, from how often drafts of each kind were confirmed; elsewhere all."""
        longest = max(len(draft) for draft in drafts)
        if not self.on_cpu or longest == 0:
            return longest
        rates = self.rates.confirmed()
        # Row r's chance that its first j+1 draft tokens are all confirmed.
        chances = np.zeros((len(drafts), longest))
        for r, (draft, kind) in enumerate(zip(drafts, kinds, strict=True)):
            chances[r, : len(draft)] = np.cumprod(rates[kind, : len(draft)])
        expected = len(drafts) + np.concatenate([[0.0], np.cumsum(chances.sum(axis=0))])
        cost = CPU_PASS_OVERHEAD + len(drafts) * np.arange(1, longest + 2)
        return int(np.argmax(expected / cost))


class AssistantDrafts(Drafter):
    """Speculative decoding: a smaller model's greedy continuation of every row, one batched
    pass per draft token over the rows' whole contexts (left-padded).

    The assistant keeps no cache between steps: it is meant to be small, and its passes are
    counted (`assistant_forward_tokens`, and each row's own share) so their FLOPs enter the
    cost record."""

    def __init__(
        self,
        model,
        draft_tokens: int,
        device: torch.device,
        pad_id: int,
        counters: EngineCounters,
    ) -> None:
        super().__init__(draft_tokens)
        self.model, self.device, self.pad_id, self.counters = model, device, pad_id, counters

    def update_candidate_strategy(self, predicted: list[list[int]]) -> None:
        """Nothing to learn: the draft model drafts its greedy continuation whatever came of
        the last one."""

    @torch.no_grad()
    def get_candidates(
        self, rows: list[Row], spec: SamplingSpec, finished: Iterable[list[int]]
    ) -> list[list[int]]:
        started = time.perf_counter()
        rooms = [self.room(row, spec) for row in rows]
        contexts = [r.prompt + r.generated for r in rows]
        drafts: list[list[int]] = [[] for _ in rows]
        for step in range(max(rooms, default=0)):
            active = [i for i, room in enumerate(rooms) if room > step]
            if not active:
                break
            width = max(len(contexts[i]) + step for i in active)
            ids = torch.full((len(active), width), self.pad_id, dtype=torch.long)
            mask = torch.zeros(len(active), width, dtype=torch.long)
            for j, i in enumerate(active):
                sequence = contexts[i] + drafts[i]
                ids[j, width - len(sequence) :] = torch.tensor(sequence)
                mask[j, width - len(sequence) :] = 1
            positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
            logits = self.model(
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

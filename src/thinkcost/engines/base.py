"""What every engine offers: token-level primitives over one loaded model, and their counters.

An engine is one loaded model. It knows nothing of lm-eval, questions or votes; a strategy
(`inference.strategies`) turns a question into engine calls. Two primitives suffice for every
strategy we run, and both map one-to-one onto vLLM's offline API:

- `generate`: n continuations per prompt under a `SamplingSpec` (budget, stop strings, greedy or
  seeded sampling); vLLM's `LLM.generate(prompts, SamplingParams(n=…))`.
- `score`: the log-likelihood of each continuation after a shared context, tokenized as
  lm-eval tokenizes a (context, continuation) pair; vLLM's `prompt_logprobs` with prefix caching.

Both take text and count tokens with the model's own tokenizer. Prefix reuse is the engine's
business (vLLM's automatic prefix caching; the hf engine's cache of finished sequences), so a
strategy asks for what it needs and the engine avoids recomputing what it has already seen.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class SamplingSpec:
    """How continuations are drawn: greedy, or sampled with a seed per (prompt key, sample)."""

    max_new_tokens: int
    stop: tuple[str, ...] = ()
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int = 1234

    def sample_seed(self, key: str, index: int) -> int:
        """The seed of sample `index` of the prompt known as `key`.

        Derived from the question, never from a global generator: a sample is the same whatever
        the batch it ran in, the order the scheduler chose or a resume in the middle of a cell.
        """
        digest = hashlib.sha256(f"{self.seed}\x00{key}\x00{index}".encode()).digest()
        return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


@dataclass(frozen=True)
class GenerationRequest:
    """n continuations of one prompt; `key` names the question (it seeds the samples)."""

    prompt: str
    n: int = 1
    key: str = ""


@dataclass
class Generation:
    """One generated continuation, cut at its first stop sequence or end-of-sequence token."""

    text: str
    tokens: int  # tokens the model generated for it, the stop sequence or EOS included
    stopped_by: str  # "eos", "stop:<sequence>" or "length"
    # The model's log-probability of those tokens (temperature 1, whatever it sampled at): the
    # sample's own sequence log-likelihood, free with generation. None: the engine gave none.
    # Not part of equality: the same tokens from another batch shape differ in the last bits.
    logprob: float | None = field(default=None, compare=False)
    # A draft model's passes for it (speculative decoding): the tokens they processed, and
    # the sum of L·(L+1) over them, L each pass's context length (Kaplan's attention term of
    # those passes is n_layer·d_model times that). Zero without a draft model.
    assistant_tokens: int = field(default=0, compare=False)
    assistant_pairs: int = field(default=0, compare=False)


@dataclass(frozen=True)
class ScoreRequest:
    """Continuations to score after one shared context."""

    context: str
    continuations: tuple[str, ...]


@dataclass
class EngineCounters:
    """What an engine did, for the cost record and the benchmarks.

    `forward_tokens` counts every token pushed through the model, so a prefill shared by k
    samples counts once; seconds are wall-clock per phase.
    """

    forward_passes: int = 0
    forward_tokens: int = 0
    prefill_tokens: int = 0
    decode_tokens: int = 0
    scoring_tokens: int = 0
    reused_tokens: int = 0  # context tokens a score found already computed
    rescored_choices: int = 0  # vllm: choices with rows found stale in its cache, read again
    generated_tokens: int = 0
    draft_tokens: int = 0  # draft tokens (prompt lookup, or an assistant's) proposed …
    accepted_draft_tokens: int = 0  # … and confirmed by the model
    assistant_forward_passes: int = 0  # an assistant (draft) model's passes …
    assistant_forward_tokens: int = 0  # … and the tokens they processed
    assistant_seconds: float = 0.0
    load_seconds: float = 0.0
    prefill_seconds: float = 0.0
    decode_seconds: float = 0.0
    scoring_seconds: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


class Engine(ABC):
    """The interface strategies talk to. Subclasses load a model and implement the primitives."""

    def __init__(self) -> None:
        self.counters = EngineCounters()

    @property
    @abstractmethod
    def max_length(self) -> int:
        """The longest sequence (prompt and continuation) the model takes."""

    @property
    @abstractmethod
    def eos_token_ids(self) -> frozenset[int]: ...

    @abstractmethod
    def tokenize(self, text: str, add_special_tokens: bool = True) -> list[int]:
        """The model's tokens for `text`, with the tokenizer's special tokens unless told not."""

    @abstractmethod
    def detokenize(self, tokens: Sequence[int]) -> str: ...

    @abstractmethod
    def generate(
        self, requests: Sequence[GenerationRequest], spec: SamplingSpec
    ) -> list[list[Generation]]:
        """`request.n` generations for every request, in the order of `requests`."""

    @abstractmethod
    def score(self, requests: Sequence[ScoreRequest]) -> list[list[tuple[float, bool]]]:
        """(log-likelihood, is-greedy) of every continuation of every request."""

    def prompt_limit(self, max_new_tokens: int) -> int:
        """The most prompt tokens a generation keeps: a longer prompt loses its start, so that
        prompt and budget fit the context. Both engines cut this way, and the cost record
        counts what is kept (`RequestCost.truncated` says it was cut)."""
        return max(1, self.max_length - max_new_tokens)

    def runtime(self) -> dict:
        """What the cost record keeps of the engine's runtime (resident weights, quantization,
        compilation); an engine that knows nothing of them gives nothing."""
        return {}

    # ------------------------------------------------------------------ shared helpers

    def encode_pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        """lm-eval's tokenization of a (context, continuation) pair.

        The whole string is tokenized and split at the context's length, with the context's
        trailing whitespace moved to the continuation, so scores equal lm-eval's own.
        """
        spaces = len(context) - len(context.rstrip())
        if spaces:
            context, continuation = context[:-spaces], context[-spaces:] + continuation
        whole = self.tokenize(context + continuation)
        context_tokens = self.tokenize(context)
        return whole[: len(context_tokens)], whole[len(context_tokens) :]

    def cut(
        self,
        new_tokens: Sequence[int],
        stop: Sequence[str],
        logprobs: Sequence[float] | None = None,
    ) -> Generation:
        """Cut generated tokens at EOS or the first stop sequence; count what was generated,
        and sum the log-probabilities of those tokens when the engine gives them."""
        generation = cut_generation(list(new_tokens), self.eos_token_ids, stop, self.detokenize)
        if logprobs is not None:
            generation.logprob = float(sum(logprobs[: generation.tokens]))
        return generation


class TransformersTokenizerEngine(Engine):
    """An engine that counts with a transformers tokenizer (`self.tokenizer`): what both of
    ours share. A subclass sets `_max_length` and calls `_set_eos` as it loads."""

    tokenizer = None
    _max_length: int
    _eos: frozenset[int]

    def _set_eos(self, configured) -> None:
        """End-of-sequence ids: the tokenizer's and the generation config's (one id or a list)."""
        eos = {self.tokenizer.eos_token_id}
        eos.update(configured if isinstance(configured, list) else [configured])
        self._eos = frozenset(int(t) for t in eos if t is not None)

    @property
    def max_length(self) -> int:
        return self._max_length

    @property
    def eos_token_ids(self) -> frozenset[int]:
        return self._eos

    def tokenize(self, text: str, add_special_tokens: bool = True) -> list[int]:
        # A chat template writes the model's special tokens itself: a second BOS (Llama 3's
        # <|begin_of_text|>) in front of them would be a prompt the model never saw.
        bos = self.tokenizer.bos_token
        if add_special_tokens and bos and text.startswith(bos):
            add_special_tokens = False
        return self.tokenizer.encode(text, add_special_tokens=add_special_tokens)

    def detokenize(self, tokens: Sequence[int]) -> str:
        return self.tokenizer.decode(list(tokens), skip_special_tokens=True)


def cut_generation(
    new_tokens: list[int],
    eos_token_ids: frozenset[int],
    stop: Sequence[str],
    detokenize: Callable[[Sequence[int]], str],
) -> Generation:
    """The text before the first stop sequence or EOS, and the tokens the model had to generate.

    The count is the fewest tokens whose decoding already contains the stop sequence (what a
    stopping criterion that watches the text would have let the model generate), the EOS
    token included when it ended the generation.
    """
    eos_at = next((i for i, token in enumerate(new_tokens) if token in eos_token_ids), None)
    end = eos_at + 1 if eos_at is not None else len(new_tokens)
    stopped_by = "eos" if eos_at is not None else "length"
    text = detokenize(new_tokens[: end - 1 if eos_at is not None else end])
    hits = [(text.find(s), s) for s in stop if s and s in text]
    if hits:
        position, sequence = min(hits)
        low, high = 1, end
        while low < high:
            middle = (low + high) // 2
            if sequence in detokenize(new_tokens[:middle]):
                high = middle
            else:
                low = middle + 1
        return Generation(text=text[:position], tokens=low, stopped_by=f"stop:{sequence}")
    return Generation(text=text, tokens=end, stopped_by=stopped_by)

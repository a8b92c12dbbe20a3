"""Token and FLOP accounting.

Token counts are measured: the evaluation backend counts them with the model's own tokenizer
as it runs. FLOPs follow from those counts by one of two conventions:

- ``paper``: 2·N·(generated tokens), the convention of Manglik & Choudhri, so that their
  numbers can be reproduced;
- ``full``: every token the request needs processed once (prompt prefill, decoding, and the
  answer tokens scored after the rationale), each costing 2·N plus Kaplan et al.'s attention
  term 2·n_layer·n_ctx·d_model with n_ctx that token's actual context length. This is the cost of
  an implementation that reuses the KV cache; `forward_tokens` in the cost record holds what the
  running implementation actually pushed through the model.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

CONVENTIONS = ("paper", "full")


@dataclass(frozen=True)
class ModelShape:
    """What the FLOP formulas need to know about a model."""

    params: float
    n_layer: int
    d_model: int

    @classmethod
    def from_config(cls, params: float, config_json: str | Path | dict) -> ModelShape:
        config = (
            config_json
            if isinstance(config_json, dict)
            else json.loads(Path(config_json).read_text())
        )
        config = config.get("text_config", config)
        n_layer = config.get("num_hidden_layers", config.get("n_layer", config.get("num_layers")))
        d_model = config.get("hidden_size", config.get("n_embd", config.get("d_model")))
        if n_layer is None or d_model is None:
            raise ValueError(
                "model config names neither num_hidden_layers/hidden_size nor n_layer/n_embd"
            )
        return cls(params=float(params), n_layer=int(n_layer), d_model=int(d_model))


@dataclass
class RequestCost:
    """The measured token counts of one request (one question).

    A request prefills its prompt once, then follows one branch per sample: `generated[j]`
    tokens of rationale or answer, then `answer[j][i]` tokens scored for choice i (the answer
    prefix plus the choice). Direct log-likelihood scoring is one branch with no generation.
    """

    task: str
    doc_id: int
    prompt_tokens: int
    generated: list[int] = field(default_factory=lambda: [0])
    answer: list[list[int]] = field(default_factory=lambda: [[]])
    truncated: bool = False
    answered: bool = True
    # A separate scorer model (best-of-n, weighted votes): the prompt it read once, then what
    # it scored of each sample (rationale and chosen answer). Empty when the generating model
    # scores its own samples: it computed those log-probabilities as it generated them.
    scorer_prompt_tokens: int = 0
    scorer_tokens: list[int] = field(default_factory=list)
    # Where each branch starts, in tokens past the prompt: a tree search's step grows from its
    # parent's path. Empty: every branch starts at the prompt (k samples).
    branch_starts: list[int] = field(default_factory=list)
    # A draft model's passes (speculative decoding) for this request's samples: the tokens they
    # processed and Σ L·(L+1) over them (see Generation).
    assistant_tokens: int = 0
    assistant_pairs: int = 0

    @property
    def generated_tokens(self) -> int:
        return int(sum(self.generated))

    def to_dict(self) -> dict:
        record = asdict(self)
        record["generated_tokens"] = self.generated_tokens
        return record


def attention_flops(shape: ModelShape, start: int, end: int) -> float:
    """Kaplan's attention term summed over tokens at context lengths start+1 … end.

    Σ_{t=start+1}^{end} 2·n_layer·t·d_model = n_layer·d_model·(end(end+1) − start(start+1)).
    """
    return shape.n_layer * shape.d_model * float(end * (end + 1) - start * (start + 1))


def tokens_flops(shape: ModelShape, start: int, count: int) -> float:
    """Forward FLOPs of `count` tokens appended to a context of `start` tokens."""
    return 2.0 * shape.params * count + attention_flops(shape, start, start + count)


def request_flops(cost: RequestCost, shape: ModelShape, convention: str = "paper") -> float:
    """The generating model's FLOPs for one request (a separate scorer's: `scorer_flops`)."""
    if convention == "paper":
        return 2.0 * shape.params * cost.generated_tokens
    if convention != "full":
        raise ValueError(f"unknown FLOP convention {convention!r}; choose one of {CONVENTIONS}")
    total = tokens_flops(shape, 0, cost.prompt_tokens)
    starts = cost.branch_starts or [0] * len(cost.generated)
    for start, generated, answers in zip(starts, cost.generated, cost.answer, strict=True):
        total += tokens_flops(shape, cost.prompt_tokens + start, generated)
        context = cost.prompt_tokens + start + generated
        total += sum(tokens_flops(shape, context, tokens) for tokens in answers)
    return total


def scorer_flops(cost: RequestCost, shape: ModelShape | None, convention: str = "paper") -> float:
    """A separate scorer model's FLOPs for one request: 2·N_scorer per token it read (paper),
    or its prompt once and each sample after it, with the attention term (full)."""
    if shape is None or not cost.scorer_tokens:
        return 0.0
    if convention == "paper":
        return 2.0 * shape.params * (cost.scorer_prompt_tokens + sum(cost.scorer_tokens))
    prompt = cost.scorer_prompt_tokens
    return tokens_flops(shape, 0, prompt) + sum(
        tokens_flops(shape, prompt, tokens) for tokens in cost.scorer_tokens
    )


def assistant_flops(cost: RequestCost, shape: ModelShape | None, convention: str) -> float:
    """A draft model's FLOPs for one request: 2·N_draft per token its passes processed (paper),
    plus the attention term of each pass (full). It keeps no cache, so every pass reads the
    row's whole context."""
    if shape is None or not cost.assistant_tokens:
        return 0.0
    total = 2.0 * shape.params * cost.assistant_tokens
    if convention == "full":
        total += shape.n_layer * shape.d_model * float(cost.assistant_pairs)
    return total


def summarize(
    costs: list[RequestCost],
    shape: ModelShape,
    wall_seconds: float,
    generation_seconds: float,
    forward_passes: int,
    forward_tokens: int,
    device: str,
    peak_memory_bytes: int,
    engine_counters: dict | None = None,
    scorer_shape: ModelShape | None = None,
    scorer_counters: dict | None = None,
    assistant_shape: ModelShape | None = None,
) -> dict:
    """The per-cell cost record: means per request, totals, and both FLOP conventions.

    The inference FLOPs include a separate scorer model's (`scorer_shape`) and a draft model's
    (`assistant_shape`), which are also given alone (`scorer_flops_per_request_*`,
    `assistant_flops_per_request_*`)."""
    if not costs:
        raise ValueError("no requests were evaluated; nothing to cost")
    prompt = np.array([c.prompt_tokens for c in costs], dtype=float)
    generated = np.array([c.generated_tokens for c in costs], dtype=float)
    scorer = {
        conv: np.array([scorer_flops(c, scorer_shape, conv) for c in costs]) for conv in CONVENTIONS
    }
    assistant = {
        conv: np.array([assistant_flops(c, assistant_shape, conv) for c in costs])
        for conv in CONVENTIONS
    }
    flops = {
        conv: np.array([request_flops(c, shape, conv) for c in costs])
        + scorer[conv]
        + assistant[conv]
        for conv in CONVENTIONS
    }
    n = len(costs)
    return {
        "n_requests": n,
        "prompt_tokens_total": int(prompt.sum()),
        "prompt_tokens_mean": float(prompt.mean()),
        "generated_tokens_total": int(generated.sum()),
        "generated_tokens_mean": float(generated.mean()),
        "generated_tokens_max": int(generated.max()),
        "samples_per_request": max(len(c.generated) for c in costs),
        "truncated_prompts": int(sum(c.truncated for c in costs)),
        "unanswered": int(sum(not c.answered for c in costs)),
        "forward_passes": int(forward_passes),
        "forward_tokens": int(forward_tokens),
        "inference_flops_per_request_paper": float(flops["paper"].mean()),
        "inference_flops_per_request_full": float(flops["full"].mean()),
        "inference_flops_total_paper": float(flops["paper"].sum()),
        "inference_flops_total_full": float(flops["full"].sum()),
        "scorer_tokens_mean": float(
            np.mean([c.scorer_prompt_tokens + sum(c.scorer_tokens) for c in costs])
        ),
        "scorer_flops_per_request_paper": float(scorer["paper"].mean()),
        "scorer_flops_per_request_full": float(scorer["full"].mean()),
        "scorer_params": scorer_shape.params if scorer_shape else None,
        "assistant_tokens_mean": float(np.mean([c.assistant_tokens for c in costs])),
        "assistant_flops_per_request_paper": float(assistant["paper"].mean()),
        "assistant_flops_per_request_full": float(assistant["full"].mean()),
        "assistant_params": assistant_shape.params if assistant_shape else None,
        "params": shape.params,
        "n_layer": shape.n_layer,
        "d_model": shape.d_model,
        "wall_seconds": float(wall_seconds),
        "seconds_per_request": float(wall_seconds / n),
        "generation_seconds": float(generation_seconds),
        "generated_tokens_per_second": float(generated.sum() / generation_seconds)
        if generation_seconds > 0
        else 0.0,
        "device": device,
        "peak_memory_bytes": int(peak_memory_bytes),
        # What the engine did in this attempt, phase by phase (a resumed attempt's share of a
        # cell is in the totals above, not here).
        "engine": engine_counters or {},
        "scorer_engine": scorer_counters or {},
    }

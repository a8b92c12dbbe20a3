"""The lm-eval adapter's constructor arguments for one cell: the strategy's knobs, the
evaluation-wide settings an optimization may override, and what its engine takes."""

from __future__ import annotations

from thinkcost.config.spec import CellSpec
from thinkcost.engines import engine_profile

# Knobs of an optimization that the lm-eval adapter takes as they are (the strategy's).
STRATEGY_KNOBS = (
    "format",
    "trigger",
    "answer_prefix",
    "stop",
    "do_sample",
    "temperature",
    "top_p",
    "num_samples",
    "vote",
    "score",
    "search",
)


def resolve_device(requested: str) -> str:
    """`auto` means what torch sees: a SLURM job given a GPU that torch cannot use runs on CPU."""
    import torch

    if requested != "auto":
        return requested
    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_dtype(requested: str | None, device: str) -> str:
    if requested in (None, "auto"):
        # CPUs have no fast half-precision matmuls; the checkpoint's own dtype elsewhere.
        return "float32" if device == "cpu" else "auto"
    return requested


def backend_arguments(spec: CellSpec) -> dict:
    """The ThinkcostLM constructor arguments for the cell's optimization on its model."""
    knobs, evaluation = spec.knobs, spec.evaluation
    device = resolve_device(evaluation["device"])
    arguments = {key: knobs[key] for key in STRATEGY_KNOBS if key in knobs}
    arguments.update(
        pretrained=spec.model_dir,
        engine=spec.engine,
        device=device,
        dtype=resolve_dtype(knobs.get("dtype") or spec.model_dtype or evaluation["dtype"], device),
        batch_size=knobs.get("batch_size") or evaluation["batch_size"],
        max_new_tokens=knobs.get("max_new_tokens") or evaluation["max_new_tokens"],
        seed=evaluation["seed"],
        compile=bool(knobs["compile"]),
        draft_tokens=evaluation["draft_tokens"],
    )
    if spec.scorer:
        arguments["scorer"] = spec.scorer.model_dir
    engine = engine_profile(spec.engine)
    assistant_dir = spec.assistant.model_dir if spec.assistant else None
    arguments.update(engine.drafting_arguments(knobs.get("assistant") or {}, assistant_dir))
    arguments.update(engine.options(evaluation))
    if evaluation.get("max_length"):
        arguments["max_length"] = evaluation["max_length"]
    if knobs.get("attn_implementation"):
        arguments["attn_implementation"] = knobs["attn_implementation"]
    if knobs.get("quantization"):
        arguments["quantization"] = knobs["quantization"]
    return arguments

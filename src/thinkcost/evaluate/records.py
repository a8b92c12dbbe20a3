"""What a cell's files say about it: its provenance (where every number came from) and its cost
record (the measured tokens, FLOPs, seconds and memory), and each sample's generations."""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import resource
from dataclasses import dataclass
from pathlib import Path

from thinkcost.config.spec import CellSpec
from thinkcost.inference.costs import ModelShape, summarize

PACKAGES = ("thinkcost", "torch", "transformers", "lm_eval", "datasets", "tokenizers", "accelerate")
INVALID_ANSWERS = ("[invalid]", "")


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def device_name(device: str) -> str:
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    return f"{platform.processor() or platform.machine()} CPU ({os.cpu_count()} cores)"


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def peak_memory_bytes(device: str) -> int:
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        return int(torch.cuda.max_memory_allocated(torch.device(device)))
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # Linux: KiB


def staged_manifest(model_dir: str | Path) -> dict | None:
    """What staging wrote about the model (hub commit, wheel checksum); None for a local path."""
    path = Path(model_dir) / "manifest.json"
    return json.loads(path.read_text()) if path.exists() else None


@dataclass(frozen=True)
class Shapes:
    """The shapes of the models a cell runs, which its FLOP counts are computed from."""

    model: ModelShape
    scorer: ModelShape | None = None
    assistant: ModelShape | None = None

    @classmethod
    def of(cls, spec: CellSpec) -> Shapes:
        def shape(params: float, model_dir: str) -> ModelShape:
            return ModelShape.from_config(params, Path(model_dir) / "config.json")

        return cls(
            shape(spec.params, spec.model_dir),
            **{
                role: shape(second.params, second.model_dir)
                for role, second in (("scorer", spec.scorer), ("assistant", spec.assistant))
                if second
            },
        )


def mark_answered(costs: list, samples: list[dict], filter_name: str) -> None:
    """A free-form answer the task's filter could not extract counts as wrong (the metric does
    that) and is counted here, so a model that never answers is visible in its cost record."""
    unanswered = set()
    for sample in samples:
        if sample.get("filter") == filter_name:
            response = sample.get("filtered_resps")
            response = response[0] if isinstance(response, list) and response else response
            if isinstance(response, str) and response.strip() in INVALID_ANSWERS:
                unanswered.add((sample["task"], sample["doc_id"]))
    for cost in costs:
        cost.answered = (cost.task, cost.doc_id) not in unanswered


def cost_summary(costs: list, model, shapes: Shapes, device: str, wall_seconds: float) -> dict:
    """The cell's measured costs (`inference.costs.summarize`) on `model`, a ThinkcostLM."""
    return summarize(
        costs,
        shapes.model,
        wall_seconds=wall_seconds,
        generation_seconds=model.generation_seconds,
        forward_passes=model.forward_passes,
        forward_tokens=model.forward_tokens,
        engine_counters=model.engine.counters.as_dict(),
        scorer_shape=shapes.scorer,
        assistant_shape=shapes.assistant,
        scorer_counters=model.scorer.counters.as_dict() if model.scorer else None,
        device=device_name(device),
        peak_memory_bytes=peak_memory_bytes(device),
    )


def provenance(
    spec: CellSpec, arguments: dict, model, task_results: dict, samples: list[dict]
) -> dict:
    """Where the cell's score came from: the cell, its settings, the model and the software."""
    return {
        **spec.cell,
        "lm_eval_task": spec.lm_eval_task,
        "metric": spec.metric,
        "score": task_results.get(spec.metric),
        "stderr": task_results.get(spec.metric.replace(",", "_stderr,", 1)),
        "n": len({(s["task"], s["doc_id"]) for s in samples}),
        "limit": spec.limit,
        "num_fewshot": spec.num_fewshot,
        "seed": spec.evaluation["seed"],
        "resumed_requests": model.resumed_requests,
        "optimization_knobs": spec.knobs,
        "backend_arguments": {k: v for k, v in arguments.items() if k != "pretrained"},
        "model_dir": spec.model_dir,
        "staged_model": staged_manifest(spec.model_dir),
        "packages": package_versions(),
        "python": platform.python_version(),
    }


def cost_record(provenance: dict, summary: dict, engine) -> dict:
    """The cell's cost record: its provenance, its measured costs and its engine's runtime."""
    runtime = engine.runtime()
    counters = engine.counters
    return {
        **provenance,
        **summary,
        # Draft tokens the model confirmed, of those proposed (prompt lookup or an assistant).
        "draft_acceptance_rate": counters.accepted_draft_tokens / counters.draft_tokens
        if counters.draft_tokens
        else None,
        # The weights as stored (int8 counts one byte a weight) and a compiled forward's
        # warm-up, apart from the steady state that wall_seconds mostly is.
        "model_memory_bytes": runtime.get("model_memory_bytes"),
        "compile_warmup_seconds": runtime.get("compile_warmup_seconds"),
        "runtime": runtime,
        # The seconds above are those of this many CPU threads (the job's `threads`).
        "cpu_threads": torch_threads(),
    }


def attach_generations(samples: list[dict], model) -> None:
    """Each sample with the rationales behind it and, where it voted, its samples."""
    for sample in samples:
        key = (sample["task"], sample["doc_id"])
        sample["thinkcost_generations"] = [g.__dict__ for g in model.rationales.get(key, [])]
        if key in model.samples:
            sample["thinkcost_samples"] = model.samples[key]

"""Evaluate one (model, task, optimization) cell with lm-eval and record what it cost."""

from __future__ import annotations

import importlib.metadata
import json
import logging
import os
import platform
import resource
import shutil
import time
from pathlib import Path
from typing import Any

from thinkcost.inference.costs import ModelShape, summarize
from thinkcost.inference.sweeps import answer_extractor, cell_sweep, vote_key

log = logging.getLogger(__name__)

PACKAGES = ("thinkcost", "torch", "transformers", "lm_eval", "datasets", "tokenizers", "accelerate")
INVALID_ANSWERS = ("[invalid]", "")

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


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


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


def _json_default(value: Any) -> Any:
    from lm_eval.utils import handle_non_serializable

    return handle_non_serializable(value)


def _write_json(path: Path, payload: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=_json_default, ensure_ascii=False) + "\n")
    tmp.replace(path)


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w") as handle:
        for row in rows:
            handle.write(json.dumps(row, default=_json_default, ensure_ascii=False) + "\n")
    tmp.replace(path)


def backend_arguments(
    knobs: dict,
    evaluation: dict,
    model_dir: str,
    model_dtype: str | None,
    scorer_dir: str | None = None,
    assistant_dir: str | None = None,
) -> dict:
    """The ThinkcostLM constructor arguments for one optimization on one model: the strategy's
    knobs, the evaluation-wide settings an optimization may override, and the engine's options."""
    device = resolve_device(evaluation["device"])
    arguments = {key: knobs[key] for key in STRATEGY_KNOBS if key in knobs}
    engine = knobs.get("engine") or evaluation["engine"]
    arguments.update(
        pretrained=model_dir,
        engine=engine,
        device=device,
        dtype=resolve_dtype(knobs.get("dtype") or model_dtype or evaluation["dtype"], device),
        batch_size=knobs.get("batch_size") or evaluation["batch_size"],
        max_new_tokens=knobs.get("max_new_tokens") or evaluation["max_new_tokens"],
        seed=evaluation["seed"],
        compile=bool(knobs["compile"]),
        draft_tokens=evaluation["draft_tokens"],
    )
    if scorer_dir:
        arguments["scorer"] = scorer_dir
    assistant = knobs.get("assistant") or {}
    if engine == "vllm" and (assistant_dir or assistant.get("prompt_lookup_num_tokens")):
        # vLLM's own speculative decoding
        arguments["speculative"] = (
            {"model": assistant_dir, "num_speculative_tokens": assistant["num_assistant_tokens"]}
            if assistant_dir
            else {
                "method": "ngram",
                "num_speculative_tokens": assistant["prompt_lookup_num_tokens"],
                "prompt_lookup_max": 3,
                "prompt_lookup_min": 1,
            }
        )
    elif "prompt_lookup_num_tokens" in assistant:
        arguments["draft_tokens"] = assistant["prompt_lookup_num_tokens"]
    elif assistant_dir:
        arguments.update(assistant=assistant_dir, draft_tokens=assistant["num_assistant_tokens"])
    if engine == "vllm":
        arguments.update(evaluation["vllm"])
    if evaluation.get("max_length"):
        arguments["max_length"] = evaluation["max_length"]
    if knobs.get("attn_implementation"):
        arguments["attn_implementation"] = knobs["attn_implementation"]
    if knobs.get("quantization"):
        arguments["quantization"] = knobs["quantization"]
    return arguments


def staged_manifest(model_dir: str | Path) -> dict | None:
    """What staging wrote about the model (hub commit, wheel checksum); None for a local path."""
    path = Path(model_dir) / "manifest.json"
    return json.loads(path.read_text()) if path.exists() else None


def evaluate_cell(
    *,
    model_dir: str,
    task: str,
    metric: str,
    params: float,
    knobs: dict,
    evaluation: dict,
    limit: int | None,
    num_fewshot: int | None,
    cell: dict,
    results_path: str | Path,
    samples_path: str | Path,
    requests_path: str | Path,
    cost_path: str | Path,
    model_dtype: str | None = None,
    scorer: dict | None = None,
    assistant: dict | None = None,
) -> dict:
    """Run lm-eval on one cell; write its results JSON, samples, request costs and cost record.

    `cell` (model, task, optimization names, revision, …) is copied into the outputs so every
    file says where it came from.
    """
    # Compute nodes have no hub: everything was staged on the submit host.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    import lm_eval

    from thinkcost.config.tasks import task_manager
    from thinkcost.inference.backend import ThinkcostLM

    # A separate scorer model: its staged directory and parameter count.
    scorer_dir = scorer["model_dir"] if scorer else None
    assistant_dir = assistant["model_dir"] if assistant else None
    arguments = backend_arguments(
        knobs, evaluation, model_dir, model_dtype, scorer_dir, assistant_dir
    )
    log.info("cell %s with %s", cell, arguments)
    # Beside the outputs, undeclared, so that Snakemake keeps it when an attempt fails.
    checkpoint = Path(results_path).with_name("checkpoint.jsonl")
    model = ThinkcostLM(**arguments, checkpoint=str(checkpoint))
    shape = ModelShape.from_config(params, Path(model_dir) / "config.json")
    scorer_shape = (
        ModelShape.from_config(scorer["params"], Path(scorer_dir) / "config.json")
        if scorer
        else None
    )
    assistant_shape = (
        ModelShape.from_config(assistant["params"], Path(assistant_dir) / "config.json")
        if assistant
        else None
    )
    manager = task_manager(task, evaluation["task_paths"])
    metric_name, _, filter_name = metric.partition(",")
    filter_name = filter_name or "none"
    # Where samples vote (k samples, or a tree's leaves), the task's own objects: its filter
    # extracts each free-form sample's answer, and its metric judges each sample for a sweep.
    voting = model.num_samples > 1 or bool(knobs.get("search"))
    leaf_tasks = manager.load(task)["tasks"] if voting else {}
    generating = [t for t in leaf_tasks.values() if t.OUTPUT_TYPE == "generate_until"]
    if generating:
        extract = answer_extractor(generating[0], filter_name)
        key = vote_key(generating[0], metric_name)
        model.extract_answers_with(lambda text: key(extract(text)))

    seed = evaluation["seed"]
    started = time.perf_counter()
    output = lm_eval.simple_evaluate(
        model=model,
        tasks=[task],
        task_manager=manager,
        limit=limit,
        num_fewshot=num_fewshot,
        log_samples=True,
        apply_chat_template=knobs.get("apply_chat_template", False),
        random_seed=seed,
        numpy_random_seed=seed,
        torch_random_seed=seed,
        fewshot_random_seed=seed,
        bootstrap_iters=1000,
    )
    # Requests a killed attempt finished count with the time they took then.
    wall_seconds = time.perf_counter() - started + model.resumed_seconds

    # A group task (mmlu, xwinograd) reports its metric under its own name and its samples
    # under each subtask's; the cell covers all of them.
    samples = [
        {"task": name, **sample} for name, rows in output.pop("samples").items() for sample in rows
    ]
    task_results = output["results"].get(task, {})
    missing_metric = metric not in task_results

    # A free-form answer the task's filter could not extract counts as wrong (the metric does
    # that) and is counted here, so a model that never answers is visible in its cost record.
    unanswered = set()
    for sample in samples:
        if sample.get("filter") == filter_name:
            response = sample.get("filtered_resps")
            response = response[0] if isinstance(response, list) and response else response
            if isinstance(response, str) and response.strip() in INVALID_ANSWERS:
                unanswered.add((sample["task"], sample["doc_id"]))
    costs = model.request_costs
    for cost in costs:
        cost.answered = (cost.task, cost.doc_id) not in unanswered

    record = summarize(
        costs,
        shape,
        wall_seconds=wall_seconds,
        generation_seconds=model.generation_seconds,
        forward_passes=model.forward_passes,
        forward_tokens=model.forward_tokens,
        engine_counters=model.engine.counters.as_dict(),
        scorer_shape=scorer_shape,
        assistant_shape=assistant_shape,
        scorer_counters=model.scorer.counters.as_dict() if model.scorer else None,
        device=device_name(arguments["device"]),
        peak_memory_bytes=peak_memory_bytes(arguments["device"]),
    )
    provenance = {
        **cell,
        "lm_eval_task": task,
        "metric": metric,
        "score": task_results.get(metric),
        "stderr": task_results.get(metric.replace(",", "_stderr,", 1)),
        "n": len({(s["task"], s["doc_id"]) for s in samples}),
        "limit": limit,
        "num_fewshot": num_fewshot,
        "seed": seed,
        "resumed_requests": model.resumed_requests,
        "optimization_knobs": knobs,
        "backend_arguments": {k: v for k, v in arguments.items() if k != "pretrained"},
        "model_dir": model_dir,
        "staged_model": staged_manifest(model_dir),
        "packages": package_versions(),
        "python": platform.python_version(),
    }
    runtime = model.engine.runtime()
    counters = model.engine.counters
    record = {
        **provenance,
        **record,
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

    output["thinkcost"] = provenance
    rationales = model.rationales
    for sample in samples:
        generations = rationales.get((sample["task"], sample["doc_id"]), [])
        sample["thinkcost_generations"] = [g.__dict__ for g in generations]
        if (sample["task"], sample["doc_id"]) in model.samples:
            sample["thinkcost_samples"] = model.samples[(sample["task"], sample["doc_id"])]
    if record["truncated_prompts"]:
        log.warning(
            "%d of %d questions had their prompt cut from the start to fit the model's context "
            "(%d tokens); their costs count the tokens kept (truncated_prompts in scores.csv)",
            record["truncated_prompts"],
            len(costs),
            model.engine.max_length,
        )
    if knobs.get("sweep") and not missing_metric:
        record["sweep"] = cell_sweep(
            leaf_tasks,
            samples,
            model.samples,
            costs,
            shape,
            metric,
            knobs["sweep"],
            knobs["vote"],
            seed,
            scorer_shape,
        )

    if missing_metric:
        # Checked before the run too (config validation); should it still happen, nothing
        # computed is lost: the outputs go beside the cell, where Snakemake does not delete
        # them, and the checkpoint stays, so a rerun with the right metric only re-reads it.
        kept = Path(results_path).parent / "unscored"
        _write_outputs([kept / name for name in OUTPUT_NAMES], output, samples, costs, record)
        available = sorted(k for k in task_results if "," in k and "_stderr" not in k)
        raise KeyError(
            f"task {task} reported no metric {metric!r}; it reported {available}. Every "
            f"answer is saved ({checkpoint} and {kept}/): fix the metric and rerun, and no "
            "question is computed again"
        )
    paths = [Path(p) for p in (results_path, samples_path, requests_path, cost_path)]
    _write_outputs(paths, output, samples, costs, record)
    model.checkpoint.remove()
    shutil.rmtree(Path(results_path).parent / "unscored", ignore_errors=True)
    return record


OUTPUT_NAMES = ("results.json", "samples.jsonl", "requests.jsonl", "cost.json")


def _write_outputs(
    paths: list[Path], output: dict, samples: list[dict], costs: list, record: dict
) -> None:
    """A cell's four outputs, at `paths` in the order of OUTPUT_NAMES."""
    results_path, samples_path, requests_path, cost_path = paths
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
    _write_jsonl(samples_path, samples)
    _write_jsonl(requests_path, [c.to_dict() for c in costs])
    _write_json(cost_path, record)
    _write_json(results_path, output)  # last: its presence means the cell is complete

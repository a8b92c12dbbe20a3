"""Evaluate one (model, task, optimization) cell with lm-eval and record what it cost."""

from __future__ import annotations

import logging
import os
import shutil
import time

from thinkcost.config.spec import CellSpec
from thinkcost.evaluate.arguments import backend_arguments
from thinkcost.evaluate.outputs import CellOutputs, write_outputs
from thinkcost.evaluate.records import (
    Shapes,
    attach_generations,
    cost_record,
    cost_summary,
    mark_answered,
    provenance,
)
from thinkcost.inference.sweeps import answer_extractor, cell_sweep, vote_key

log = logging.getLogger(__name__)


def evaluate_cell(spec: CellSpec, outputs: CellOutputs) -> dict:
    """Run lm-eval on one cell; write its results JSON, samples, request costs and cost record.

    `spec.cell` (model, task, optimization names, revision, …) is copied into the outputs so
    every file says where it came from.
    """
    # Compute nodes have no hub: everything was staged on the submit host.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    from thinkcost.config.tasks import task_manager
    from thinkcost.inference.backend import ThinkcostLM

    arguments = backend_arguments(spec)
    log.info("cell %s with %s", spec.cell, arguments)
    model = ThinkcostLM(**arguments, checkpoint=str(outputs.checkpoint))
    shapes = Shapes.of(spec)
    manager = task_manager(spec.lm_eval_task, spec.evaluation["task_paths"])
    leaf_tasks = _voting_tasks(model, manager, spec)
    output, wall_seconds = _run_lm_eval(model, manager, spec)

    # A group task (mmlu, xwinograd) reports its metric under its own name and its samples
    # under each subtask's; the cell covers all of them.
    samples = [
        {"task": name, **sample} for name, rows in output.pop("samples").items() for sample in rows
    ]
    task_results = output["results"].get(spec.lm_eval_task, {})
    costs = model.request_costs
    mark_answered(costs, samples, _metric_and_filter(spec.metric)[1])
    summary = cost_summary(costs, model, shapes, arguments["device"], wall_seconds)
    output["thinkcost"] = provenance(spec, arguments, model, task_results, samples)
    record = cost_record(output["thinkcost"], summary, model.engine)
    attach_generations(samples, model)
    if record["truncated_prompts"]:
        log.warning(
            "%d of %d questions had their prompt cut from the start to fit the model's context "
            "(%d tokens); their costs count the tokens kept (truncated_prompts in scores.csv)",
            record["truncated_prompts"],
            len(costs),
            model.engine.max_length,
        )
    if spec.metric not in task_results:
        _keep_unscored(spec, outputs, (output, samples, costs, record), task_results)
    if spec.knobs.get("sweep"):
        record["sweep"] = cell_sweep(
            leaf_tasks,
            samples,
            model.samples,
            costs,
            shapes.model,
            spec.metric,
            spec.knobs["sweep"],
            spec.knobs["vote"],
            spec.evaluation["seed"],
            shapes.scorer,
        )
    write_outputs(outputs, output, samples, costs, record)
    model.checkpoint.remove()
    shutil.rmtree(outputs.unscored, ignore_errors=True)
    return record


def _metric_and_filter(metric: str) -> tuple[str, str]:
    """The metric and the filter lm-eval reports it under: "acc,none" → ("acc", "none")."""
    metric_name, _, filter_name = metric.partition(",")
    return metric_name, filter_name or "none"


def _voting_tasks(model, manager, spec: CellSpec) -> dict:
    """Where samples vote (k samples, or a tree's leaves), the task's own objects: its filter
    extracts each free-form sample's answer, and its metric judges each sample for a sweep."""
    if not (model.num_samples > 1 or spec.knobs.get("search")):
        return {}
    leaf_tasks = manager.load(spec.lm_eval_task)["tasks"]
    generating = [t for t in leaf_tasks.values() if t.OUTPUT_TYPE == "generate_until"]
    if generating:
        metric_name, filter_name = _metric_and_filter(spec.metric)
        extract = answer_extractor(generating[0], filter_name)
        key = vote_key(generating[0], metric_name)
        model.extract_answers_with(lambda text: key(extract(text)))
    return leaf_tasks


def _run_lm_eval(model, manager, spec: CellSpec) -> tuple[dict, float]:
    """lm-eval's output for the cell, and the seconds it took."""
    import lm_eval

    seed = spec.evaluation["seed"]
    started = time.perf_counter()
    output = lm_eval.simple_evaluate(
        model=model,
        tasks=[spec.lm_eval_task],
        task_manager=manager,
        limit=spec.limit,
        num_fewshot=spec.num_fewshot,
        log_samples=True,
        apply_chat_template=spec.knobs.get("apply_chat_template", False),
        random_seed=seed,
        numpy_random_seed=seed,
        torch_random_seed=seed,
        fewshot_random_seed=seed,
        bootstrap_iters=1000,
    )
    # Requests a killed attempt finished count with the time they took then.
    return output, time.perf_counter() - started + model.resumed_seconds


def _keep_unscored(spec: CellSpec, outputs: CellOutputs, written: tuple, task_results: dict):
    """The task reported no metric of the configured name. Checked before the run too (config
    validation); should it still happen, nothing computed is lost: the outputs go beside the
    cell, where Snakemake does not delete them, and the checkpoint stays, so a rerun with the
    right metric only re-reads it."""
    write_outputs(CellOutputs.in_directory(outputs.unscored), *written)
    available = sorted(k for k in task_results if "," in k and "_stderr" not in k)
    raise KeyError(
        f"task {spec.lm_eval_task} reported no metric {spec.metric!r}; it reported {available}. "
        f"Every answer is saved ({outputs.checkpoint} and {outputs.unscored}/): fix the metric "
        "and rerun, and no question is computed again"
    )

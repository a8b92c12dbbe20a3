"""Checks of the tasks and their data: lm-eval knows each task and its metric, BBH tasks and
local data exist, and the task directories lm-eval searches are there."""

from __future__ import annotations

from pathlib import Path

from thinkcost.config.errors import ConfigError
from thinkcost.config.grid import expand_grid, lm_eval_task
from thinkcost.config.tasks import (
    bbh_choice_problem,
    bbh_prompt_file,
    bbh_task_problem,
    metric_matches,
    reported_metrics,
    unknown_task_names,
)


def check_task_data(config: dict, base_dir: Path) -> None:
    """Local task data must exist now, not when its cells run."""
    for name, task in config["tasks"].items():
        local = task.get("data", {}).get("local")
        if local is not None and not (base_dir / local).exists():
            raise ConfigError(f"tasks.{name}.data.local: {local!r} does not exist")


def check_task_paths(config: dict, base_dir: Path) -> None:
    """The directories of our own task YAMLs must exist."""
    for i, path in enumerate(config["evaluation"]["task_paths"]):
        if not (base_dir / path).is_dir():
            raise ConfigError(f"evaluation.task_paths[{i}]: {path!r} is not a directory")


def check_task_names(config: dict, base_dir: Path) -> None:
    """Every configured lm-eval task must be one lm-eval knows (with our include paths), and
    its metric one the task reports: a typo found after the evaluation would cost its compute."""
    include = [base_dir / path for path in config["evaluation"]["task_paths"]]
    wanted = {lm_eval_task(config, task): task for task in config["tasks"]}
    unknown = unknown_task_names(list(wanted), include)
    if unknown:
        name, suggestions = next(iter(unknown.items()))
        hint = f" (did you mean {', '.join(map(repr, suggestions))}?)" if suggestions else ""
        raise ConfigError(
            f"tasks.{wanted[name]}: lm-eval does not know the task {name!r}{hint}; task YAMLs are "
            f"searched in lm-eval's own tasks and in {', '.join(map(str, include))}"
        )
    run_tasks = {cell.task for cell in expand_grid(config)}
    for task, settings in config["tasks"].items():
        if task not in run_tasks:
            continue  # imported results are checked when they are read
        reported = reported_metrics(lm_eval_task(config, task), include)
        if reported is not None and not metric_matches(settings["metric"], reported):
            listed = ", ".join(sorted(m.replace(",*", ",<filter>") for m in reported))
            raise ConfigError(
                f"tasks.{task}.metric: lm-eval task {lm_eval_task(config, task)!r} reports no "
                f"metric {settings['metric']!r}; it reports {listed}"
            )


# The repository's copy of BIG-Bench Hard (data/bbh, beside the Snakefile).
SHIPPED_BBH = "data/bbh"


def resolve_bbh_tasks(config: dict, base_dir: Path, workflow_dir: Path) -> None:
    """Each BBH task's directory made explicit (the repository's copy unless `bbh_dir` names
    another), and its questions and exemplars checked now, not when its staging job runs."""
    for name, task in config["tasks"].items():
        data = task.get("data", {})
        if "bbh" not in data:
            continue
        key = f"tasks.{name}.data.bbh_dir" if "bbh_dir" in data else f"tasks.{name}.data.bbh"
        data.setdefault("bbh_dir", str(workflow_dir / SHIPPED_BBH))
        if problem := bbh_task_problem(base_dir / data["bbh_dir"], data["bbh"]):
            raise ConfigError(f"{key}: {problem}")
        if not (prompts := bbh_prompt_file(base_dir / data["bbh_dir"], data["bbh"])).is_file():
            raise ConfigError(f"{key}: {str(prompts)!r} (its CoT exemplars) does not exist")
        if problem := bbh_choice_problem(base_dir / data["bbh_dir"], data["bbh"]):
            raise ConfigError(f"{key}: {problem}")

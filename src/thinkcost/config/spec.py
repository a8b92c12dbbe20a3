"""A run cell resolved for its job: the cell spec the evaluation reads, and the job's inputs,
conda environment and resources.

Snakemake hands a job its spec as a plain dict (`CellSpec.as_params`): Snakemake compares a
job's params by their repr to decide whether a finished cell is out of date, which it cannot do
for a dataclass, and a dict it can. The job rebuilds the spec with `CellSpec.from_params`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from thinkcost.config.grid import Cell, lm_eval_task
from thinkcost.config.knobs import engine_name
from thinkcost.config.paths import model_dir, model_input, revision, task_data, task_limit
from thinkcost.engines import engine_profile

SECOND_MODELS = ("scorer", "assistant")


@dataclass(frozen=True)
class ModelFiles:
    """A second model a cell loads (a scorer or an assistant): where it is and its size."""

    model_dir: str
    params: float


@dataclass(frozen=True, kw_only=True)
class CellSpec:
    """Everything the evaluation of one cell needs, its knobs resolved once from the config.

    The fields are in the order of the job's params, which name them alike.
    """

    # model, task, optimization, revision and family: copied into every output of the cell
    cell: dict
    model_dir: str
    model_dtype: str | None = None
    params: float
    lm_eval_task: str
    metric: str
    limit: int | None = None
    num_fewshot: int | None = None
    # The optimization's knobs (schema defaults filled in, the chat template resolved)
    knobs: dict
    # The evaluation-wide settings an optimization may override
    evaluation: dict
    scorer: ModelFiles | None = None
    assistant: ModelFiles | None = None

    @property
    def engine(self) -> str:
        return engine_name(self.knobs, self.evaluation)

    def as_params(self) -> dict:
        """The spec as a job's params: a second model only where one is named, so that a cell
        without one keeps the params it had (and is not rerun)."""
        params = {field.name: getattr(self, field.name) for field in fields(self)}
        for role in SECOND_MODELS:  # the last fields: popped and put back, in their order
            second = params.pop(role)
            if second is not None:
                params[role] = asdict(second)
        return params

    @classmethod
    def from_params(cls, params: dict) -> CellSpec:
        second = {role: ModelFiles(**params[role]) for role in SECOND_MODELS if params.get(role)}
        return cls(**{**params, **second})


def cell_spec(config: dict, cell: Cell) -> CellSpec:
    """The spec of a run cell."""
    model = config["models"][cell.model]
    knobs = resolved_knobs(config, cell)
    return CellSpec(
        cell={
            "model": cell.model,
            "task": cell.task,
            "optimization": cell.optimization,
            "revision": revision(config, cell.model),
            "family": model["family"],
        },
        model_dir=model_dir(config, cell.model),
        model_dtype=model.get("dtype"),
        params=model["params"],
        lm_eval_task=lm_eval_task(config, cell.task),
        metric=config["tasks"][cell.task]["metric"],
        limit=task_limit(config, cell.task),
        num_fewshot=num_fewshot(config, cell),
        knobs=knobs,
        # How jobs are grouped changes no result, so it does not invalidate a cell.
        evaluation={
            key: value for key, value in config["evaluation"].items() if key != "group_by_model"
        },
        **{
            role: ModelFiles(model_dir(config, name), config["models"][name]["params"])
            for role, name in second_models(knobs).items()
        },
    )


def resolved_knobs(config: dict, cell: Cell) -> dict:
    """The optimization's knobs, with the chat template resolved: the optimization's own
    setting, or else the model's."""
    knobs = dict(config["optimizations"][cell.optimization])
    if knobs["apply_chat_template"] is None:
        knobs["apply_chat_template"] = config["models"][cell.model]["apply_chat_template"]
    return knobs


def num_fewshot(config: dict, cell: Cell) -> int | None:
    """Worked examples before each question: the optimization's number, or else the task's."""
    shots = config["optimizations"][cell.optimization]["num_fewshot"]
    return shots if shots is not None else config["tasks"][cell.task].get("num_fewshot")


def second_models(knobs: dict) -> dict[str, str]:
    """The models an optimization loads beside the evaluated one, by role."""
    named = {"scorer": knobs.get("scorer"), "assistant": knobs.get("assistant", {}).get("model")}
    return {role: name for role, name in named.items() if name}


def evaluate_inputs(config: dict, cell: Cell) -> dict[str, str]:
    """The files an evaluation job reads: its task's data and each model it loads."""
    inputs = {
        "data": task_data(config, cell.task),
        "model": model_input(config, cell.model),
    }
    for role, name in second_models(config["optimizations"][cell.optimization]).items():
        inputs[role] = model_input(config, name)
    return inputs


# --------------------------------------------------------------------------- resources
# What an evaluation job asks the cluster for grows with the model: a 160M and a 14B model must
# not ask for the same thing. Each retry (a job killed for memory or time, or preempted) asks for
# twice as much. A cluster overrides any of these in its profile (set-resources), not here.


def _engine(config: dict, optimization: str):
    return engine_profile(engine_name(config["optimizations"][optimization], config["evaluation"]))


def evaluate_conda_env(config: dict, optimization: str) -> str:
    """The conda environment of an evaluation job (--sdm conda): its engine's."""
    return _engine(config, optimization).conda_env


def shared_conda_env(config: dict) -> str | None:
    """The one conda environment of every evaluation job, when all optimizations' engines share
    it (None when they differ)."""
    envs = {evaluate_conda_env(config, optimization) for optimization in config["optimizations"]}
    return envs.pop() if len(envs) == 1 else None


def evaluate_gpus(config: dict, cell: Cell) -> int:
    """GPUs as the cell's engine counts them for its model."""
    params = config["models"][cell.model]["params"]
    return _engine(config, cell.optimization).gpus(params, config["evaluation"])


def evaluate_mem_mb(config: dict, model: str, attempt: int) -> int:
    """Host memory: the weights once in float32 (loading, or CPU inference) plus 2 GB."""
    params = config["models"][model]["params"]
    return int((2000 + params * 4 * 1.2 / 1e6) * 2 ** (attempt - 1))


def evaluate_runtime(config: dict, cell: Cell, attempt: int) -> int:
    """Minutes: 30 plus 30 per billion parameters per 1000 questions, doubled per retry."""
    params = config["models"][cell.model]["params"]
    questions = task_limit(config, cell.task) or 1000
    return int((30 + 30 * params / 1e9 * questions / 1000) * 2 ** (attempt - 1))


def evaluate_group(config: dict, model: str) -> str | None:
    """One cluster job per model when `evaluation.group_by_model` is set (none otherwise)."""
    return f"evaluate_{model}" if config["evaluation"]["group_by_model"] else None

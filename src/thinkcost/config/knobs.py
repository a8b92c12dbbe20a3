"""Checks of each optimization's knobs: combinations that would run but measure nothing sensible
(greedy samples, a sweep without samples), knobs its engine refuses, and the models it names."""

from __future__ import annotations

from thinkcost.config.errors import ConfigError
from thinkcost.engines import auto_engine, engine_profile


def engine_name(knobs: dict, evaluation: dict) -> str:
    """The engine an optimization runs on: its own, or else the evaluation's (`auto` resolved,
    for settings that did not pass through `validate_config`)."""
    name = knobs.get("engine") or evaluation["engine"]
    return auto_engine(evaluation["device"]) if name == "auto" else name


def resolve_auto_engine(config: dict) -> None:
    """Replace `evaluation.engine: auto` by the engine it means on the jobs' device, once at
    planning: each cell's spec and provenance then name the engine that ran, and the jobs' conda
    environment and GPUs follow it. A cluster whose planning environment lacks vLLM (it lives in
    envs/vllm.yaml there) gets hf; name `engine: vllm` to have it."""
    evaluation = config["evaluation"]
    if evaluation["engine"] == "auto":
        evaluation["engine"] = auto_engine(evaluation["device"])


def check_knobs(config: dict) -> None:
    """Each optimization's knobs, one feature at a time, in the order a message reports them."""
    for name, knobs in config["optimizations"].items():
        for check in (
            _check_sampling,
            _check_engine,
            _check_assistant,
            _check_scorer,
            _check_search,
            _check_sweep,
            _check_trigger,
        ):
            check(config, name, knobs)


def _check_sampling(config: dict, name: str, knobs: dict) -> None:
    if knobs["num_samples"] > 1 and not knobs["do_sample"]:
        raise ConfigError(
            f"optimizations.{name}: num_samples={knobs['num_samples']} with do_sample: false "
            "would draw the same greedy rationale k times; set do_sample: true"
        )


def _check_engine(config: dict, name: str, knobs: dict) -> None:
    """An engine with its own runtime says so rather than ignore the hf engine's knobs."""
    engine = engine_name(knobs, config["evaluation"])
    for knob, why in engine_profile(engine).refused_knobs.items():
        if knobs.get(knob):
            raise ConfigError(
                f"optimizations.{name}.{knob}: not supported by the {engine} engine ({why});"
                " use engine: hf for this optimization"
            )


def _check_assistant(config: dict, name: str, knobs: dict) -> None:
    assistant = knobs.get("assistant")
    if assistant is None:
        return
    where = f"optimizations.{name}.assistant"
    if ("model" in assistant) == ("prompt_lookup_num_tokens" in assistant):
        raise ConfigError(f"{where}: give exactly one of model, prompt_lookup_num_tokens")
    if "model" in assistant:
        if assistant["model"] not in config["models"]:
            raise ConfigError(f"{where}.model: {assistant['model']!r} is not a model under models")
        if "source" not in config["models"][assistant["model"]]:
            raise ConfigError(f"{where}.model: {assistant['model']!r} has no source")


def _check_scorer(config: dict, name: str, knobs: dict) -> None:
    scorer = knobs.get("scorer")
    if scorer is None:
        return
    where = f"optimizations.{name}.scorer"
    if scorer not in config["models"]:
        raise ConfigError(
            f"{where}: {scorer!r} is not a model under models; defined: "
            f"{', '.join(sorted(config['models']))}"
        )
    if "source" not in config["models"][scorer]:
        raise ConfigError(f"{where}: model {scorer!r} has no source to load it from")
    if knobs["num_samples"] < 2 or knobs["vote"] == "marginal":
        raise ConfigError(
            f"{where}: a scorer ranks samples: it needs num_samples ≥ 2 and a weighted, "
            "best_of_n or majority vote"
        )


def _check_search(config: dict, name: str, knobs: dict) -> None:
    if knobs.get("search") is None:
        return
    where = f"optimizations.{name}.search"
    if knobs["format"] != "hybrid" or not knobs["do_sample"]:
        raise ConfigError(f"{where}: a tree search needs format: hybrid and do_sample")
    if knobs["num_samples"] != 1 or knobs.get("sweep"):
        raise ConfigError(
            f"{where}: its width sets how many rationales it keeps; leave num_samples "
            "at 1 and give no sweep"
        )
    if knobs["vote"] == "marginal":
        raise ConfigError(f"{where}: answer from the leaves by majority, weighted or best_of_n")


def _check_sweep(config: dict, name: str, knobs: dict) -> None:
    sweep = knobs.get("sweep")
    if not sweep:
        return
    where = f"optimizations.{name}.sweep"
    if name == config["analysis"]["baseline"]:
        raise ConfigError(
            f"{where}: the baseline ({name}) becomes one row per k ({name}@k); make an "
            "unswept optimization the baseline"
        )
    if knobs["format"] != "hybrid" or knobs["num_samples"] < 2:
        raise ConfigError(f"{where}: a sweep needs format: hybrid and num_samples ≥ 2")
    if max(sweep) > knobs["num_samples"]:
        raise ConfigError(
            f"{where}: k={max(sweep)} exceeds the {knobs['num_samples']} samples drawn "
            "(num_samples)"
        )
    if len(set(sweep)) != len(sweep):
        raise ConfigError(f"{where}: {sweep} repeats a k")
    if knobs["vote"] == "marginal":
        raise ConfigError(
            f"{where}: the marginal vote has no per-sample answers to sweep; use "
            "majority, weighted or best_of_n"
        )


def _check_trigger(config: dict, name: str, knobs: dict) -> None:
    if knobs["format"] == "loglikelihood" and knobs["trigger"]:
        raise ConfigError(f"optimizations.{name}: a trigger needs generation; use format: hybrid")

"""Config validation and grid expansion: every bad input named before any job is planned."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

from thinkcost.config import (
    Cell,
    ConfigError,
    expand_grid,
    load_yaml_strict,
    table_optimizations,
    validate_config,
)

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "config" / "schema.yaml"

BASE = {
    "models": {
        "tiny": {"source": {"path": "."}, "family": "f", "params": 1.0e8, "train_tokens": 1.0e10},
        "big": {
            "source": {"hub": "EleutherAI/pythia-160m-deduped", "revision": "step5000"},
            "family": "f",
            "params": 1.6e8,
            "train_tokens": 3.0e11,
        },
    },
    "tasks": {
        "navigate": {"lm_eval_task": "thinkcost_bbh_navigate", "metric": "acc,none"},
        "arc_challenge": {"metric": "acc,none"},
    },
    "optimizations": {
        "direct": {"format": "loglikelihood"},
        "standard": {},
        "cot": {"trigger": "Let's think step by step."},
    },
    "evaluation": {"task_paths": [str(REPO / "config" / "tasks")]},
}


def validate(config: dict, **kwargs) -> dict:
    return validate_config(copy.deepcopy(config), SCHEMA, base_dir=REPO, **kwargs)


def with_change(path: str, value) -> dict:
    config = copy.deepcopy(BASE)
    *parents, last = path.split(".")
    node = config
    for key in parents:
        node = node[key]
    if value is KeyError:
        del node[last]
    else:
        node[last] = value
    return config


def test_defaults_come_from_the_schema():
    config = validate(BASE)
    assert config["evaluation"]["max_new_tokens"] == 256
    assert config["evaluation"]["batch_size"] == 32
    assert config["evaluation"]["engine"] == "hf"
    assert config["evaluation"]["group_by_model"] is False
    assert config["optimizations"]["standard"]["format"] == "hybrid"
    assert config["optimizations"]["standard"]["answer_prefix"] == "The answer is:"
    assert config["optimizations"]["cot"]["do_sample"] is False
    assert config["analysis"] == {
        "baseline": "standard",
        "flop_convention": "paper",
        "cost_unit": "flops",
        # An H100's dense bf16 peak, 989 TFLOP/s, at 40 % MFU: 3.96e14, rounded.
        "training_throughput": 4.0e14,
        "extrapolation_factor": 10.0,
        "confidence": 0.95,
        "interval": "student-t",
        "regime_models": None,
        "pca": {"optimization": None, "tasks": None, "n_components": 3, "reference_family": None},
    }


def test_cost_unit_and_training_throughput_are_taken_as_given():
    config = with_change("analysis", {"cost_unit": "seconds", "training_throughput": 1.2e14})
    analysis = validate(config, check_tasks=False)["analysis"]
    assert (analysis["cost_unit"], analysis["training_throughput"]) == ("seconds", 1.2e14)
    assert analysis["baseline"] == "standard"  # the other defaults still filled in


def test_scientific_notation_without_a_sign_is_a_number():
    # YAML 1.1 reads 2.0e12 as the string "2.0e12"; users write it that way anyway.
    config = with_change("models.tiny.train_tokens", "2.0e12")
    assert validate(config)["models"]["tiny"]["train_tokens"] == 2.0e12


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("evaluaton", {}, r"unknown key 'evaluaton' \(did you mean 'evaluation'\?\)"),
        ("optimizations.cot.triger", "x", r"optimizations.cot: unknown key 'triger'"),
        ("models.tiny.params", KeyError, r"models.tiny: 'params' is a required property"),
        ("models.tiny.train_tokens", KeyError, r"models.tiny: 'train_tokens' is a required"),
        ("models.tiny.params", -5, r"models.tiny.params: -5 is less than or equal to"),
        ("models.tiny.params", "many", r"models.tiny.params: 'many' is not of type 'number'"),
        (
            "analysis",
            {"baseline": "standrd"},
            r"optimization 'standrd' is not defined \(did you mean 'standard'\?\)",
        ),
        (
            "analysis",
            {"training_throughput": 0},
            r"analysis.training_throughput: 0 is less than or equal to the minimum of 0",
        ),
        (
            "analysis",
            {"training_throughput": -4.0e14},
            r"analysis.training_throughput: -400000000000000.0 is less than or equal to the min",
        ),
        (
            "analysis",
            {"training_throughput": "fast"},
            r"analysis.training_throughput: 'fast' is not of type 'number'",
        ),
        (
            "analysis",
            {"cost_unit": "joules"},
            r"analysis.cost_unit: 'joules' is not one of \['flops', 'seconds'\]",
        ),
        (
            "analysis",
            {"pca": {"optimization": "drect"}},
            r"analysis.pca.optimization: optimization 'drect' is not defined \(did you mean "
            r"'direct'\?\)",
        ),
        (
            "analysis",
            {"pca": {"tasks": ["navigate", "arc"]}},
            r"analysis.pca.tasks\[1\]: task 'arc' is not defined",
        ),
        (
            "analysis",
            {"pca": {"tasks": ["navigate"]}},
            r"analysis.pca.tasks: \['navigate'\] is too short",
        ),
        (
            "analysis",
            {"pca": {"reference_family": "g"}},
            r"analysis.pca.reference_family: family 'g' is not defined; defined families: f",
        ),
        (
            "grid",
            {"optimizations": ["cott"]},
            r"grid.optimizations\[0\]: optimization 'cott' is not defined",
        ),
        (
            "models.tiny.source",
            {"path": "/no/such/model"},
            r"models.tiny.source.path: '/no/such/model' does not exist",
        ),
        (
            "models.tiny.source",
            {"path": ".", "hub": "x/y"},
            r"models.tiny.source: a model source names exactly one",
        ),
        (
            "optimizations.cot.num_samples",
            5,
            r"optimizations.cot: num_samples=5 with do_sample: false",
        ),
        (
            "optimizations.direct.trigger",
            "Think.",
            r"optimizations.direct: a trigger needs generation",
        ),
    ],
)
def test_bad_config_names_the_key(path, value, message):
    with pytest.raises(ConfigError, match=message):
        validate(with_change(path, value), check_tasks=False)


def test_unknown_lm_eval_task_is_refused_with_a_suggestion():
    config = with_change(
        "tasks.arc_challenge", {"lm_eval_task": "arc_challange", "metric": "acc,none"}
    )
    with pytest.raises(
        ConfigError,
        match=r"tasks.arc_challenge: lm-eval does not know the task 'arc_challange' "
        r"\(did you mean 'arc_challenge'",
    ):
        validate(config)


def test_known_tasks_pass_both_ours_and_lm_evals():
    validate(BASE)  # thinkcost_bbh_navigate (config/tasks) and arc_challenge (lm-eval)


@pytest.mark.parametrize(
    "task, metric, reported",
    [
        ("navigate", "accuracy", "acc,none, acc_norm,none"),  # a task of ours
        ("arc_challenge", "acc", "acc,none, acc_norm,none"),  # the filter left out
    ],
)
def test_a_metric_the_task_does_not_report_is_refused_before_any_job(task, metric, reported):
    config = with_change(f"tasks.{task}.metric", metric)
    with pytest.raises(
        ConfigError,
        match=rf"tasks.{task}.metric: .* reports no metric "
        rf"'{metric}'; it reports {reported}$",
    ):
        validate(config)


def test_metrics_of_groups_and_filtered_tasks_are_read_from_their_yaml():
    config = copy.deepcopy(BASE)
    config["tasks"] = {
        "mmlu": {"metric": "acc,none"},  # a group: its aggregate metric
        "gsm8k": {"metric": "exact_match,flexible-extract"},  # a filter of the task
        "mmlu_anatomy": {"metric": "acc,none"},  # a YAML whose keys are quoted
    }
    validate(config)
    config["tasks"]["gsm8k"]["metric"] = "exact_match,flexible"
    with pytest.raises(ConfigError, match=r"exact_match,flexible-extract, exact_match,strict"):
        validate(config)
    config["tasks"]["gsm8k"]["metric"] = "exact_match,flexible-extract"
    config["tasks"]["mmlu"]["metric"] = "accuracy,none"
    with pytest.raises(ConfigError, match=r"tasks.mmlu.metric: .* it reports acc,<filter>"):
        validate(config)


def test_a_metric_given_as_a_function_is_not_refused():
    # `metric: !function utils.pass_at_k` is reported under the function's own name.
    config = copy.deepcopy(BASE)
    config["tasks"] = {"humaneval": {"metric": "pass_at_k,create_test"}}
    validate(config)


def test_an_imported_task_metric_is_not_checked_against_the_yaml(tmp_path):
    # An import may come from another harness version; its file is checked when read.
    results = tmp_path / "results.json"
    results.write_text("{}")
    config = with_change("tasks.arc_challenge.metric", "acc")
    # Every arc_challenge cell imported, none run: the YAML's metric list does not apply.
    config["imports"] = [
        {"model": model, "optimization": optimization, "task": "arc_challenge",
         "results": str(results), "generated_tokens_mean": 0.0}
        for model in config["models"]
        for optimization in config["optimizations"]
    ]  # fmt: skip
    validate(config)
    # The same metric on a cell that runs is checked, and refused.
    config["imports"] = config["imports"][1:]
    with pytest.raises(
        ConfigError, match=r"tasks.arc_challenge.metric: .* reports no metric 'acc'"
    ):
        validate(config)


def test_a_bbh_task_reads_the_repositorys_copy_unless_a_directory_is_named(tmp_path):
    config = validate(with_change("tasks.navigate.data", {"bbh": "navigate"}), check_tasks=False)
    assert config["tasks"]["navigate"]["data"]["bbh_dir"] == str(REPO / "data" / "bbh")
    (tmp_path / "tasks").mkdir()
    (tmp_path / "cot-prompts").mkdir()
    (tmp_path / "tasks" / "snarks.json").write_text('{"examples": []}')
    (tmp_path / "cot-prompts" / "snarks.txt").write_text("")
    data = {"bbh": "snarks", "bbh_dir": str(tmp_path)}
    validate(with_change("tasks.navigate.data", data), check_tasks=False)


@pytest.mark.parametrize(
    "data, message",
    [
        (
            {"bbh": "navigatee"},
            r"tasks.navigate.data.bbh: '.*data/bbh/tasks/navigatee.json' does not exist "
            r"\(did you mean 'navigate'\?\)",
        ),
        (
            {"bbh": "snarks"},
            r"tasks.navigate.data.bbh: '.*data/bbh/tasks/snarks.json' does not exist; it has "
            r"date_understanding, logical_deduction_three_objects, navigate, "
            r"tracking_shuffled_objects_three_objects",
        ),
        (
            {"bbh": "navigate", "bbh_dir": "no/such/bbh"},
            r"tasks.navigate.data.bbh_dir: '.*no/such/bbh/tasks/navigate.json' does not exist",
        ),
        ({"bigbench": "navigate"}, r"tasks.navigate.data"),
    ],
)
def test_a_bbh_task_that_is_not_on_disk_is_refused_naming_the_key(data, message):
    with pytest.raises(ConfigError, match=message):
        validate(with_change("tasks.navigate.data", data), check_tasks=False)


def test_a_free_form_bbh_task_is_refused_with_the_lm_eval_task_to_use(tmp_path):
    (tmp_path / "tasks").mkdir()
    (tmp_path / "cot-prompts").mkdir()
    free_form = {"examples": [{"input": "How many apples? I have 2 and 3.", "target": "5"}]}
    (tmp_path / "tasks" / "object_counting.json").write_text(json.dumps(free_form))
    (tmp_path / "cot-prompts" / "object_counting.txt").write_text("")
    data = {"bbh": "object_counting", "bbh_dir": str(tmp_path)}
    with pytest.raises(ConfigError, match=r"bbh_dir: BBH task 'object_counting' is free-form"):
        validate(with_change("tasks.navigate.data", data), check_tasks=False)


def test_a_bbh_task_without_its_exemplars_is_refused(tmp_path):
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "navigate.json").write_text('{"examples": []}')
    data = {"bbh": "navigate", "bbh_dir": str(tmp_path)}
    with pytest.raises(ConfigError, match=r"bbh_dir: .*cot-prompts/navigate.txt' \(its CoT"):
        validate(with_change("tasks.navigate.data", data), check_tasks=False)


def test_a_budget_beyond_a_local_models_context_is_refused(tmp_path):
    (tmp_path / "config.json").write_text('{"max_position_embeddings": 512}')
    config = with_change("models.tiny.source", {"path": str(tmp_path)})
    config["evaluation"]["max_new_tokens"] = 128
    validate(config, check_tasks=False)
    config["optimizations"]["cot"]["max_new_tokens"] = 512
    with pytest.raises(
        ConfigError,
        match=r"optimizations.cot.max_new_tokens: a budget of 512 new tokens does not fit model "
        r"'tiny', whose context is 512 tokens \(.*config.json: max_position_embeddings\)",
    ):
        validate(config, check_tasks=False)
    # The direct format generates nothing; evaluation.max_length is the context when set.
    config["optimizations"]["cot"] = {"format": "loglikelihood"}
    config["evaluation"]["max_length"] = 100
    with pytest.raises(
        ConfigError,
        match=r"evaluation.max_new_tokens: .* context is 100 tokens "
        r"\(evaluation.max_length\)",
    ):
        validate(config, check_tasks=False)


def test_duplicate_model_name_is_refused(tmp_path):
    text = yaml.safe_dump(BASE, sort_keys=False)
    duplicated = text.replace("  big:\n", "  tiny:\n", 1)
    path = tmp_path / "config.yaml"
    path.write_text(duplicated)
    with pytest.raises(
        ConfigError, match=r"duplicate key 'tiny' at line \d+ \(first defined at line \d+\)"
    ):
        validate(yaml.safe_load(duplicated), configfiles=[path], check_tasks=False)


def test_grid_is_the_full_product_minus_exclusions_and_imports(tmp_path):
    results = tmp_path / "results.json"
    results.write_text("{}")
    config = copy.deepcopy(BASE)
    config["grid"] = {"exclude": [{"model": "big", "optimization": "direct"}]}
    config["imports"] = [
        {
            "model": "big",
            "optimization": "cot",
            "results": str(results),
            "generated_tokens_mean": 12.0,
            "prompt_tokens_mean": 80.0,
        }
    ]
    cells = expand_grid(validate(config, check_tasks=False))
    assert len(cells) == 2 * 2 * 3 - 2 - 2
    assert Cell("tiny", "navigate", "direct") in cells
    assert Cell("big", "navigate", "direct") not in cells  # excluded
    assert Cell("big", "arc_challenge", "cot") not in cells  # imported
    assert Cell("big", "arc_challenge", "standard") in cells


def test_grid_optimizations_restricts_the_product():
    config = with_change("grid", {"optimizations": ["standard"]})
    cells = expand_grid(validate(config, check_tasks=False))
    assert {cell.optimization for cell in cells} == {"standard"}
    assert len(cells) == 4


def test_every_shipped_config_validates():
    for path in sorted((REPO / "config").glob("*.yaml")):
        if path.name == "schema.yaml":
            continue
        validate_config(load_yaml_strict(path), SCHEMA, base_dir=REPO, configfiles=[path])


def swept(**knobs) -> dict:
    config = copy.deepcopy(BASE)
    knobs = {
        "trigger": "Let's think step by step.",
        "do_sample": True,
        "num_samples": 4,
        "sweep": [1, 2, 4],
        **knobs,
    }
    config["optimizations"]["vote"] = {k: v for k, v in knobs.items() if v is not None}
    return config


@pytest.mark.parametrize(
    ("knobs", "message"),
    [
        ({"sweep": [1, 8]}, r"optimizations.vote.sweep: k=8 exceeds the 4 samples drawn"),
        ({"sweep": [2, 2]}, r"optimizations.vote.sweep: \[2, 2\] repeats a k"),
        ({"sweep": [0]}, r"optimizations.vote.sweep"),
        ({"num_samples": 1, "do_sample": False, "sweep": [1]}, r"needs format: hybrid and num_"),
        ({"vote": "marginal"}, r"the marginal vote has no per-sample answers"),
        ({"vote": "plurality"}, r"optimizations.vote.vote"),
        ({"score": "max"}, r"optimizations.vote.score"),
        ({"scorer": "huge"}, r"optimizations.vote.scorer: 'huge' is not a model under models"),
        ({"scorer": "big", "vote": "marginal", "sweep": None}, r"a scorer ranks samples"),
        ({"search": {"width": 4}}, r"vote.search: its width sets how many rationales"),
        (
            {"search": {"width": 4}, "num_samples": 1, "sweep": None, "do_sample": False},
            r"a tree search needs format: hybrid and do_sample",
        ),
        ({"search": {"width": 0}, "num_samples": 1, "sweep": None}, r"optimizations.vote.search"),
    ],
)
def test_a_bad_sweep_is_refused_before_any_job(knobs, message):
    with pytest.raises(ConfigError, match=message):
        validate(swept(**knobs))


def test_a_swept_baseline_is_refused_and_a_good_sweep_names_its_rows():
    config = swept()
    config["analysis"] = {"baseline": "vote"}
    with pytest.raises(ConfigError, match=r"the baseline \(vote\) becomes one row per k"):
        validate(config)
    valid = validate(swept())
    assert table_optimizations(valid, "vote") == ["vote@1", "vote@2", "vote@4"]
    assert table_optimizations(valid, "cot") == ["cot"]


@pytest.mark.parametrize(
    ("knobs", "message"),
    [
        ({"assistant": {"model": "huge"}}, r"assistant.model: 'huge' is not a model under models"),
        (
            {"assistant": {"model": "tiny", "prompt_lookup_num_tokens": 3}},
            r"give exactly one of model, prompt_lookup_num_tokens",
        ),
        ({"quantization": "int2"}, r"optimizations.fast.quantization"),
        ({"engine": "vllm", "compile": True}, r"fast.compile: not supported by the vllm engine"),
        ({"engine": "vllm", "quantization": "int8"}, r"fast.quantization: not supported by"),
    ],
)
def test_runtime_knobs_are_checked_before_any_job(knobs, message):
    config = copy.deepcopy(BASE)
    config["optimizations"]["fast"] = {"trigger": "Let's think step by step.", **knobs}
    with pytest.raises(ConfigError, match=message):
        validate(config)


def test_good_runtime_knobs_pass():
    config = copy.deepcopy(BASE)
    config["optimizations"]["fast"] = {
        "quantization": "int8",
        "assistant": {"model": "tiny"},
        "dtype": "bfloat16",
    }
    knobs = validate(config)["optimizations"]["fast"]
    assert knobs["assistant"] == {"model": "tiny", "num_assistant_tokens": 4}


def test_the_schema_names_exactly_the_registered_engines():
    """The schema's two engine enums (evaluation.engine, an optimization's engine) and the
    registry must not drift: a registered engine the schema refuses cannot be chosen."""
    from thinkcost.engines import ENGINES

    schema = yaml.safe_load(SCHEMA.read_text())
    evaluation = schema["properties"]["evaluation"]["properties"]["engine"]["enum"]
    optimization = schema["$defs"]["optimization"]["properties"]["engine"]["enum"]
    assert set(evaluation) - {"auto"} == set(ENGINES)
    assert set(optimization) - {None} == set(ENGINES)


@pytest.mark.parametrize("device", ["cpu", "cuda", "cuda:1", "auto"])
def test_engine_auto_means_vllm_only_where_it_is_installed_and_the_device_is_a_gpu(device):
    """The default engine, resolved once at planning into the engine each cell records."""
    import importlib.util

    import torch

    gpu = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    expected = "vllm" if importlib.util.find_spec("vllm") and gpu else "hf"
    config = copy.deepcopy(BASE)
    config["evaluation"] = {"device": device}  # the engine left to its default, auto
    validate_config(config, SCHEMA, base_dir=REPO, check_tasks=False)
    assert config["evaluation"]["engine"] == expected


def test_regime_plots_are_grouped_by_the_optimizations_a_model_has():
    """One plotting rule per set of optimizations, one job per model: models a and c share a set,
    b lacks cot (hand-worked)."""
    from thinkcost.config.analysis import regime_groups

    pairs = [("a", "cot"), ("a", "vote"), ("b", "vote"), ("c", "cot"), ("c", "vote")]
    assert regime_groups(pairs) == {("cot", "vote"): ["a", "c"], ("vote",): ["b"]}

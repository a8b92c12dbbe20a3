"""What the benchmarks share: their options, the config's `cot` settings, the questions as the
workflow's cells format them, timing, and the engines and strategy they run.

The model and the task data are read from results/stage/ (`stage_missing` runs the workflow's
staging targets for what is not there); the task YAMLs name their data relative to the
repository root, so `prepare` moves there.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
MODEL = "smollm2-135m-instruct"
OPTIMIZATION = "cot"
DEFAULT_LIMIT = 24  # questions per task: 3 batches of the paper's 8 (96 questions)

# ---------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class Settings:
    """What every method runs: the model, the tasks and the `cot` optimization's knobs."""

    model_dir: Path
    tasks: dict[str, str]  # config name -> lm-eval task name
    task_paths: list[str]
    trigger: str
    answer_prefix: str
    stop: tuple[str, ...]  # rationale stops: the configured ones and the answer prefix's words
    max_new_tokens: int
    seed: int


def argument_parser(
    doc: str, limit: int, max_new_tokens: int | None, dtype: bool = True
) -> argparse.ArgumentParser:
    """The options the benchmarks here share: questions per task, T, tasks, threads, device,
    dtype (unless the benchmark sets it per variant) and the hf engine's batch size."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=limit, help="questions per task")
    parser.add_argument(
        "--max-new-tokens",
        type=int,
        default=max_new_tokens,
        help=f"T (default: {max_new_tokens or 'the config’s, 256'})",
    )
    parser.add_argument("--tasks", nargs="+", help="config task names (default: all)")
    parser.add_argument(
        "--threads", type=int, default=os.cpu_count(), help="torch threads (default: all cores)"
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    if dtype:
        parser.add_argument("--dtype", default="float32")
    parser.add_argument("--batch-size", type=int, default=32, help="the hf engine's batch size")
    return parser


def prepare(options: argparse.Namespace) -> Settings:
    """Move to the repository root (the task YAMLs name their data relative to it), stay
    offline, set torch's threads, and read the settings."""
    os.chdir(REPO)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    torch.set_num_threads(options.threads)
    return load_settings(options)


def load_settings(options: argparse.Namespace) -> Settings:
    from thinkcost.config import apply_schema, lm_eval_task, load_yaml_strict

    config = apply_schema(
        load_yaml_strict(REPO / "config/config.yaml"), REPO / "config/schema.yaml"
    )
    names = options.tasks or list(config["tasks"])
    unknown = sorted(set(names) - set(config["tasks"]))
    if unknown:
        sys.exit(f"unknown tasks {unknown}; config/config.yaml has {list(config['tasks'])}")
    source = config["models"][MODEL]["source"]
    knobs = config["optimizations"][OPTIMIZATION]
    evaluation = config["evaluation"]
    answer_prefix = knobs["answer_prefix"]
    # As the thinkcost backend does: a model that starts its own answer has finished reasoning.
    answer_stop = (answer_prefix.rstrip(": "),) if answer_prefix else ()
    return Settings(
        model_dir=Path(source.get("path", REPO / f"results/stage/models/{MODEL}")),
        tasks={name: lm_eval_task(config, name) for name in names},
        task_paths=[str(REPO / path) for path in evaluation["task_paths"]],
        trigger=knobs["trigger"],
        answer_prefix=answer_prefix,
        stop=(*knobs["stop"], *answer_stop),
        max_new_tokens=options.max_new_tokens
        or knobs["max_new_tokens"]
        or evaluation["max_new_tokens"],
        seed=evaluation["seed"],
    )


def stage_missing(settings: Settings) -> None:
    """Run the workflow's staging targets for the model and task data that are not there."""
    from thinkcost.config import load_yaml_strict

    config = load_yaml_strict(REPO / "config/config.yaml")
    targets = []
    if "path" not in config["models"][MODEL]["source"]:
        targets.append(f"results/stage/models/{MODEL}/manifest.json")
    for name in settings.tasks:
        data = config["tasks"][name].get("data", {})
        if "bbh" in data:
            targets.append(f"results/stage/data/bbh/{data['bbh']}.jsonl")
    missing = [target for target in targets if not (REPO / target).exists()]
    if not missing:
        return
    venv_bin = Path(sys.executable).parent
    command = [str(venv_bin / "snakemake"), "--cores", "1", *missing]
    print(f"staging what is missing: {' '.join(command)}", flush=True)
    environment = {**os.environ, "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}"}
    subprocess.run(command, cwd=REPO, env=environment, check=True)


# ---------------------------------------------------------------------------- questions


def lm_eval_documents(task: str, settings: Settings, limit: int | None) -> tuple[object, list]:
    """The lm-eval task object and its first `limit` documents as (question, document) pairs,
    each question formatted as lm-eval formats its requests."""
    from thinkcost.config.tasks import task_manager
    from thinkcost.inference.questions import Question

    loaded = task_manager(task, settings.task_paths).load([task])["tasks"][task]
    if loaded.get_config("num_fewshot") is None:  # as lm-eval's simple_evaluate does
        loaded.set_config(key="num_fewshot", value=0)
    loaded.set_fewshot_seed(seed=settings.seed)
    loaded.build_all_requests(limit=limit, rank=0, world_size=1)
    by_doc = defaultdict(list)
    for instance in loaded.instances:
        by_doc[instance.doc_id].append(instance)
    documents = []
    for doc_id, instances in sorted(by_doc.items()):
        instances.sort(key=lambda instance: instance.idx)
        question = Question(
            key=f"{task}/{doc_id}",
            context=instances[0].args[0],
            choices=tuple(instance.args[1] for instance in instances),
        )
        documents.append((question, instances[0].doc))
    return loaded, documents


def questions_by_task(settings: Settings, limit: int | None) -> dict[str, list]:
    """Every configured task's first `limit` questions, formatted as the workflow's cells."""
    return {
        name: [question for question, _ in lm_eval_documents(task, settings, limit)[1]]
        for name, task in settings.tasks.items()
    }


def staged_questions(options: argparse.Namespace) -> tuple[Settings, dict[str, list]]:
    """`prepare`, stage what is missing, and every configured task's first `--limit`
    questions."""
    settings = prepare(options)
    stage_missing(settings)
    return settings, questions_by_task(settings, options.limit)


def describe_questions(questions: dict[str, list]) -> str:
    """ "<n> questions (<task> <n>, …)": the first words of a benchmark's header line."""
    count = sum(len(q) for q in questions.values())
    return f"{count} questions ({', '.join(f'{n} {len(q)}' for n, q in questions.items())})"


def argmax(values: Sequence[float]) -> int:
    return max(range(len(values)), key=values.__getitem__)


# ---------------------------------------------------------------------------- timing


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


@contextmanager
def stopwatch(device: str) -> Iterator[list[float]]:
    """Wall seconds of the block, the device synchronized at both ends: `[seconds]`."""
    elapsed = [0.0]
    synchronize(device)
    started = time.perf_counter()
    try:
        yield elapsed
    finally:
        synchronize(device)
        elapsed[0] = time.perf_counter() - started


@dataclass
class Timings:
    """One method (or variant) over every question: what generating and scoring took."""

    name: str
    load_seconds: float = 0.0
    generation_seconds: float = 0.0
    scoring_seconds: float = 0.0
    generated_tokens: int = 0
    questions: int = 0

    @property
    def seconds(self) -> float:
        """Generation and scoring: the model load excluded."""
        return self.generation_seconds + self.scoring_seconds

    @property
    def tokens_per_second(self) -> float:
        return self.generated_tokens / self.generation_seconds if self.generation_seconds else 0.0


class TimedEngine:
    """An engine whose `generate` and `score` calls are timed; everything else passes through."""

    def __init__(self, engine, device: str) -> None:
        self.engine = engine
        self.device = device
        self.generation_seconds = 0.0
        self.scoring_seconds = 0.0

    def generate(self, requests, spec):
        with stopwatch(self.device) as seconds:
            generations = self.engine.generate(requests, spec)
        self.generation_seconds += seconds[0]
        return generations

    def score(self, requests):
        with stopwatch(self.device) as seconds:
            scores = self.engine.score(requests)
        self.scoring_seconds += seconds[0]
        return scores

    def __getattr__(self, name: str):
        return getattr(self.engine, name)


# ---------------------------------------------------------------------------- what runs


def cot_strategy(settings: Settings, spec=None, **knobs):
    """The `Hybrid` strategy of the `cot` optimization: greedy unless `spec` says otherwise."""
    from thinkcost.engines import SamplingSpec
    from thinkcost.inference.strategies import Hybrid

    return Hybrid(
        spec=spec or SamplingSpec(max_new_tokens=settings.max_new_tokens, stop=settings.stop),
        trigger=settings.trigger,
        answer_prefix=settings.answer_prefix,
        **knobs,
    )


def load_warm_engine(
    settings: Settings, options: argparse.Namespace, warm_samples: int = 1, **engine_options
):
    """A fresh hf engine, warmed up by a 2-token generation of `warm_samples` samples (thread
    pools, kernels, the allocator, the weights' pages) and its prefix cache cleared after."""
    from thinkcost.engines import GenerationRequest, SamplingSpec, load_engine

    engine = load_engine(
        "hf",
        str(settings.model_dir),
        device=options.device,
        max_batch_size=options.batch_size,
        **engine_options,
    )
    engine.generate([GenerationRequest("Warm up.", warm_samples)], SamplingSpec(max_new_tokens=2))
    engine.clear_prefix_cache()
    return engine


class RecordedGenerate:
    """Keeps what an lm-eval `HFLM`'s `model.generate` returned, (context width, output ids) a
    call, to count its tokens afterwards."""

    def __init__(self, lm) -> None:
        self.lm = lm
        self.outputs: list[tuple[int, torch.Tensor]] = []
        generate = lm._model_generate

        def recorded(context, *args, **kwargs):
            output = generate(context, *args, **kwargs)
            self.outputs.append((context.shape[1], output.cpu()))
            return output

        lm._model_generate = recorded

    def generated_tokens(self, stop: Sequence[str]) -> int:
        """Tokens up to each row's first stop string or EOS, as `Generation.tokens` counts."""
        from thinkcost.engines.base import cut_generation

        eos = {self.lm.tokenizer.eos_token_id}
        configured = self.lm.model.generation_config.eos_token_id
        eos.update(configured if isinstance(configured, list) else [configured])
        eos_ids = frozenset(int(token) for token in eos if token is not None)
        return sum(
            cut_generation(row[width:].tolist(), eos_ids, stop, self.lm.tok_decode).tokens
            for width, output in self.outputs
            for row in output
        )

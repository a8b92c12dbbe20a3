"""Planning time of a large grid: `snakemake -n` on 10,000 evaluation cells, against a 10 s target.

Writes a synthetic config of models × tasks × optimizations (25 × 20 × 20 = 10,000 cells by
default) into a temporary directory and times dry runs of the workflow on it, from the repository
root, in two modes:

- `snakemake -n --quiet`: parses the workflow, validates the config and builds the DAG, then
  stops (Snakemake's own advice for large workflows). This is the number held to the target.
- `snakemake -n --quiet rules`: also passes every job through the dry-run executor (evaluating
  its resources, formatting its files) and prints the job table, from which the planned jobs are
  counted. A plain `snakemake -n` does the same and prints every job as well.

For comparison it times the same two dry runs on the default config (config/config.yaml; its job
count depends on what results/ already holds) and, for Snakemake's own share, a bare workflow
with the same number of evaluate jobs and nothing else (no input functions, params, resources,
conda or script). Nothing is staged or downloaded: the models are empty local directories in the
temporary directory, the tasks are real lm-eval task names that validation accepts, and the
optimizations are hybrid variants with and without a chain-of-thought trigger.

    .venv/bin/python -m bench.dry_run_grid [--models 25] [--tasks 20] [--optimizations 20]

It takes under two minutes on the 2-core development machine. Snakemake runs with --nolock, so that
a workflow running in the repository at the same time does not stop it; CPU seconds are printed
next to wall seconds because such a neighbour slows the wall clock. The last two lines are
machine-readable: the grid's CPU seconds over the bare workflow's (issue 23's target: 1.5), and
the wall-clock target:

    grid_over_bare_cpu=<x> target_ratio=1.5 ok=<true|false>
    dry_run_seconds=<x> cells=<n> target_seconds=10 ok=<true|false>

lm-eval's task names are read from a name index cached under ~/.cache/thinkcost; a cold cache
adds one scan of lm-eval's task YAMLs (about 1.5 s) to the first run.

Seen on the idle 2-core development machine (Snakemake 9.27.1, Python 3.11.7), 10,000 cells
and the PCA rules: 30.3 s wall and 21.4 CPU seconds for `-n --quiet`, against 10.8 CPU seconds
for the bare workflow (grid_over_bare_cpu=1.98; 2.12 before the regime plots were one job per
model). `snakemake --version` alone took 10.2 s wall: the SLURM executor plugin's `scontrol show
config` at Snakemake's start, waiting for a controller that is not running (the tests install
slurm). The rest is Snakemake's work per job on the evaluate rule's script, inputs and params
(README, "Speed"). The 10 s target is not met, and the bare workflow shows that it cannot be
while every cell is a Snakemake job.
"""

from __future__ import annotations

import argparse
import re
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

REPOSITORY = Path(__file__).resolve().parent.parent
TARGET_SECONDS = 10.0
# The grid's CPU seconds over a bare workflow's with as many jobs (issue 23).
TARGET_CPU_RATIO = 1.5

# lm-eval 0.4 tasks that the validation's name index knows (no data staging in the config: the
# dry run plans one stage_hub_dataset job per task, and never runs it).
LM_EVAL_TASKS = [
    "arc_easy",
    "arc_challenge",
    "hellaswag",
    "piqa",
    "winogrande",
    "boolq",
    "openbookqa",
    "sciq",
    "gsm8k",
    "commonsense_qa",
    "logiqa",
    "mathqa",
    "copa",
    "race",
    "truthfulqa_mc1",
    "truthfulqa_mc2",
    "lambada_openai",
    "medqa_4options",
    "prost",
    "pubmedqa",
    "wsc273",
    "anli_r1",
    "headqa_en",
    "asdiv",
]
TASK_METRICS = {"gsm8k": "exact_match,flexible-extract"}  # the others report acc,none
COT_TRIGGER = "Let's think step by step."
GENERATION_BUDGETS = [16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192]


def synthetic_optimizations() -> dict[str, dict]:
    """`standard` (the default baseline), `cot`, then hybrid and cot variants by budget T."""
    optimizations = {
        "standard": {"format": "hybrid"},
        "cot": {"format": "hybrid", "trigger": COT_TRIGGER},
    }
    for budget in GENERATION_BUDGETS:
        optimizations[f"standard-t{budget}"] = {"format": "hybrid", "max_new_tokens": budget}
        optimizations[f"cot-t{budget}"] = {
            "format": "hybrid",
            "trigger": COT_TRIGGER,
            "max_new_tokens": budget,
        }
    return optimizations


def write_grid_config(directory: Path, n_models: int, n_tasks: int, n_optimizations: int) -> Path:
    """A config of n_models × n_tasks × n_optimizations cells, written under `directory`."""
    models = {}
    for index in range(n_models):
        name = f"synthetic-{index:03d}"
        model_dir = directory / "models" / name
        model_dir.mkdir(parents=True)
        models[name] = {
            "source": {"path": str(model_dir)},
            "family": f"family-{index % 5}",
            "params": 1.0e8 * (index + 1),
            "train_tokens": 3.0e11,
        }
    config = {
        "models": models,
        # Each task with a metric it reports: validation checks that before planning.
        "tasks": {
            task: {"metric": TASK_METRICS.get(task, "acc,none")} for task in LM_EVAL_TASKS[:n_tasks]
        },
        "optimizations": dict(list(synthetic_optimizations().items())[:n_optimizations]),
        "evaluation": {"limit": 100},
        "analysis": {"baseline": "standard"},
    }
    path = directory / "grid.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


# Snakemake's own cost for the same number of cells: a workflow with only the evaluate rule's
# outputs, log and benchmark, no input, params, resources, conda or script, and no other rules.
BARE_SNAKEFILE = """\
CELL = "results/evaluate/{model}/{task}/{optimization}"


rule all:
    input:
        [
            f"results/evaluate/m{m}/t{t}/o{o}/{name}"
            for m in range(config["models"])
            for t in range(config["tasks"])
            for o in range(config["optimizations"])
            for name in ("results.json", "cost.json")
        ],


rule evaluate:
    output:
        results=f"{CELL}/results.json",
        samples=f"{CELL}/samples.jsonl",
        requests=f"{CELL}/requests.jsonl",
        cost=f"{CELL}/cost.json",
    log:
        "results/logs/evaluate/{model}/{task}/{optimization}.log",
    benchmark:
        "results/benchmarks/evaluate/{model}/{task}/{optimization}.tsv"
    threads: 2
    shell:
        "true"
"""


@dataclass
class DryRun:
    """One timed dry run."""

    wall_seconds: float
    cpu_seconds: float
    jobs_per_rule: dict[str, int]

    @property
    def jobs(self) -> int:
        return sum(self.jobs_per_rule.values())

    @property
    def cells(self) -> int:
        return self.jobs_per_rule.get("evaluate", 0)


def time_dry_run(arguments: list[str], directory: Path = REPOSITORY) -> DryRun:
    """Wall and CPU seconds of `snakemake -n --nolock <arguments>` run in `directory`, and the
    jobs per rule if Snakemake printed its job table."""
    snakemake = Path(sys.executable).with_name("snakemake")
    command = [str(snakemake), "-n", "--nolock", *arguments]
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    completed = subprocess.run(command, cwd=directory, capture_output=True, text=True, check=False)
    wall_seconds = time.perf_counter() - started
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    output = completed.stdout + completed.stderr
    if completed.returncode != 0:
        sys.stderr.write(output)
        raise SystemExit(f"{' '.join(command)} failed with exit status {completed.returncode}")
    cpu_seconds = (
        cpu_after.ru_utime - cpu_before.ru_utime + cpu_after.ru_stime - cpu_before.ru_stime
    )
    jobs_per_rule = {}
    if "Job stats:" in output:
        table = output.split("Job stats:", 1)[1].split("\n\n", 1)[0]
        for rule, count in re.findall(r"^(\w+)\s+(\d+)$", table, re.MULTILINE):
            if rule != "total":
                jobs_per_rule[rule] = int(count)
    return DryRun(wall_seconds, cpu_seconds, jobs_per_rule)


def time_start(repeats: int) -> float:
    """Wall seconds of `snakemake --version`, the fastest of `repeats`: Snakemake's fixed cost of
    starting (its imports, including every installed executor plugin's), before any workflow."""
    snakemake = Path(sys.executable).with_name("snakemake")
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run([str(snakemake), "--version"], capture_output=True, check=True)
        times.append(time.perf_counter() - started)
    return min(times)


def fastest(repeats: int, arguments: list[str], directory: Path = REPOSITORY) -> DryRun:
    """The fastest of `repeats` dry runs (the machine may be busy with other work)."""
    runs = [time_dry_run(arguments, directory) for _ in range(repeats)]
    return min(runs, key=lambda run: run.wall_seconds)


def print_timing(command: str, run: DryRun, note: str = "") -> None:
    timing = f"  {command:28s} {run.wall_seconds:6.2f} s wall {run.cpu_seconds:6.2f} s CPU  {note}"
    print(timing.rstrip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--models", type=int, default=25)
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--optimizations", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=1, help="keep the fastest of n runs")
    options = parser.parse_args()
    most_optimizations = len(synthetic_optimizations())
    if not 1 <= options.tasks <= len(LM_EVAL_TASKS):
        parser.error(f"--tasks: from 1 to {len(LM_EVAL_TASKS)} (the lm-eval tasks listed)")
    if not 1 <= options.optimizations <= most_optimizations:
        parser.error(f"--optimizations: from 1 to {most_optimizations} (the variants defined)")
    if options.models < 1:
        parser.error("--models: at least 1")
    configured_cells = options.models * options.tasks * options.optimizations

    start_seconds = time_start(options.repeats)
    default_summary = fastest(options.repeats, ["--quiet"])
    default_listing = fastest(options.repeats, ["--quiet", "rules"])
    with tempfile.TemporaryDirectory(prefix="thinkcost-dry-run-") as scratch:
        configfile = write_grid_config(
            Path(scratch), options.models, options.tasks, options.optimizations
        )
        grid = ["--configfile", str(configfile)]
        grid_summary = fastest(options.repeats, ["--quiet", *grid])
        grid_listing = fastest(options.repeats, ["--quiet", "rules", *grid])
        bare_directory = Path(scratch) / "bare"
        bare_directory.mkdir()
        (bare_directory / "Snakefile").write_text(BARE_SNAKEFILE)
        sizes = [f"{key}={getattr(options, key)}" for key in ("models", "tasks", "optimizations")]
        bare_summary = fastest(options.repeats, ["--quiet", "--config", *sizes], bare_directory)

    print(
        f"default config (config/config.yaml): {default_listing.cells} cells, "
        f"{default_listing.jobs} jobs planned"
    )
    print_timing("snakemake -n --quiet", default_summary)
    print_timing("snakemake -n --quiet rules", default_listing)
    print(
        f"synthetic grid ({options.models} models × {options.tasks} tasks × "
        f"{options.optimizations} optimizations): {grid_listing.cells} cells, "
        f"{grid_listing.jobs} jobs planned"
    )
    print(
        "  jobs per rule: " + ", ".join(f"{r} {n}" for r, n in grid_listing.jobs_per_rule.items())
    )
    print_timing("snakemake -n --quiet", grid_summary, "(builds the DAG; the target's number)")
    print_timing("snakemake -n --quiet rules", grid_listing, "(and passes every job through)")
    print(f"bare Snakemake workflow, {configured_cells} evaluate jobs and nothing else:")
    share = bare_summary.cpu_seconds / grid_summary.cpu_seconds
    print_timing("snakemake -n --quiet", bare_summary, f"({share:.0%} of the grid's CPU seconds)")
    print(
        f"Snakemake's start alone (snakemake --version): {start_seconds:.2f} s wall, "
        f"included in every time above; the grid's dry run less it: "
        f"{grid_summary.wall_seconds - start_seconds:.2f} s"
    )
    if grid_listing.cells != configured_cells:
        raise SystemExit(f"{configured_cells} cells configured but {grid_listing.cells} planned")
    ratio = grid_summary.cpu_seconds / bare_summary.cpu_seconds
    print(
        f"grid_over_bare_cpu={ratio:.2f} target_ratio={TARGET_CPU_RATIO:g} "
        f"ok={str(ratio <= TARGET_CPU_RATIO).lower()}"
    )
    ok = grid_summary.wall_seconds < TARGET_SECONDS
    print(
        f"dry_run_seconds={grid_summary.wall_seconds:.2f} cells={grid_listing.cells} "
        f"target_seconds={TARGET_SECONDS:g} ok={str(ok).lower()}"
    )


if __name__ == "__main__":
    main()

"""Which lm-eval tasks exist, and BIG-bench task data from the PyPI sdist.

lm-eval's TaskManager indexes ~14,000 YAML files and takes about 10 s, too slow for every
`snakemake -n`. Task names are read instead from the `task:`/`group:`/`tag:` lines of those
files (cached per lm-eval version); only a name that this fast index misses is confirmed with
the TaskManager, so a typo costs 10 s once and a valid config costs nothing.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import json
import os
import re
import tarfile
import urllib.request
from pathlib import Path

# Generated YAMLs (mmlu's) quote their keys: `"task": "mmlu_anatomy"`.
_NAME_LINE = re.compile(r"^[\"']?(?:task|group|tag)[\"']?:[ \t]*(.*)$", re.MULTILINE)
_LIST_ITEM = re.compile(r"^[ \t]+-[ \t]*([^\s#]+)", re.MULTILINE)


def _names_in_yaml(text: str) -> set[str]:
    names = set()
    for value in _NAME_LINE.findall(text):
        value = value.split("#")[0].strip().strip("'\"")
        if value and not value.startswith(("[", "{", "!")):
            names.add(value)
    if re.search(r"^[\"']?tag[\"']?:", text, re.MULTILINE):
        names.update(item.strip("'\"") for item in _LIST_ITEM.findall(text))
    return names


def _scan(directory: Path) -> dict[str, list[str]]:
    """Each task, group and tag name found in the YAMLs under `directory`, with the files that
    name it."""
    index: dict[str, list[str]] = {}
    for path in sorted(directory.rglob("*.y*ml")):
        for name in _names_in_yaml(path.read_text(errors="ignore")):
            index.setdefault(name, []).append(str(path))
    return index


def _builtin_index() -> dict[str, list[str]]:
    import lm_eval

    version = getattr(lm_eval, "__version__", "unknown")
    cache_dir = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "thinkcost"
    # The index holds absolute paths: one per installation, not per version.
    where = hashlib.sha256(lm_eval.__file__.encode()).hexdigest()[:12]
    cache = cache_dir / f"lm_eval-{version}-{where}-task-index.json"
    if cache.exists():
        return json.loads(cache.read_text())
    index = _scan(Path(lm_eval.__file__).parent / "tasks")
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(index))
    tmp.replace(cache)
    return index


def task_index(include_paths: list[Path]) -> dict[str, list[str]]:
    """lm-eval's own task YAMLs and ours: name -> the files that name it (ours last)."""
    return _task_index(tuple(str(path) for path in include_paths))


@functools.lru_cache(maxsize=4)
def _task_index(include_paths: tuple[str, ...]) -> dict[str, list[str]]:
    # Built once per planning: the name and metric checks of every task read it.
    index = {name: list(paths) for name, paths in _builtin_index().items()}
    for path in include_paths:
        for name, paths in _scan(Path(path)).items():
            index.setdefault(name, []).extend(paths)
    return index


def unknown_task_names(names: list[str], include_paths: list[Path]) -> dict[str, list[str]]:
    """Map each name lm-eval does not know to up to three close known names."""
    known = set(task_index(include_paths))
    missing = [name for name in names if name not in known]
    if not missing:
        return {}
    # The fast index reads lines, not YAML; confirm misses with lm-eval itself.
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=[str(p) for p in include_paths])
    known |= set(manager.all_tasks)
    return {
        name: difflib.get_close_matches(name, sorted(known), n=3, cutoff=0.6)
        for name in missing
        if name not in known
    }


def _filter_names(config: dict) -> list[str]:
    filters = config.get("filter_list")
    return [f["name"] for f in filters if isinstance(f, dict) and "name" in f] if filters else []


def reported_metrics(name: str, include_paths: list[Path]) -> set[str] | None:
    """The `metric,filter` keys lm-eval will report for task or group `name`, read from its
    YAML (includes resolved, no dataset loaded); None where the YAML does not say (a tag, a
    Python task). A group that leaves its filters to its subtasks gives `metric,*`.
    """
    from lm_eval.api.registry import DEFAULT_METRIC_REGISTRY
    from lm_eval.tasks._yaml_loader import load_yaml

    for path in task_index(include_paths).get(name, []):
        try:
            config = load_yaml(path, resolve_func=False)
        except Exception:  # a YAML lm-eval itself would refuse; the task check reports it
            continue
        if config.get("group") == name and "task" in config:
            metrics = set()
            for entry in config.get("aggregate_metric_list") or []:
                filters = entry.get("filter_list")
                filters = [filters] if isinstance(filters, str) else filters
                metrics |= {f"{entry['metric']},{f}" for f in filters or ["*"]}
            return metrics
        if config.get("task") == name:
            if "class" in config:
                return None
            entries = config.get("metric_list")
            if entries and any(_is_function(entry.get("metric")) for entry in entries):
                return None  # `metric: !function …` is named by the function lm-eval imports
            names = (
                [entry["metric"] for entry in entries if isinstance(entry.get("metric"), str)]
                if entries
                else DEFAULT_METRIC_REGISTRY.get(config.get("output_type", "generate_until"), [])
            )
            filters = _filter_names(config) or ["none"]
            return {f"{metric},{f}" for metric in names for f in filters}
    return None


def _is_function(metric) -> bool:
    """A metric given as `!function module.name` (read unresolved: a path)."""
    return not isinstance(metric, str) or "/" in metric or "." in metric


def metric_matches(metric: str, reported: set[str]) -> bool:
    """Whether `metric` is one of `reported`; a `metric,*` there matches any filter."""
    return metric in reported or f"{metric.partition(',')[0]},*" in reported


# --------------------------------------------------------------------------- BIG-bench

BIGBENCH_REQUIREMENT = ("bigbench", "1.0.0")
_TASKS_PREFIX = "bigbench/benchmark_tasks/"


BIGBENCH_TASK_LIST = Path(__file__).parent / "data" / "bigbench-1.0.0-tasks.json"


def bigbench_task_index(sdist: Path) -> dict[str, bool]:
    """Every task directory with a task.json in the bigbench sdist -> whether all its examples
    are multiple choice (have target_scores), which is what thinkcost can stage. About 10 s."""
    index = {}
    with tarfile.open(sdist, mode="r|gz") as archive:
        for member in archive:
            inner = member.name.split("/", 1)[-1]
            if inner.startswith(_TASKS_PREFIX) and inner.endswith("/task.json"):
                examples = json.load(archive.extractfile(member)).get("examples", [])
                task = inner[len(_TASKS_PREFIX) : -len("/task.json")]
                index[task] = bool(examples) and all(e.get("target_scores") for e in examples)
    return dict(sorted(index.items()))


def bigbench_task_problem(task: str) -> str | None:
    """Why `task` cannot be staged from bigbench==1.0.0, or None. Read from the task list
    shipped with thinkcost (made by `bigbench_task_index` from that sdist), so a typo is
    caught before the 358 MB download."""
    index = json.loads(BIGBENCH_TASK_LIST.read_text())
    name = task.strip("/")
    if name not in index:
        close = difflib.get_close_matches(name, list(index), n=3, cutoff=0.6)
        hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
        return f"{task!r} is not a task directory of bigbench==1.0.0{hint}"
    if not index[name]:
        subtasks = [t for t, mc in index.items() if t.startswith(f"{name}/") and mc]
        hint = f"; its multiple-choice subtasks: {', '.join(subtasks)}" if subtasks else ""
        return (
            f"{task!r} is not a multiple-choice task in bigbench==1.0.0 (its task.json has "
            f"examples without target_scores, or none){hint}"
        )
    return None


def bigbench_file_name(task: str) -> str:
    """`logical_deduction/three_objects` -> `logical_deduction_three_objects.jsonl`."""
    return task.strip("/").replace("/", "_") + ".jsonl"


def find_sdist(project: str, version: str, index_url: str | None = None) -> tuple[str, str]:
    """URL and sha256 of a project's sdist, from the PEP 691 JSON simple index.

    `pip download` cannot fetch bigbench: pip builds the sdist's metadata, which declares a
    direct-URL dependency that PyPI forbids, so pip refuses before downloading a byte.
    """
    index = (index_url or os.environ.get("PIP_INDEX_URL") or "https://pypi.org/simple").rstrip("/")
    request = urllib.request.Request(
        f"{index}/{project}/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        listing = json.load(response)
    wanted = f"{project}-{version}.tar.gz"
    for entry in listing["files"]:
        if entry["filename"] == wanted:
            return entry["url"], entry["hashes"]["sha256"]
    raise FileNotFoundError(f"{wanted} is not on the index {index}")


def download_verified(url: str, sha256: str, destination: Path) -> Path:
    """Download to `destination` (atomically), refusing a file whose hash does not match."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".part")
    digest = hashlib.sha256()
    with urllib.request.urlopen(url, timeout=600) as response, partial.open("wb") as out:
        while chunk := response.read(1 << 20):
            digest.update(chunk)
            out.write(chunk)
    if digest.hexdigest() != sha256:
        partial.unlink()
        raise OSError(f"{url}: sha256 {digest.hexdigest()} does not match the index's {sha256}")
    partial.replace(destination)
    return destination


def bigbench_examples(task_json: dict, task: str) -> list[dict]:
    """Multiple-choice rows from a BIG-bench task.json: input, choices, gold index."""
    prefix = task_json.get("task_prefix", "")
    rows = []
    for i, example in enumerate(task_json["examples"]):
        scores = example.get("target_scores")
        if not scores:
            raise ValueError(
                f"BIG-bench {task}: example {i} has no target_scores (not multiple choice)"
            )
        choices = list(scores)
        best = max(scores.values())
        rows.append(
            {
                "id": i,
                "task_prefix": prefix.strip(),
                "input": example["input"].strip(),
                "choices": choices,
                "gold": choices.index(next(c for c in choices if scores[c] == best)),
            }
        )
    return rows


def extract_bigbench_tasks(sdist: Path, tasks: dict[str, Path]) -> None:
    """Write one JSONL per BIG-bench task (`{task_dir: output}`) from the bigbench sdist.

    The 358 MB sdist is read once, as a stream, whatever the number of tasks.
    """
    wanted = {f"{_TASKS_PREFIX}{task.strip('/')}/task.json": task for task in tasks}
    found: set[str] = set()
    with tarfile.open(sdist, mode="r|gz") as archive:
        for member in archive:
            inner = member.name.split("/", 1)[-1]
            if inner not in wanted:
                continue
            task = wanted[inner]
            rows = bigbench_examples(json.load(archive.extractfile(member)), task)
            output = tasks[task]
            output.parent.mkdir(parents=True, exist_ok=True)
            tmp = output.with_suffix(".tmp")
            with tmp.open("w") as handle:
                for row in rows:
                    handle.write(json.dumps(row) + "\n")
            tmp.replace(output)
            found.add(task)
    missing = sorted(set(tasks) - found)
    if missing:
        raise FileNotFoundError(f"{sdist}: no BIG-bench task.json for {', '.join(missing)}")


def task_manager(task: str, include_paths: list[str | Path]):
    """An lm-eval TaskManager that can load `task`, indexing lm-eval's own ~14,000 task YAMLs
    (about 10 s) only when `task` is not one of ours."""
    from lm_eval.tasks import TaskManager

    include = [str(Path(p).resolve()) for p in include_paths]
    ours = set().union(*(_scan(Path(p)) for p in include))
    return TaskManager(include_path=include, include_defaults=task not in ours)

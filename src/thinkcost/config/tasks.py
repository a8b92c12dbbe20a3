"""Which lm-eval tasks exist, and BIG-Bench Hard task data from the repository's copy.

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


# --------------------------------------------------------------------------- BIG-Bench Hard

# `(A) option text`, one per line after "Options:"; navigate lists `- Yes` and `- No`.
_LABELLED_OPTION = re.compile(r"^(\([A-Z]\)) (.*)$")
_LISTED_OPTION = re.compile(r"^- (.*)$")


def bbh_task_file(bbh_dir: str | Path, task: str) -> Path:
    """A BBH task's questions: `<bbh_dir>/tasks/<task>.json`, as BIG-Bench Hard ships them."""
    return Path(bbh_dir) / "tasks" / f"{task}.json"


def bbh_prompt_file(bbh_dir: str | Path, task: str) -> Path:
    """A BBH task's 3-shot chain-of-thought exemplars: `<bbh_dir>/cot-prompts/<task>.txt`."""
    return Path(bbh_dir) / "cot-prompts" / f"{task}.txt"


def bbh_task_problem(bbh_dir: str | Path, task: str) -> str | None:
    """Why `task` cannot be read from `bbh_dir`, or None; before any job runs."""
    path = bbh_task_file(bbh_dir, task)
    if path.is_file():
        return None
    available = sorted(p.stem for p in (Path(bbh_dir) / "tasks").glob("*.json"))
    close = difflib.get_close_matches(task, available, n=3, cutoff=0.6)
    hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
    listed = f"; it has {', '.join(available)}" if available and not close else ""
    return f"{str(path)!r} does not exist{hint}{listed}"


def bbh_choice_problem(bbh_dir: str | Path, task: str) -> str | None:
    """Why `task` is not a multiple-choice task we can stage (its first question lists no
    options: a free-form task), or None."""
    examples = json.loads(bbh_task_file(bbh_dir, task).read_text()).get("examples") or []
    if examples and not bbh_options(examples[0]["input"])[0]:
        return (
            f"BBH task {task!r} is free-form (its questions list no options); run it as "
            f"lm-eval's own bbh_cot_fewshot_{task} or bbh_zeroshot_{task}, without data"
        )
    return None


def bbh_options(question: str) -> tuple[list[str], list[str]]:
    """The option labels and texts written in a BBH question after its "Options:" line:
    `(A) 12/25/1937` gives label `(A)` and text `12/25/1937`; navigate's `- Yes` is its own
    label. A question without options (a free-form task) gives two empty lists."""
    _, found, options = question.rpartition("\nOptions:\n")
    if not found:
        return [], []
    labels, texts = [], []
    for line in options.splitlines():
        if labelled := _LABELLED_OPTION.match(line):
            labels.append(labelled.group(1))
            texts.append(labelled.group(2).strip())
        elif listed := _LISTED_OPTION.match(line):
            labels.append(listed.group(1).strip())
            texts.append(listed.group(1).strip())
        else:
            raise ValueError(f"an option line neither '(A) …' nor '- …': {line!r}")
    return labels, texts


def bbh_rows(task_json: dict, task: str) -> list[dict]:
    """Multiple-choice rows from a BBH task file: the question as BBH writes it (options
    included), the option labels and texts, and the gold option's index."""
    rows = []
    for i, example in enumerate(task_json["examples"]):
        labels, texts = bbh_options(example["input"])
        target = example["target"].strip()
        if not labels:
            raise ValueError(f"BBH {task}: question {i} lists no options (not multiple choice)")
        if target not in labels:
            raise ValueError(f"BBH {task}: question {i}'s target {target!r} is not in {labels}")
        rows.append(
            {
                "id": i,
                "input": example["input"].strip(),
                "labels": labels,
                "texts": texts,
                "gold": labels.index(target),
            }
        )
    return rows


def bbh_exemplars(prompt_text: str) -> tuple[str, list[dict]]:
    """The task description and the worked examples of a BBH cot-prompts file (a canary line,
    `-----`, the description, then `Q: …` / `A: Let's think step by step. …` blocks)."""
    body = prompt_text.split("-----\n", 1)[-1].strip()
    description, *blocks = re.split(r"\n\n(?=Q: )", body)
    exemplars = []
    for block in blocks:
        question, found, answer = block.removeprefix("Q: ").partition("\nA: ")
        if not found:
            raise ValueError(f"a BBH exemplar without an 'A: ' line: {block[:80]!r}")
        exemplars.append({"input": question.strip(), "rationale": answer.strip()})
    return description.strip(), exemplars


def _answered_label(rationale: str, labels: list[str]) -> int:
    """The option an exemplar's rationale ends on ("… So the answer is (A).")."""
    answer = rationale.rpartition("the answer is ")[2].strip().rstrip(".")
    if answer not in labels:
        raise ValueError(f"a BBH exemplar's answer {answer!r} is not one of {labels}")
    return labels.index(answer)


def _write_jsonl(rows: list[dict], output: Path) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_suffix(".tmp")
    with tmp.open("w") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")
    tmp.replace(output)


def stage_bbh_task(bbh_dir: str | Path, task: str, questions: Path, exemplars: Path) -> None:
    """One BBH task as two JSONL files for lm-eval: its questions (test split) and its 3-shot
    chain-of-thought exemplars (fewshot split), each row carrying the task description."""
    description, shots = bbh_exemplars(bbh_prompt_file(bbh_dir, task).read_text())
    rows = bbh_rows(json.loads(bbh_task_file(bbh_dir, task).read_text()), task)
    worked = []
    for i, shot in enumerate(shots):
        labels, texts = bbh_options(shot["input"])
        gold = _answered_label(shot["rationale"], labels)
        worked.append(
            {
                "id": i,
                "input": shot["input"],
                "labels": labels,
                "texts": texts,
                "gold": gold,
                "rationale": shot["rationale"],
            }
        )
    # Both splits have the same columns: lm-eval loads them as one dataset.
    _write_jsonl(
        [{**row, "rationale": "", "description": description} for row in rows], Path(questions)
    )
    _write_jsonl([{**shot, "description": description} for shot in worked], Path(exemplars))


def task_manager(task: str, include_paths: list[str | Path]):
    """An lm-eval TaskManager that can load `task`, indexing lm-eval's own ~14,000 task YAMLs
    (about 10 s) only when `task` is not one of ours."""
    from lm_eval.tasks import TaskManager

    include = [str(Path(p).resolve()) for p in include_paths]
    ours = set().union(*(_scan(Path(p)) for p in include))
    return TaskManager(include_path=include, include_defaults=task not in ours)

"""A cell's output files, written atomically: each goes to a temporary name and is renamed into
place, the results JSON last, so that its presence means the cell is complete."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

OUTPUT_NAMES = ("results.json", "samples.jsonl", "requests.jsonl", "cost.json")


class CellOutputs(NamedTuple):
    """Where a cell's four outputs go, in the order of OUTPUT_NAMES."""

    results: Path
    samples: Path
    requests: Path
    cost: Path

    @classmethod
    def in_directory(cls, directory: str | Path) -> CellOutputs:
        return cls(*(Path(directory) / name for name in OUTPUT_NAMES))

    @property
    def checkpoint(self) -> Path:
        """Beside the outputs, undeclared, so that Snakemake keeps it when an attempt fails."""
        return self.results.with_name("checkpoint.jsonl")

    @property
    def unscored(self) -> Path:
        """Where the outputs of a run without its metric are kept, beside the cell, where
        Snakemake does not delete them."""
        return self.results.parent / "unscored"


def _json_default(value: Any) -> Any:
    from lm_eval.utils import handle_non_serializable

    return handle_non_serializable(value)


def write_json(path: Path, payload: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=_json_default, ensure_ascii=False) + "\n")
    tmp.replace(path)


def write_jsonl(path: Path, rows: list[dict]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w") as handle:
        for row in rows:
            handle.write(json.dumps(row, default=_json_default, ensure_ascii=False) + "\n")
    tmp.replace(path)


def write_outputs(
    outputs: CellOutputs, output: dict, samples: list[dict], costs: list, record: dict
) -> None:
    """A cell's four outputs: lm-eval's results, its samples, the request costs and the cost
    record."""
    for path in outputs:
        path.parent.mkdir(parents=True, exist_ok=True)
    write_jsonl(outputs.samples, samples)
    write_jsonl(outputs.requests, [c.to_dict() for c in costs])
    write_json(outputs.cost, record)
    write_json(outputs.results, output)  # last: its presence means the cell is complete

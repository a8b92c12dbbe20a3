"""What an interrupted evaluation already finished, so that a retried job does not redo it.

A SLURM job preempted after nine hours of a ten-hour cell should not start from zero. The
backend appends one JSON line per finished question (its generations, scores and token counts)
and flushes it to disk; a later attempt with the same settings reads them back and runs only the
rest. The first line records the settings: a file written under other settings is ignored.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)


class Checkpoint:
    """Records by key, kept in memory and, with a path, appended to a JSONL file."""

    def __init__(self, path: str | os.PathLike | None, signature: dict) -> None:
        self.path = Path(path) if path else None
        # As it reads back from the file (tuples become lists), so that it compares equal.
        self.signature = signature = json.loads(json.dumps(signature))
        self.records: dict[str, dict] = {}
        if self.path is None:
            return
        if self.path.exists():
            self._load()
        if not self.records:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(json.dumps({"signature": signature}) + "\n")

    def _load(self) -> None:
        content = self.path.read_bytes()
        lines = content.split(b"\n")
        try:
            header = json.loads(lines[0]) if len(lines) > 1 else {}
        except json.JSONDecodeError:
            header = {}
        if header.get("signature") != self.signature:
            log.warning("%s was written under other settings; starting afresh", self.path)
            return
        kept = len(lines[0]) + 1  # bytes of complete, readable lines
        # The last element is what follows the last newline: empty, or a line a kill cut short.
        for line in lines[1:-1]:
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                break  # the line being written when the job was killed
            self.records[entry["key"]] = entry["record"]
            kept += len(line) + 1
        if kept < len(content):
            # Appending after a torn line would glue the next record onto it, and every later
            # attempt would stop reading there: cut the file back to its last complete line.
            log.warning("%s: dropping %d bytes of a line cut short", self.path, len(content) - kept)
            partial = self.path.with_name(self.path.name + ".tmp")
            partial.write_bytes(content[:kept])
            os.replace(partial, self.path)
        log.info("%s: resuming after %d finished requests", self.path, len(self.records))

    @staticmethod
    def key(*parts: str) -> str:
        return hashlib.sha256("\x00".join(parts).encode()).hexdigest()

    def get(self, key: str) -> dict | None:
        return self.records.get(key)

    def put(self, key: str, record: dict) -> None:
        self.records[key] = record
        if self.path is not None:
            with self.path.open("a") as handle:
                handle.write(json.dumps({"key": key, "record": record}) + "\n")
                handle.flush()
                os.fsync(handle.fileno())

    def remove(self) -> None:
        if self.path is not None:
            self.path.unlink(missing_ok=True)

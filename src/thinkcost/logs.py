"""Send a Snakemake job's logging, warnings and stray prints to its `log:` file."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def log_to(path: str | Path) -> Iterator[None]:
    """Route logging (INFO and up), stdout and stderr into `path` for the duration.

    lm-eval, transformers and pip write progress to stderr; a job's log file should hold all
    of it so that a failed cell can be diagnosed from its log alone. The exception that ends a
    failed job is logged before it propagates to Snakemake.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with (
        path.open("a") as handle,
        contextlib.redirect_stdout(handle),
        contextlib.redirect_stderr(handle),
    ):
        handler = logging.StreamHandler(handle)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        try:
            yield
        except BaseException:
            logging.getLogger("thinkcost").exception("job failed")
            raise
        finally:
            root.removeHandler(handler)
            sys.stderr.flush()

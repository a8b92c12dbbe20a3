"""Engines: one loaded model and its token-level primitives (see `engines.base`).

A new engine is one new module with a subclass of `Engine`, named in `ENGINES`.
"""

from __future__ import annotations

import importlib.util

from thinkcost.engines.base import (
    Engine,
    EngineCounters,
    Generation,
    GenerationRequest,
    SamplingSpec,
    ScoreRequest,
)

ENGINES = ("hf", "vllm")


def load_engine(name: str, pretrained: str, **options) -> Engine:
    """Load `pretrained` into the engine called `name`, configured by its own options."""
    if name == "hf":
        from thinkcost.engines.hf import HFEngine

        return HFEngine(pretrained, **options)
    if name == "vllm":
        if importlib.util.find_spec("vllm") is None:
            raise ImportError(
                "engine 'vllm' needs vLLM, which is not installed: `make install-vllm` (the CPU "
                "build, into .venv) or envs/vllm.yaml (CUDA, for clusters)"
            )
        from thinkcost.engines.vllm import VLLMEngine

        return VLLMEngine(pretrained, **options)
    raise ValueError(f"unknown engine {name!r}; choose one of {', '.join(ENGINES)}")


__all__ = [
    "ENGINES",
    "Engine",
    "EngineCounters",
    "Generation",
    "GenerationRequest",
    "SamplingSpec",
    "ScoreRequest",
    "load_engine",
]

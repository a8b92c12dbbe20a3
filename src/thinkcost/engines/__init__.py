"""Engines: one loaded model and its token-level primitives (see `engines.base`).

A new engine is one new module with a subclass of `Engine`, named in `ENGINES`.
"""

from __future__ import annotations

from thinkcost.engines.base import (
    Engine,
    EngineCounters,
    Generation,
    GenerationRequest,
    SamplingSpec,
    ScoreRequest,
)

ENGINES = ("hf",)


def load_engine(name: str, pretrained: str, **options) -> Engine:
    """Load `pretrained` into the engine called `name`, configured by its own options."""
    if name == "hf":
        from thinkcost.engines.hf import HFEngine

        return HFEngine(pretrained, **options)
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

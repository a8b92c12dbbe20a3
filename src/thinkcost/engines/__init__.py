"""Engines: one loaded model and its token-level primitives (`engines.base`), and their registry.

A new engine is one module and one line in `ENGINES`. The module holds the engine (a subclass of
`Engine`) and its `EngineProfile`: what the workflow must know of it before a job loads it (the
knobs it refuses, the backend arguments it takes, its conda environment and GPUs).

The registry names profiles rather than importing engine modules: the config checks and
Snakemake's input functions ask it while the workflow is parsed, so an engine's framework (torch,
vLLM) is imported only when `load_engine` loads one.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import math
from collections.abc import Mapping
from types import MappingProxyType

from thinkcost.engines.base import (
    Engine,
    EngineCounters,
    Generation,
    GenerationRequest,
    SamplingSpec,
    ScoreRequest,
)


class EngineProfile:
    """An engine as the workflow sees it before a job loads it.

    The defaults are those of an engine that runs in the evaluation environment, takes the
    backend's drafting arguments as they are and needs no settings of its own: the hf engine's.
    An engine that differs subclasses this in its own module, beside the engine.
    """

    #: The engine class, "module:Class", imported only when a job loads the engine.
    engine = "thinkcost.engines.hf:HFEngine"
    #: A package the engine imports that the environment may lack (None: always there) and what
    #: to do about it, in words.
    requires: str | None = None
    install_hint = ""
    #: The conda environment of its evaluation jobs (--sdm conda), relative to rules/.
    conda_env = "../envs/evaluate.yaml"
    #: Knobs of an optimization the engine cannot honour, each with the reason.
    refused_knobs: Mapping[str, str] = MappingProxyType({})

    def gpus(self, params: float, evaluation: dict) -> int:
        """GPUs for a model held in 16-bit with room for activations: one up to ~30B parameters."""
        return max(1, math.ceil(params * 2 * 1.3 / 70e9))

    def drafting_arguments(self, assistant: dict, assistant_dir: str | None) -> dict:
        """The backend's arguments for an optimization's `assistant`: prompt lookup's n-gram
        length, or the assistant model and the tokens it drafts a step."""
        if "prompt_lookup_num_tokens" in assistant:
            return {"draft_tokens": assistant["prompt_lookup_num_tokens"]}
        if assistant_dir:
            return {"assistant": assistant_dir, "draft_tokens": assistant["num_assistant_tokens"]}
        return {}

    def options(self, evaluation: dict) -> dict:
        """The engine's own settings from the config's `evaluation` section: none."""
        return {}

    def load(self, name: str, pretrained: str, **options) -> Engine:
        """Import the engine's module and load `pretrained` into it."""
        if self.requires and importlib.util.find_spec(self.requires) is None:
            raise ImportError(f"engine {name!r} {self.install_hint}")
        module, _, cls = self.engine.partition(":")
        return getattr(importlib.import_module(module), cls)(pretrained, **options)


# Engine name → its profile, "module:attribute"; a module is imported when its engine is asked for.
ENGINES = {
    "hf": "thinkcost.engines:EngineProfile",
    "vllm": "thinkcost.engines.vllm:VLLMProfile",
}


def engine_profile(name: str) -> EngineProfile:
    """The registered engine called `name`, without loading it."""
    if name not in ENGINES:
        raise ValueError(f"unknown engine {name!r}; choose one of {', '.join(ENGINES)}")
    module, _, attribute = ENGINES[name].partition(":")
    return getattr(importlib.import_module(module), attribute)()


@functools.cache  # asked once per job while planning: find_spec and torch's answer are fixed
def auto_engine(device: str) -> str:
    """`engine: auto`: vllm where it is installed and the jobs' device is a GPU, hf otherwise.

    vLLM is built for GPUs (a paged cache, its own kernels, large batches); on this project's
    2-core CPU it was 1.2-1.4x as fast as the hf engine on the hybrid format (README,
    "Engines"), but the hf engine needs no second install and has every runtime knob.
    `device` is `evaluation.device`: `auto` asks torch whether this machine has a GPU.
    """
    if importlib.util.find_spec("vllm") is None:
        return "hf"  # without importing torch: the common case costs nothing
    if device == "auto":
        import torch

        return "vllm" if torch.cuda.is_available() else "hf"
    return "vllm" if device.startswith("cuda") else "hf"


def load_engine(name: str, pretrained: str, **options) -> Engine:
    """Load `pretrained` into the engine called `name`, configured by its own options."""
    return engine_profile(name).load(name, pretrained, **options)


__all__ = [
    "ENGINES",
    "Engine",
    "EngineCounters",
    "EngineProfile",
    "Generation",
    "GenerationRequest",
    "SamplingSpec",
    "ScoreRequest",
    "auto_engine",
    "engine_profile",
    "load_engine",
]

"""Runtime settings of a loaded model: precision, quantization, compilation, and what it holds.

Each changes seconds (sometimes accuracy), not the paper's FLOPs, and each is a knob of an
optimization (config/schema.yaml), so a study puts a faster runtime on the same cost map as
chain of thought. Everything here is real, not simulated: int8 weights are stored as int8, and
the compiled forward is the one the engine calls (`CompiledForward` counts its calls).
"""

from __future__ import annotations

import time

import torch

QUANTIZATIONS = ("int8", "int4")


class RuntimeSettingError(ValueError):
    """A dtype or quantization the device cannot run: raised before the model loads."""


def check_dtype(device: torch.device, dtype: str) -> None:
    """Refuse, before any weight is read, a dtype the device cannot compute in."""
    if dtype in ("auto", "float32"):
        return
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeSettingError(f"device {device} asked for, but torch sees no GPU")
        if dtype == "bfloat16" and not torch.cuda.is_bf16_supported():
            name = torch.cuda.get_device_name(device)
            raise RuntimeSettingError(
                f"{name} does not support bfloat16 (compute capability below 8.0); use "
                "dtype: float16 or float32"
            )
        return
    # Elsewhere, ask the device: one small matmul in the dtype.
    try:
        probe = torch.ones(4, 4, dtype=getattr(torch, dtype), device=device)
        (probe @ probe).sum().item()
    except (RuntimeError, TypeError) as error:
        raise RuntimeSettingError(
            f"device {device} cannot compute in {dtype} ({error}); use float32"
        ) from error


def quantization_load_options(quantization: str | None, device: torch.device) -> dict:
    """from_pretrained options for a GPU quantization (bitsandbytes); none on a CPU, where the
    model is quantized after loading (`quantize_on_cpu`)."""
    if quantization is None:
        return {}
    if quantization not in QUANTIZATIONS:
        raise RuntimeSettingError(
            f"quantization must be one of {', '.join(QUANTIZATIONS)}, not {quantization!r}"
        )
    if device.type == "cpu":
        if quantization != "int8":
            raise RuntimeSettingError(
                "on a CPU only int8 (torch's dynamic quantization of the linear layers) is "
                "available; int4 needs a GPU with bitsandbytes"
            )
        return {}
    try:
        import bitsandbytes  # noqa: F401
        from transformers import BitsAndBytesConfig
    except ImportError as error:
        raise RuntimeSettingError(
            f"quantization {quantization} on {device} needs bitsandbytes, which is not "
            "installed (pip install bitsandbytes)"
        ) from error
    if quantization == "int8":
        return {"quantization_config": BitsAndBytesConfig(load_in_8bit=True)}
    return {"quantization_config": BitsAndBytesConfig(load_in_4bit=True)}


def quantize_on_cpu(model: torch.nn.Module) -> torch.nn.Module:
    """int8 dynamic quantization of every linear layer (torch's own): weights stored as int8
    with a scale per output channel, activations quantized on the fly."""
    # In place: a copy would hold the float weights and the int8 ones at once while loading.
    return torch.ao.quantization.quantize_dynamic(
        model, {torch.nn.Linear}, dtype=torch.qint8, inplace=True
    )


def memory_footprint(model: torch.nn.Module) -> int:
    """Bytes the model's weights and buffers take, as stored (int8 weights count one byte)."""
    seen: set[int] = set()

    def size(value) -> int:
        if isinstance(value, torch.Tensor):
            # Keyed on the tensor's own memory (no temporary copy, whose address the next one
            # could reuse): tied weights (the embedding and the output layer) count once.
            key = value.data_ptr()
            if key in seen:
                return 0
            seen.add(key)
            if value.is_quantized:  # int8 storage: one byte a weight, plus its scales
                return value.numel() * value.element_size()
            return value.untyped_storage().nbytes()
        if isinstance(value, (tuple, list)):
            return sum(size(v) for v in value)
        if hasattr(value, "__getstate__") and type(value).__name__.endswith("PackedParams"):
            return size(value.__getstate__())
        return 0

    return sum(size(value) for value in model.state_dict().values())


class CompiledForward:
    """`torch.compile` of a model's forward, in the place the engine calls, counting its calls
    and the seconds of the calls that compiled a graph (the warm-up) apart from the rest."""

    def __init__(self, forward) -> None:
        self._compiled = torch.compile(forward, dynamic=True)
        self.calls = 0
        self.warmup_seconds = 0.0
        self.graphs = 0

    def __call__(self, *args, **kwargs):
        from torch._dynamo.utils import counters

        before = counters["stats"]["unique_graphs"]
        started = time.perf_counter()
        output = self._compiled(*args, **kwargs)
        self.calls += 1
        compiled = counters["stats"]["unique_graphs"] - before
        if compiled:
            self.graphs += compiled
            self.warmup_seconds += time.perf_counter() - started
        return output


def record(
    model: torch.nn.Module, quantization: str | None, compiled: CompiledForward | None
) -> dict:
    """What the cost record keeps of the runtime: the weights' resident bytes, the
    quantization, and for a compiled forward its calls, graphs and warm-up seconds."""
    kept = {
        "model_memory_bytes": memory_footprint(model),
        "dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
        "quantization": quantization,
    }
    if compiled is not None:
        kept.update(
            compiled_calls=compiled.calls,
            compiled_graphs=compiled.graphs,
            compile_warmup_seconds=compiled.warmup_seconds,
        )
    return kept

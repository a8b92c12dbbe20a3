"""Loading for the hf engine: tokenizer and model in their dtype, quantization and attention,
and a draft model that shares the model's tokenizer."""

from __future__ import annotations

import torch

from thinkcost.engines.hf import runtime
from thinkcost.engines.hf.attention import use_gqa_attention_on_cpu


def load_model(
    pretrained: str,
    device: torch.device,
    dtype: str,
    attn_implementation: str | None,
    quantization: str | None,
    trust_remote_code: bool,
):
    """The tokenizer and the model, in eval mode on `device`, quantized if asked."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    # A precision or quantization the device cannot run fails here, before any weight loads.
    runtime.check_dtype(device, dtype)
    quantized_load = runtime.quantization_load_options(quantization, device)
    tokenizer = AutoTokenizer.from_pretrained(pretrained, trust_remote_code=trust_remote_code)
    kwargs = {"dtype": getattr(torch, dtype) if dtype != "auto" else "auto"}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    if quantized_load:  # bitsandbytes places the weights itself
        kwargs.update(quantized_load, device_map=str(device))
    model = AutoModelForCausalLM.from_pretrained(
        pretrained, trust_remote_code=trust_remote_code, **kwargs
    )
    model = (model if quantized_load else model.to(device)).eval()
    use_gqa_attention_on_cpu(model, device)
    if quantization and not quantized_load:
        model = runtime.quantize_on_cpu(model)
    return tokenizer, model


def load_assistant(
    assistant: str, pretrained: str, tokenizer, model, device: torch.device, trust_remote_code: bool
):
    """The draft model `assistant`, in the model's dtype; refused unless its vocabulary covers
    the model's tokenizer."""
    from transformers import AutoModelForCausalLM

    loaded = (
        AutoModelForCausalLM.from_pretrained(
            assistant, trust_remote_code=trust_remote_code, dtype=model.dtype
        )
        .to(device)
        .eval()
    )
    ours, theirs = len(tokenizer), loaded.config.get_text_config().vocab_size
    if theirs < ours:
        raise ValueError(
            f"assistant {assistant} has a vocabulary of {theirs} tokens, the model "
            f"{pretrained} {ours}: a draft model must share the model's tokenizer"
        )
    return loaded

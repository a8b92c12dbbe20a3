"""Attention for the hf engine on a CPU: grouped-query attention left to torch's kernel.

transformers' sdpa attention copies each key/value head to its query heads whenever there is a
mask (transformers 5.19), and the engine's batches always carry one. Registered here is sdpa with
that copy left to torch's CPU kernel instead, mask and all: 11 % of the decode time of 2 × 24 CoT
questions here, bit for bit the same attention.
"""

from __future__ import annotations

import functools

import torch


@functools.cache
def gqa_sdpa_attention() -> str:
    """The name of transformers' sdpa attention with grouped-query attention left to torch's
    kernel even under a mask (registered once, with sdpa's mask)."""
    from transformers import AttentionInterface
    from transformers.integrations.sdpa_attention import sdpa_attention_forward
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    def attention(module, query, key, value, attention_mask, dropout=0.0, scaling=None, **kwargs):
        if (
            attention_mask is None
            or getattr(module, "num_key_value_groups", 1) == 1
            or kwargs.get("position_bias") is not None
            or kwargs.get("cache") is not None
        ):
            return sdpa_attention_forward(
                module, query, key, value, attention_mask, dropout, scaling, **kwargs
            )
        # What sdpa_attention_forward computes under a mask (not causal: the mask says it),
        # without repeat_kv's copies: torch's kernel reads each key/value head per group.
        output = torch.nn.functional.scaled_dot_product_attention(
            query,
            key,
            value,
            attn_mask=attention_mask,
            dropout_p=dropout,
            scale=scaling,
            is_causal=False,
            enable_gqa=True,
        )
        return output.transpose(1, 2).contiguous(), None

    name = "thinkcost_sdpa_gqa"
    AttentionInterface.register(name, attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(name, sdpa_mask)
    return name


def use_gqa_attention_on_cpu(model, device: torch.device) -> None:
    """Switch `model` (this model only, not every model in the process) to `gqa_sdpa_attention`
    where it runs sdpa on a CPU. On CUDA a mask would send that path to the slow math kernel."""
    if device.type == "cpu" and model.config._attn_implementation == "sdpa":
        model.set_attn_implementation(gqa_sdpa_attention())

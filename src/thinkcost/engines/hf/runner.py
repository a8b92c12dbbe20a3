"""The hf engine's forward passes: new tokens after cached prefixes, decode steps, next tokens.

Every pass goes through `ModelRunner`, which counts it (`forward_passes`, `forward_tokens`) and
refuses a batch wider than a sliding attention window.
"""

from __future__ import annotations

import torch

from thinkcost.engines.base import EngineCounters, SamplingSpec
from thinkcost.engines.hf.batch import Batch, Row, pad_left
from thinkcost.engines.hf.prefix_cache import Prefix


def sliding_window(model) -> int | None:
    """The model's sliding attention window in tokens, if any of its layers has one."""
    text_config = model.config.get_text_config()
    if "sliding_attention" in (getattr(text_config, "layer_types", None) or []) or getattr(
        text_config, "use_sliding_window", False
    ):
        return getattr(text_config, "sliding_window", None)
    return None


class ModelRunner:
    """Runs one model over batches of rows, each row's tokens after its own cached ones."""

    def __init__(self, model, device: torch.device, pad_id: int, counters: EngineCounters) -> None:
        self.model, self.device, self.pad_id, self.counters = model, device, pad_id, counters
        # The batch layout puts masked columns between a row's tokens, so a sliding window
        # measured in columns would not be one in tokens: refuse sequences that reach it.
        self.sliding_window = sliding_window(model)

    @torch.no_grad()
    def extend(
        self, rows: list[tuple[Prefix | None, int, list[int]]], align: str, logits_to_keep: int
    ) -> tuple[torch.Tensor, Batch]:
        """Run each row's new tokens after the first `r` tokens of its cached prefix.

        `align="left"` pads the new tokens on the left, so every row's last token is in the
        last column (the logits of the next token, for generation); `"right"` pads on the
        right, so row i's new tokens sit at columns R … R+len−1 (for scoring them).
        """
        width_prefix = max(r for _, r, _ in rows)
        width_new = max(len(new) for _, _, new in rows)
        batch = len(rows)
        mask = torch.zeros(batch, width_prefix + width_new, dtype=torch.long)
        input_ids = torch.full((batch, width_new), self.pad_id, dtype=torch.long)
        positions = torch.zeros(batch, width_new, dtype=torch.long)
        for i, (_, r, new) in enumerate(rows):
            mask[i, width_prefix - r : width_prefix] = 1
            start = width_new - len(new) if align == "left" else 0
            input_ids[i, start : start + len(new)] = torch.tensor(new)
            mask[i, width_prefix + start : width_prefix + start + len(new)] = 1
            positions[i, start : start + len(new)] = torch.arange(r, r + len(new))
        self.check_window(mask.shape[1])
        mask = mask.to(self.device)
        output = self.model(
            input_ids=input_ids.to(self.device),
            attention_mask=mask,
            position_ids=positions.to(self.device),
            past_key_values=self._prefix_cache(rows, width_prefix),
            use_cache=True,
            logits_to_keep=logits_to_keep,
        )
        self.counters.forward_passes += 1
        self.counters.forward_tokens += sum(len(new) for _, _, new in rows)
        kv = [(layer.keys, layer.values) for layer in output.past_key_values.layers]
        next_positions = torch.tensor([r + len(new) for _, r, new in rows], device=self.device)
        return output.logits, Batch(kv, mask, next_positions, [])

    @staticmethod
    def _prefix_cache(rows: list[tuple[Prefix | None, int, list[int]]], width: int):
        """transformers' cache of the rows' first `r` cached tokens, left-padded to `width`."""
        from transformers import DynamicCache

        if not width:
            return DynamicCache()
        # A row with nothing cached takes an all-padding prefix shaped like another's.
        reference = next(prefix for prefix, r, _ in rows if r)
        kv = []
        for layer in range(len(reference.kv)):
            keys, values = [], []
            for prefix, r, _ in rows:
                k, v = (prefix if r else reference).kv[layer]
                keys.append(pad_left(k[:, :r], width, 1))
                values.append(pad_left(v[:, :r], width, 1))
            kv.append((torch.stack(keys), torch.stack(values)))
        return DynamicCache(ddp_cache_data=kv)

    def check_window(self, columns: int) -> None:
        if self.sliding_window and columns > self.sliding_window:
            raise ValueError(
                f"a batch of {columns} columns reaches the model's sliding attention window "
                f"({self.sliding_window} tokens), which the hf engine does not support; "
                "lower max_new_tokens or batch_size, or use lm-eval's hf model"
            )

    @torch.no_grad()
    def decode_step(self, batch: Batch, tokens: torch.Tensor, fed: torch.Tensor) -> torch.Tensor:
        """Run `tokens` [rows, width] after each row's cache (`fed` marks the real ones); the
        logits of every position. The batch's cache, mask and positions take the new columns."""
        width = tokens.shape[1]
        mask = torch.cat([batch.mask, fed.to(batch.mask)], dim=1)
        self.check_window(mask.shape[1])
        positions = batch.positions[:, None] + torch.arange(width, device=self.device)
        output = self.model(
            input_ids=tokens,
            attention_mask=mask,
            position_ids=positions,
            past_key_values=batch.cache,
            use_cache=True,
        )
        self.counters.forward_passes += 1
        self.counters.forward_tokens += int(fed.sum())
        batch.kv = [(layer.keys, layer.values) for layer in batch.cache.layers]
        batch.mask = mask
        return output.logits


def choose(logits: torch.Tensor, rows: list[Row], spec: SamplingSpec) -> list[int]:
    """Each row's next token, greedy or sampled (each row from its own generator); its
    log-probability under the model itself (temperature 1) goes to the row's `logprobs`.

    One batched draw for all rows, and one read of the results back to the host: the step's
    host work must not grow with the rows (issue 24)."""
    logits = logits.float()
    if not spec.do_sample:
        chosen = logits.argmax(dim=-1)
    else:
        warped = logits / spec.temperature
        if spec.top_p < 1.0:
            from transformers import TopPLogitsWarper

            warped = TopPLogitsWarper(spec.top_p)(None, warped)
        # Inverse-CDF sampling: one uniform number per row, from the row's own generator (its
        # samples do not depend on the batch it is in), and one batched search. A per-row
        # multinomial drew a number per vocabulary entry: 1 ms a row on a 49k vocabulary.
        cdf = warped.softmax(dim=-1).double().cumsum(dim=-1)
        uniform = torch.tensor(
            [float(torch.rand((), generator=row.generator, dtype=torch.float64)) for row in rows],
            dtype=torch.float64,
        ).to(cdf.device)
        # right=True: the first entry whose cumulative mass exceeds u, never a token of mass 0
        drawn = torch.searchsorted(cdf, (uniform * cdf[:, -1])[:, None], right=True)[:, 0]
        chosen = drawn.clamp_max(cdf.shape[-1] - 1)
    # log softmax at the chosen token, without writing the whole log-softmax out
    picked = logits.gather(1, chosen[:, None])[:, 0] - torch.logsumexp(logits, dim=-1)
    tokens, values = torch.stack([chosen.double(), picked.double()]).tolist()
    for row, value in zip(rows, values, strict=True):
        row.logprobs.append(value)
    return [int(token) for token in tokens]

"""The hf engine's batch layout: rows that decode together over one preallocated key/value cache.

A batch is a list of per-layer key/value tensors plus a 0/1 mask over their columns. A row's
tokens are the columns its mask marks, in order; pads (and holes left where rows joined or
prefixes differ in length) are masked out, and every token's position id is given explicitly,
so the arithmetic per token is that of the row computed alone.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import torch

KV = list[tuple[torch.Tensor, torch.Tensor]]  # per layer: keys, values [batch, heads, seq, dim]


@functools.cache
def _roomy_layer_class():
    from transformers.cache_utils import DynamicLayer

    class RoomyLayer(DynamicLayer):
        """Keys and values in a buffer with room to grow, for transformers' cache.

        transformers' DynamicLayer appends a token by concatenating, which copies the whole
        cache every decode step: 45 % of a step's time at batch 16 and 300 tokens, measured.
        Here a step writes its column in place and attention reads a view of the filled part.
        """

        def __init__(self, keys: torch.Tensor, values: torch.Tensor, room: int) -> None:
            super().__init__()
            batch, heads, length, dim = keys.shape
            self._keys = keys.new_empty(batch, heads, length + room, dim)
            self._values = values.new_empty(batch, heads, length + room, dim)
            self._keys[:, :, :length] = keys
            self._values[:, :, :length] = values
            self.length = length
            self.is_initialized = True
            self.dtype, self.device = keys.dtype, keys.device
            self._view()

        def _view(self) -> None:
            self.keys = self._keys[:, :, : self.length]
            self.values = self._values[:, :, : self.length]

        def take(self, index: torch.Tensor) -> None:
            """Keep the batch rows `index`, room included."""
            self._keys = self._keys.index_select(0, index)
            self._values = self._values.index_select(0, index)
            self._view()

        def update(self, key_states, value_states, *args, **kwargs):
            new = key_states.shape[-2]
            if self.length + new > self._keys.shape[2]:  # out of room: grow by copying, rarely
                grown = RoomyLayer(self.keys, self.values, room=max(new, self.length))
                self._keys, self._values = grown._keys, grown._values
            self._keys[:, :, self.length : self.length + new] = key_states
            self._values[:, :, self.length : self.length + new] = value_states
            self.length += new
            self._view()
            return self.keys, self.values

    return RoomyLayer


def _roomy_cache(kv: KV, room: int):
    from transformers import DynamicCache

    layer = _roomy_layer_class()
    cache = DynamicCache()
    cache.layers = [layer(k, v, room) for k, v in kv]
    return cache


@dataclass
class Row:
    """One sequence being decoded."""

    request: int
    sample: int
    prompt: list[int]
    generator: torch.Generator | None
    generated: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)  # of each generated token
    added: int = 1  # tokens the last step appended
    assistant_tokens: int = 0  # what the draft model's passes processed for this row …
    assistant_pairs: int = 0  # … and Σ L·(L+1) over them (Generation says why)


@dataclass
class Batch:
    """Sequences that decode together: their cache, column mask and next position ids."""

    kv: KV
    mask: torch.Tensor  # [rows, columns], 1 where a column holds one of the row's tokens
    positions: torch.Tensor  # [rows]: the position id of each row's next token
    rows: list[Row]
    cache: object = None  # while decoding: the cache the model appends to, in place

    def select(self, keep: list[int], room: int) -> Batch:
        """The rows `keep`. Columns no remaining row uses are dropped once they are a quarter
        of the cache; until then the rows are taken from the cache's buffers in one copy."""
        index = torch.tensor(keep, device=self.mask.device)
        mask = self.mask[index]
        rows = [self.rows[i] for i in keep]
        columns = mask.any(dim=0)
        if self.cache is not None and int(columns.sum()) > 0.75 * len(columns):
            for layer in self.cache.layers:
                layer.take(index)
            kv = [(layer.keys, layer.values) for layer in self.cache.layers]
            return Batch(kv, mask, self.positions[index], rows, self.cache)
        kv = [(k[index][:, :, columns], v[index][:, :, columns]) for k, v in self.kv]
        return Batch(kv, mask[:, columns], self.positions[index], rows).decoding(room)

    def repeated(self, repeats: torch.Tensor, rows: list[Row]) -> Batch:
        """Row i `repeats[i]` times over (the k samples of one prompt share its prefill), with
        `rows` as the rows."""
        return Batch(
            kv=[
                (k.repeat_interleave(repeats, dim=0), v.repeat_interleave(repeats, dim=0))
                for k, v in self.kv
            ],
            mask=self.mask.repeat_interleave(repeats, dim=0),
            positions=self.positions.repeat_interleave(repeats, dim=0),
            rows=rows,
        )

    def decoding(self, room: int) -> Batch:
        """This batch with a cache that decode steps append to in place (room: steps ahead)."""
        self.cache = _roomy_cache(self.kv, room)
        self.kv = [(layer.keys, layer.values) for layer in self.cache.layers]
        return self


def pad_left(tensor: torch.Tensor, width: int, dim: int) -> torch.Tensor:
    """`tensor` widened to `width` along `dim` with zeros in front."""
    if tensor.shape[dim] == width:
        return tensor
    shape = list(tensor.shape)
    shape[dim] = width - tensor.shape[dim]
    return torch.cat([tensor.new_zeros(shape), tensor], dim=dim)


def merge(first: Batch | None, second: Batch) -> Batch:
    """One batch of both, the shorter cache padded (masked) on the left."""
    if first is None or not first.rows:
        return second
    width = max(first.mask.shape[1], second.mask.shape[1])
    kv = [
        (
            torch.cat([pad_left(k1, width, 2), pad_left(k2, width, 2)]),
            torch.cat([pad_left(v1, width, 2), pad_left(v2, width, 2)]),
        )
        for (k1, v1), (k2, v2) in zip(first.kv, second.kv, strict=True)
    ]
    mask = torch.cat([pad_left(first.mask, width, 1), pad_left(second.mask, width, 1)])
    positions = torch.cat([first.positions, second.positions])
    return Batch(kv, mask, positions, first.rows + second.rows)


def chunks(items: list, length, max_rows: int, max_tokens: int) -> list[list]:
    """Consecutive groups of at most `max_rows` items and about `max_tokens` tokens, padded to
    the longest (`length(item)`), each for one pass."""
    groups, current, widest = [], [], 0
    for item in items:
        widest_after = max(widest, length(item))
        if current and (len(current) >= max_rows or widest_after * (len(current) + 1) > max_tokens):
            groups.append(current)
            current, widest_after = [], length(item)
        current.append(item)
        widest = widest_after
    if current:
        groups.append(current)
    return groups

"""The hf engine's prefix cache: computed sequences' keys and values, found by shared prefix.

A finished sequence's keys and values are kept (within a memory budget, the least recently used
leaving first), so scoring the choices after "rationale + The answer is:" computes only the
tokens that are new, and prompts that share a few-shot block compute it once.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from thinkcost.engines.hf.batch import KV, Batch


@dataclass
class Prefix:
    """A computed sequence: its tokens and, per layer, its keys and values [heads, seq, dim]."""

    tokens: np.ndarray
    kv: KV

    @property
    def nbytes(self) -> int:
        return sum(k.numel() * k.element_size() * 2 for k, _ in self.kv)

    @classmethod
    def of_row(cls, batch: Batch, row: int, tokens: list[int]) -> Prefix:
        """Row `row` of `batch` (its masked columns dropped), whose tokens are `tokens`."""
        columns = batch.mask[row].bool()
        kv = [(k[row][:, columns].clone(), v[row][:, columns].clone()) for k, v in batch.kv]
        return cls(np.asarray(tokens, dtype=np.int64), kv)


class PrefixCache:
    """Prefixes kept within `budget` bytes (0: none kept)."""

    def __init__(self, budget: int) -> None:
        self.budget = int(budget)
        self._prefixes: OrderedDict[int, Prefix] = OrderedDict()
        self._bytes = 0

    @property
    def enabled(self) -> bool:
        return self.budget > 0

    def remember(self, prefix: Prefix) -> None:
        if not self.enabled:
            return
        self._prefixes[id(prefix)] = prefix
        self._bytes += prefix.nbytes
        while self._bytes > self.budget and len(self._prefixes) > 1:
            _, evicted = self._prefixes.popitem(last=False)
            self._bytes -= evicted.nbytes

    def longest(self, tokens: list[int], limit: int) -> tuple[Prefix | None, int]:
        """The cached sequence sharing the longest prefix with `tokens`, up to `limit` tokens."""
        query = np.asarray(tokens[:limit], dtype=np.int64)
        best, best_length = None, 0
        for prefix in self._prefixes.values():
            m = min(len(prefix.tokens), len(query))
            if m <= best_length:
                continue
            equal = prefix.tokens[:m] == query[:m]
            length = m if bool(equal.all()) else int(equal.argmin())
            if length > best_length:
                best, best_length = prefix, length
        if best is not None:
            self._prefixes.move_to_end(id(best))
        return best, best_length

    def clear(self) -> None:
        self._prefixes.clear()
        self._bytes = 0


def common_prefix(sequences: list[list[int]]) -> list[int]:
    """The longest prefix all of `sequences` share."""
    # The lexicographic least and greatest share exactly the prefix that all share.
    low, high = min(sequences), max(sequences)
    length = 0
    while length < min(len(low), len(high)) and low[length] == high[length]:
        length += 1
    return low[:length]

"""Stop strings, checked every decode step without decoding every row's text every step."""

from __future__ import annotations

from collections.abc import Callable, Sequence


class StopStrings:
    """Whether a row's newest tokens completed one of the stop strings.

    A stop string that is newly in a row's text ends inside the text of the tokens the last
    step added: one that ended earlier was found a step before. So a row's tail needs decoding
    only when an added token's own text holds the last character of a stop string, or a partial
    UTF-8 character ("\\ufffd": a byte-level token in the middle of a character). A token's text
    alone differs from its text in context only in leading spaces (SentencePiece's "▁"), so a
    stop string that ends in whitespace is checked every step. Which tokens may end a stop is
    learned once per token id, so the work per step is a set lookup per added token.
    """

    def __init__(self, stops: Sequence[str], detokenize: Callable[[list[int]], str]) -> None:
        self.stops = [stop for stop in stops if stop]
        self.detokenize = detokenize
        # A stop string of b UTF-8 bytes spans at most b tokens (a byte-level tokenizer may
        # give a character of three bytes three tokens), plus a partial one each side.
        self.window = max((len(stop.encode()) for stop in self.stops), default=0) + 2
        self._last = {stop[-1] for stop in self.stops}
        self._every_step = any(character.isspace() for character in self._last)
        self._may_end: dict[int, bool] = {}

    def _may_end_stop(self, token: int) -> bool:
        known = self._may_end.get(token)
        if known is None:
            text = self.detokenize([token])
            known = "\ufffd" in text or any(character in text for character in self._last)
            self._may_end[token] = known
        return known

    def completed(self, generated: list[int], added: int) -> bool:
        """Whether the text of `generated`, whose last `added` tokens are new, now holds a stop
        string that it did not hold before."""
        if not self.stops:
            return False
        if not self._every_step and not any(map(self._may_end_stop, generated[-added:])):
            return False
        tail = self.detokenize(generated[-(self.window + added - 1) :])
        return any(stop in tail for stop in self.stops)

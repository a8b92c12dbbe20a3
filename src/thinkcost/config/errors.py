"""The config's error, and the "is not defined (did you mean …?)" message every check shares."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class ConfigError(ValueError):
    """A configuration problem, with a message that names the key or file at fault."""


def check_defined(kind: str, name: str, defined: Iterable[str], where: str) -> None:
    defined = list(defined)
    if name not in defined:
        close = difflib.get_close_matches(name, defined, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(
            f"{where}: {kind} {name!r} is not defined{hint}; defined "
            f"{'families' if kind == 'family' else kind + 's'}: {', '.join(defined)}"
        )

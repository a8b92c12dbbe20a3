"""DataFrame plumbing the fits share: lookups by key, cells read as floats, typed empty tables."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from thinkcost.tables import finite_float

_COUNT_COLUMNS = frozenset({"n_models", "n_points", "n_flop_values", "residual_dof"})
_TEXT_COLUMNS = frozenset({"baseline", "status", "crossover_status", "crossover_status_seconds"})


def with_float_columns(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """Give value columns a numeric dtype even when the table is empty (object otherwise)."""
    for col in columns:
        if col in _TEXT_COLUMNS:
            continue
        frame[col] = frame[col].astype("int64" if col in _COUNT_COLUMNS else "float64")
    return frame


def unique_lookup(
    frame: pd.DataFrame, key_cols: Sequence[str], what: str
) -> dict[tuple, pd.Series]:
    """Map key tuples to rows, refusing duplicate keys (they would make the answer arbitrary)."""
    duplicated = frame.duplicated(subset=list(key_cols), keep=False)
    if duplicated.any():
        examples = frame.loc[duplicated, list(key_cols)].drop_duplicates().head(5)
        raise ValueError(
            f"{what}: more than one row per {tuple(key_cols)}, e.g. "
            f"{examples.to_dict(orient='records')}"
        )
    return {tuple(row[col] for col in key_cols): row for _, row in frame.iterrows()}


def cell_float(row: pd.Series | None, col: str) -> float:
    """``row[col]`` as a float; NaN when there is no row, no such column, or no finite number."""
    if row is None or col not in row.index:
        return float("nan")
    return finite_float(row[col])

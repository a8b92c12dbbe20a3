"""The Pareto frontier of cost against score: the cells no other cell beats on both."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd


def pareto_frontier(
    df: pd.DataFrame,
    x_col: str = "inference_flops_per_request",
    y_col: str = "score",
) -> pd.DataFrame:
    """Mark the rows no other row beats on both cost and quality.

    A row is on the frontier when no other row has ``x <= its x`` and ``y >= its y`` with at
    least one inequality strict (lower ``x_col`` is cheaper, higher ``y_col`` is better). Exact
    duplicates of a frontier point are all on it. Rows with a non-finite x or y are never on it.

    Returns a copy of ``df`` with a boolean ``on_pareto_frontier`` column, in the input order.
    """
    result = df.copy()
    x_values = pd.to_numeric(result[x_col], errors="coerce").to_numpy(dtype=float)
    y_values = pd.to_numeric(result[y_col], errors="coerce").to_numpy(dtype=float)
    finite = np.isfinite(x_values) & np.isfinite(y_values)
    on_frontier = np.zeros(len(result), dtype=bool)
    # Sweep from cheapest to dearest (ties: best score first); a point is on the frontier when it
    # beats the best score seen at strictly lower cost, or equals the best at the same cost.
    order = sorted(np.flatnonzero(finite), key=lambda i: (x_values[i], -y_values[i]))
    best_y = -math.inf
    position = 0
    while position < len(order):
        same_x_end = position
        while same_x_end < len(order) and x_values[order[same_x_end]] == x_values[order[position]]:
            same_x_end += 1
        group = order[position:same_x_end]
        group_best = y_values[group[0]]
        if group_best > best_y:
            for index in group:
                if y_values[index] == group_best:
                    on_frontier[index] = True
            best_y = group_best
        position = same_x_end
    result["on_pareto_frontier"] = on_frontier
    return result

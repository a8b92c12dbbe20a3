"""Crossover request counts: how many requests before spending at inference stops paying off.

Costs come in one of :data:`~thinkcost.tables.COST_UNITS`: ``"flops"`` (training FLOPs,
inference FLOPs per request) or ``"seconds"`` (device-seconds: training FLOPs divided by a stated
training throughput in FLOP/s, inference at its measured seconds per request). The scaling fits
are always on log10 training FLOPs; only the crossovers are computed in either unit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from thinkcost.analysis.frames import cell_float, unique_lookup, with_float_columns
from thinkcost.tables import (
    AVERAGE,
    CROSSOVER_COLUMNS,
    SECONDS_CROSSOVER_COLUMNS,
    STATUS_ALWAYS_CHEAPER,
    STATUS_CHEAPER_ABOVE_CROSSOVER,
    STATUS_NEVER_CHEAPER,
    STATUS_NO_BASELINE_INFERENCE_FLOPS,
    STATUS_NO_BASELINE_SECONDS,
    STATUS_NO_INFERENCE_FLOPS,
    STATUS_NO_SECONDS,
    STATUS_NO_TRAIN_FLOPS,
    STATUS_OK,
    cost_columns,
    join_status,
)

# FLOP/s of the training hardware, to put training in device-seconds: an H100 SXM's dense bf16
# peak (989 TFLOP/s) at 40 % model FLOPs utilisation, 3.96e14, rounded.
DEFAULT_TRAINING_THROUGHPUT = 4.0e14
_BOUNDS = ("", "_low", "_high")


def check_training_throughput(training_throughput: float) -> float:
    """``training_throughput`` as a float, or an error when it is not a positive finite number."""
    try:
        value = float(training_throughput)
    except (TypeError, ValueError):
        value = float("nan")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(
            f"training_throughput must be a positive number of FLOP/s, got {training_throughput!r}"
        )
    return value


@dataclass(frozen=True)
class _CostUnit:
    """What a crossover in one cost unit reads and writes."""

    name: str
    columns: dict[str, str]  # cost_columns(name): the table's column of each role
    per_request_col: str  # scores.csv's cost per request
    scale: float  # FLOPs times this is the cost in this unit
    added_columns: list[str]
    # The statuses of a missing cost per request: the optimization's, the baseline's.
    missing: tuple[str, str]

    @classmethod
    def of(cls, cost_unit: str, training_throughput: float) -> _CostUnit:
        columns = cost_columns(cost_unit)
        if cost_unit == "flops":
            missing = (STATUS_NO_INFERENCE_FLOPS, STATUS_NO_BASELINE_INFERENCE_FLOPS)
            return cls(
                cost_unit, columns, "inference_flops_per_request", 1.0, CROSSOVER_COLUMNS, missing
            )
        scale = 1.0 / check_training_throughput(training_throughput)
        missing = (STATUS_NO_SECONDS, STATUS_NO_BASELINE_SECONDS)
        return cls(
            cost_unit, columns, "seconds_per_request", scale, SECONDS_CROSSOVER_COLUMNS, missing
        )


def crossover_requests(
    train_equivalent: pd.DataFrame,
    scores: pd.DataFrame,
    baseline: str = "standard",
    task: str = AVERAGE,
    cost_unit: str = "flops",
    training_throughput: float = DEFAULT_TRAINING_THROUGHPUT,
) -> pd.DataFrame:
    """Request count at which spending at inference stops paying off.

    Lifetime cost of the two ways to reach the optimized score with model *m*:

    * use *m* with optimization *o* for R requests: ``L_o(R) = T + R * f_o``;
    * train a baseline model of the same size with the train-equivalent compute ``C*`` (the
      paper's same-N assumption) and use it at the baseline's cost: ``L_b(R) = C* + R * f_b``.

    With ``cost_unit="flops"`` (the default), ``T`` is ``train_flops``, ``C*`` is
    ``train_equivalent_flops``, and ``f_o`` and ``f_b`` are ``inference_flops_per_request`` of
    *m*'s (task, o) and (task, baseline) rows. With ``cost_unit="seconds"`` every cost is in
    device-seconds: ``T = train_flops / training_throughput`` and ``C* = train_equivalent_flops
    / training_throughput`` (``training_throughput`` in FLOP/s, the user's statement of what
    their training hardware sustains: peak × MFU), and ``f_o``, ``f_b`` are the measured
    ``seconds_per_request``. The fit behind ``C*`` is the same either way; only its price
    changes.

    With ``saved = C* - T`` and ``extra = f_o - f_b`` the lines meet at ``R* = saved / extra``:

    * ``saved > 0, extra > 0``: ``"ok"``; the optimization is cheaper for R < R*.
    * ``saved > 0, extra <= 0``: ``"optimization always cheaper"``; NaN (no crossover; ``inf``
      has no place in a table).
    * ``saved <= 0, extra >= 0``: ``"optimization never cheaper"``; NaN.
    * ``saved <= 0, extra < 0``: ``"optimization cheaper above crossover"``; R* is reported and
      the optimization wins for R > R* (or always, ``"optimization always cheaper"``, when
      ``saved == 0``).
    * ``C*`` NaN: the status repeats the train-equivalent ``status`` (and adds a missing cost
      per request, below); a missing ``f_o`` or ``f_b`` gives ``"no inference flops per
      request"`` or ``"no baseline inference flops for this model"`` (in seconds: ``"no
      seconds measured"``, ``"no baseline seconds measured for this model"``: imported cells,
      and the k rows of a swept optimization, have none); a missing ``train_flops`` gives
      ``"no train_flops for this model"``.

    Bounds come from ``train_equivalent_flops_low``/``_high`` (R* is monotone in C*, so the
    interval maps endpoint to endpoint). An endpoint at which the optimization would win at no
    request count (``"ok"`` case) or at every request count (``"cheaper above"`` case) is
    reported as 0 requests. Costs per request are treated as exact.

    Returns a copy of ``train_equivalent`` with columns added. In FLOPs,
    :data:`~thinkcost.tables.CROSSOVER_COLUMNS` (``crossover_generated_tokens`` multiplies by
    the optimization's ``generated_tokens_mean``). In seconds,
    :data:`~thinkcost.tables.SECONDS_CROSSOVER_COLUMNS` (the roles of
    :func:`~thinkcost.tables.cost_columns`, and the ``training_throughput`` they assume), so a
    table can carry both units.
    """
    unit = _CostUnit.of(cost_unit, training_throughput)
    task_rows = scores[scores["task"] == task]
    rows_by_key = unique_lookup(task_rows, ["model", "optimization"], "scores")
    records = [
        _crossover_row(
            row,
            optimization_row=rows_by_key.get((row["model"], row["optimization"])),
            baseline_row=rows_by_key.get((row["model"], baseline)),
            unit=unit,
        )
        for _, row in train_equivalent.iterrows()
    ]
    added = with_float_columns(
        pd.DataFrame(records, columns=unit.added_columns, index=train_equivalent.index),
        unit.added_columns,
    )
    result = train_equivalent.drop(
        columns=[col for col in unit.added_columns if col in train_equivalent.columns]
    )
    return pd.concat([result, added], axis=1)


def _crossover_row(
    row: pd.Series,
    optimization_row: pd.Series | None,
    baseline_row: pd.Series | None,
    unit: _CostUnit,
) -> dict:
    """The added columns of one train-equivalent row."""
    columns = unit.columns
    per_request = cell_float(optimization_row, unit.per_request_col)
    baseline_per_request = cell_float(baseline_row, unit.per_request_col)
    train_cost = float(row["train_flops"]) * unit.scale
    equivalent = {
        bound: float(row[f"train_equivalent_flops{bound}"]) * unit.scale for bound in _BOUNDS
    }
    record = {
        columns["per_request"]: per_request,
        columns["baseline_per_request"]: baseline_per_request,
    }
    if unit.name == "seconds":
        record["training_throughput"] = 1.0 / unit.scale
        record[columns["train"]] = train_cost
        for bound in _BOUNDS:
            record[columns[f"equivalent{bound}"]] = equivalent[bound]
    crossover = _crossover_one(
        train_cost=train_cost,
        equivalent=equivalent[""],
        equivalent_low=equivalent["_low"],
        equivalent_high=equivalent["_high"],
        equivalent_status=str(row["status"]),
        per_request=per_request,
        baseline_per_request=baseline_per_request,
        missing_statuses=unit.missing,
    )
    for role in ("crossover", "crossover_low", "crossover_high", "status"):
        record[columns[role]] = crossover[role]
    if unit.name == "flops":
        generated_tokens_mean = cell_float(optimization_row, "generated_tokens_mean")
        record["generated_tokens_mean"] = generated_tokens_mean
        for bound in _BOUNDS:
            record[f"crossover_generated_tokens{bound}"] = (
                record[f"crossover_requests{bound}"] * generated_tokens_mean
            )
    return record


def _crossover_one(
    train_cost: float,
    equivalent: float,
    equivalent_low: float,
    equivalent_high: float,
    equivalent_status: str,
    per_request: float,
    baseline_per_request: float,
    missing_statuses: tuple[str, str],
) -> dict:
    """The crossover of one row, in whatever unit its costs share (all four in one unit)."""
    nan = float("nan")
    record = {"crossover": nan, "crossover_low": nan, "crossover_high": nan}
    no_per_request = [
        status
        for status, value in zip(missing_statuses, (per_request, baseline_per_request), strict=True)
        if not math.isfinite(value)
    ]
    if not math.isfinite(equivalent):
        return record | {"status": join_status([equivalent_status, *no_per_request])}
    if not (math.isfinite(train_cost) and train_cost > 0):
        return record | {"status": STATUS_NO_TRAIN_FLOPS}
    if no_per_request:
        return record | {"status": no_per_request[0]}

    extra_per_request = per_request - baseline_per_request

    def requests_at(equivalent_cost: float) -> float:
        # Clipped at 0: an interval endpoint on the other side of the training cost means "the
        # optimization may win at no (or at every) request count", i.e. a crossover at 0.
        if not math.isfinite(equivalent_cost):
            return nan
        return max((equivalent_cost - train_cost) / extra_per_request, 0.0)

    saved_train_cost = equivalent - train_cost
    if saved_train_cost > 0:
        if extra_per_request <= 0:
            return record | {"status": STATUS_ALWAYS_CHEAPER}
        low_end, high_end, status = equivalent_low, equivalent_high, STATUS_OK
    else:
        if extra_per_request >= 0:
            return record | {"status": STATUS_NEVER_CHEAPER}
        if saved_train_cost == 0:
            return record | {"status": STATUS_ALWAYS_CHEAPER}
        # Cheaper per request but dearer to train: R* falls as C* rises, so the endpoints swap.
        low_end, high_end, status = equivalent_high, equivalent_low, STATUS_CHEAPER_ABOVE_CROSSOVER
    return {
        "crossover": requests_at(equivalent),
        "crossover_low": requests_at(low_end),
        "crossover_high": requests_at(high_end),
        "status": status,
    }

"""Per-cell outputs → the tidy `results/tables/scores.csv` (its columns: `thinkcost.tables`).

- `lm_eval_files`: reading lm-eval's results JSONs and samples files;
- `rows`: a run cell's row, and one row per k of a swept cell;
- `imports`: rows of cells imported from elsewhere, with their token counts;
- `table`: the whole table, with the benchmark averages.
"""

from thinkcost.aggregate.imports import import_row, imported_token_counts, table_token_counts
from thinkcost.aggregate.lm_eval_files import ResultsFileError, read_lm_eval_score
from thinkcost.aggregate.rows import cell_row, sweep_rows, train_flops
from thinkcost.aggregate.table import add_averages, aggregate_scores

__all__ = [
    "ResultsFileError",
    "add_averages",
    "aggregate_scores",
    "cell_row",
    "import_row",
    "imported_token_counts",
    "read_lm_eval_score",
    "sweep_rows",
    "table_token_counts",
    "train_flops",
]

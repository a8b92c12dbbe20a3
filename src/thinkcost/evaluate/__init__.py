"""Evaluate one cell of the grid: one model × task × optimization through lm-eval, with costs.

`cell` runs it (`evaluate_cell`), `arguments` sets up the lm-eval adapter from the cell's spec,
`records` writes down its provenance and costs, and `outputs` writes its files atomically.
"""

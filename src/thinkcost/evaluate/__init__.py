"""Evaluate one cell of the grid: one model × task × optimization through lm-eval, with costs."""

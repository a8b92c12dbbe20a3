"""Figures drawn from the tables, one module a kind: regime plots, training scaling, cost
(Pareto, and the inference-scaling frontier), PCA; `common` saves them.

Each plot function takes tidy DataFrames and returns a matplotlib Figure; scripts/plot_*.py
save it with :func:`thinkcost.figures.common.save_figure`.
"""

"""Inference-time optimizations: how a question's answer comes from engine calls, and its cost.

The lm-eval adapter (`backend`) turns lm-eval's requests into questions (`questions`) and hands
them to a strategy (`strategies`: direct, hybrid, free-form), which draws samples or a tree
search (`tree_search`), scores the samples (`sample_scores`), combines them by a vote (`voting`,
`sweeps` for votes over every k) and records what was computed (`costs`); the adapter keeps
finished questions in a checkpoint (`checkpoint`). Nothing here imports torch, transformers or
vLLM: an engine (`thinkcost.engines`) does the token-level work.
"""

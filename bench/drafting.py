"""Prompt lookup's host time per decode step: the hf engine's drafter against its previous search.

Each greedy decode step with prompt-lookup drafts asks `PromptLookup.get_candidates` for every
row's draft before the model runs, on the host: on a GPU, where a 135M model's step takes a few
milliseconds, that search is the step's floor. This script replays decoding without a model:
rows hold BBH questions (data/bbh) with a rationale growing a token a step, the rationales taken
from the tasks' CoT exemplars (real text, SmolLM2's tokenizer), beside a pool of finished ones
(`LOOKUP_POOL_TOKENS`); then the same with random tokens, where nothing matches and every row
runs all five searches (the worst case). It times 64 steps at 24 and 128 rows with the search
as it is and as it was (`windowed_match_ends`, comparing every n-token window), in one run,
and checks that both draft the same tokens.

    .venv/bin/python -m bench.drafting

Printed: milliseconds per step per configuration, old over new, and last

    drafting_speedup=<old / new at 128 rows, BBH text> identical=<true|false>
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np

from thinkcost.engines.base import SamplingSpec
from thinkcost.engines.hf import drafting
from thinkcost.engines.hf.batch import Row
from thinkcost.engines.hf.drafting import FinishedRationales, PromptLookup

REPO = Path(__file__).resolve().parents[1]
STEPS = 64


def windowed_match_ends(searched, key):
    """The search before issue 24's change: every n-token window of the text compared."""
    windows = np.lib.stride_tricks.sliding_window_view(searched, len(key))
    return np.flatnonzero((windows == key).all(axis=1)) + len(key)


def bbh_texts(tokenizer) -> tuple[list[list[int]], list[list[int]]]:
    """The default tasks' questions and their CoT exemplars' rationales, as token ids."""
    import json

    questions, rationales = [], []
    for path in sorted((REPO / "data/bbh/tasks").glob("*.json")):
        for example in json.loads(path.read_text())["examples"][:64]:
            prompt = f"Q: {example['input']}\nA: Let's think step by step."
            questions.append(tokenizer(prompt)["input_ids"])
    exemplar = re.compile(r"Let's think step by step\.\n(.*?)(?:\n\n|$)", re.S)
    for path in sorted((REPO / "data/bbh/cot-prompts").glob("*.txt")):
        for rationale in exemplar.findall(path.read_text()):
            rationales.append(tokenizer(rationale)["input_ids"])
    return questions, rationales


def replay(rows: list[Row], futures: list[list[int]], finished: FinishedRationales) -> tuple:
    """Seconds of `get_candidates` over STEPS steps, each row then taking its next token; and
    every draft, to compare."""
    lookup = PromptLookup(draft_tokens=4, on_cpu=False)
    spec = SamplingSpec(max_new_tokens=1 << 20)
    seconds, drafts = 0.0, []
    for step in range(STEPS):
        started = time.perf_counter()
        drafts.append(lookup.get_candidates(rows, spec, finished))
        seconds += time.perf_counter() - started
        for row, future in zip(rows, futures, strict=True):
            row.generated.append(future[step % len(future)])
    for row in rows:
        del row.generated[-STEPS:]
    return seconds, drafts


def setup(kind: str, count: int, questions, rationales, rng) -> tuple:
    """`count` rows part-way through their rationales, what each generates next, and a full
    pool of finished rationales."""
    rows, futures = [], []
    finished = FinishedRationales()
    for i in range(count):
        if kind == "bbh":
            prompt, rationale = questions[i % len(questions)], rationales[i % len(rationales)]
        else:
            prompt, rationale = rng.integers(0, 49152, 300).tolist(), rng.integers(0, 49152, 200)
            rationale = rationale.tolist()
        cut = int(rng.integers(10, max(11, len(rationale) - 10)))
        rows.append(Row(request=i, sample=0, prompt=prompt, generator=None))
        rows[-1].generated = rationale[:cut]
        futures.append(rationale[cut:] or rationale)
    while sum(len(t) for t in finished) < drafting.LOOKUP_POOL_TOKENS - 400:
        if kind == "bbh":
            finished.add(rationales[int(rng.integers(len(rationales)))])
        else:
            finished.add(rng.integers(0, 49152, 200).tolist())
    return rows, futures, finished


def main() -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(REPO / "results/stage/models/smollm2-135m-instruct")
    questions, rationales = bbh_texts(tokenizer)
    print(
        f"prompt lookup, 4 draft tokens, {STEPS} steps, pool of {drafting.LOOKUP_POOL_TOKENS} "
        "finished tokens; ms per step (get_candidates), faster of 2 runs"
    )
    print(f"{'text':6} {'rows':>5} {'before':>9} {'now':>8} {'ratio':>6}")
    identical, speedup = True, float("nan")
    current = drafting.match_ends
    for kind in ("bbh", "random"):
        for count in (24, 128):
            rows, futures, finished = setup(
                kind, count, questions, rationales, np.random.default_rng(0)
            )
            timings = {}
            for name, search in (("before", windowed_match_ends), ("now", current)):
                drafting.match_ends = search
                runs = [replay(rows, futures, finished) for _ in range(2)]
                timings[name] = (min(s for s, _ in runs), runs[0][1])
            drafting.match_ends = current
            before, now = timings["before"][0], timings["now"][0]
            identical = identical and timings["before"][1] == timings["now"][1]
            if kind == "bbh" and count == 128:
                speedup = before / now
            print(
                f"{kind:6} {count:5d} {before / STEPS * 1e3:9.2f} {now / STEPS * 1e3:8.2f} "
                f"{before / now:6.1f}"
            )
    print(f"drafting_speedup={speedup:.1f} identical={str(identical).lower()}")


if __name__ == "__main__":
    main()

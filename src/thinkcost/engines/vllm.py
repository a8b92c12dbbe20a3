"""The vLLM engine: the cluster's fast path (vLLM's offline `LLM`), and its CPU build here.

The two primitives map onto vLLM's own API:

- `generate`: one request per prompt with `SamplingParams(n=k)`, so a question's k samples share
  the prompt's prefill; greedy is temperature 0. Prompts go in as token ids from the model's
  own tokenizer (the hf engine's tokens), and every continuation is cut at its stop string or
  EOS by the same rule as the hf engine's (`Engine.cut`), so text and token counts mean the same.
- `score`: each (context, continuation) pair tokenized as lm-eval does, run as one prompt with
  `prompt_logprobs`, reading the prefix cache: a shared context (a question, its rationale and
  the answer prefix) is computed once for all its choices, or not at all where the rationale's
  generation left it cached. vLLM returns log-probabilities only for the rows it computes (a
  cached row's come back stale, vLLM issue 42019); a row the cache covered is read again as one
  generated position after the tokens before it (`_next_token_logprobs`).

Sampling is seeded per question (`SamplingSpec.sample_seed(key, 0)` seeds the request whose n
samples vLLM draws), so a question's samples do not depend on the batch or on a resume; they are
not the hf engine's samples (another random stream). Counters come from vLLM's own metrics:
engine steps (forward passes), tokens per step, cached prefix tokens.

vLLM starts its engine process with spawn: a script that loads this engine needs an
`if __name__ == "__main__":` guard (Snakemake's scripts and pytest have one).

`VLLMProfile` is what the workflow knows of the engine before a job loads it; this module imports
vLLM only inside the engine's methods, so that the config checks may ask the profile.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from types import MappingProxyType

from thinkcost.engines import EngineProfile
from thinkcost.engines.base import (
    Generation,
    GenerationRequest,
    SamplingSpec,
    ScoreRequest,
    TransformersTokenizerEngine,
)


class VLLMProfile(EngineProfile):
    """vLLM in its own environment, split over `evaluation.vllm.tensor_parallel_size` GPUs, with
    its own runtime: it drafts with its own speculative decoding and refuses the hf engine's
    runtime knobs rather than ignore them."""

    engine = "thinkcost.engines.vllm:VLLMEngine"
    requires = "vllm"
    install_hint = (
        "needs vLLM, which is not installed: `make install-vllm` (the CPU build, into .venv) or "
        "envs/vllm.yaml (CUDA, for clusters)"
    )
    conda_env = "../envs/vllm.yaml"
    refused_knobs = MappingProxyType(
        {
            "compile": "vLLM compiles its model itself; set evaluation.vllm.enforce_eager",
            "attn_implementation": "vLLM picks its own attention backend",
            "quantization": "vLLM's own quantized checkpoints are not wired in here",
        }
    )

    def gpus(self, params: float, evaluation: dict) -> int:
        return evaluation["vllm"]["tensor_parallel_size"]

    def drafting_arguments(self, assistant: dict, assistant_dir: str | None) -> dict:
        """vLLM's own speculative decoding: a draft model, or n-gram prompt lookup."""
        if assistant_dir:
            speculative = {
                "model": assistant_dir,
                "num_speculative_tokens": assistant["num_assistant_tokens"],
            }
        elif assistant.get("prompt_lookup_num_tokens"):
            speculative = {
                "method": "ngram",
                "num_speculative_tokens": assistant["prompt_lookup_num_tokens"],
                "prompt_lookup_max": 3,
                "prompt_lookup_min": 1,
            }
        else:  # no drafting (prompt lookup of 0 tokens): the backend's argument, unused here
            return super().drafting_arguments(assistant, assistant_dir)
        return {"speculative": speculative}

    def options(self, evaluation: dict) -> dict:
        return evaluation["vllm"]


class VLLMEngine(TransformersTokenizerEngine):
    def __init__(
        self,
        pretrained: str,
        device: str = "cpu",
        dtype: str = "auto",
        max_length: int | None = None,
        max_batch_size: int = 32,
        gpu_memory_utilization: float = 0.9,
        tensor_parallel_size: int = 1,
        cpu_kv_cache_gb: int = 4,
        enforce_eager: bool | None = None,
        block_size: int | None = None,
        seed: int = 0,
        trust_remote_code: bool = False,
        speculative: dict | None = None,
        **ignored,
    ) -> None:
        super().__init__()
        started = time.perf_counter()
        # Options of the hf engine (draft_tokens, compile, attn_implementation) have no meaning
        # here; they arrive because the evaluation settings are shared. The config check
        # refuses the ones an optimization sets on purpose (compile, quantization, …).
        del ignored
        from transformers import AutoTokenizer, GenerationConfig

        if device.startswith("cpu"):
            # The CPU build sizes its key/value cache from this variable, in GiB.
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(int(cpu_kv_cache_gb)))
            # Its engine core in a process of its own, beside the worker it binds to one core,
            # ran a Snakemake job here at 0.7 generated tokens/s (the same code outside
            # Snakemake: over 100); in the job's own process it runs at full speed.
            os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
            # In the job's process vLLM cuts torch to one thread "for serving" unless
            # OMP_NUM_THREADS says otherwise: keep the job's threads (its first scoring call
            # here took 18 s instead of 31 s).
            import torch

            os.environ.setdefault("OMP_NUM_THREADS", str(torch.get_num_threads()))
        if block_size is None and device.startswith("cpu"):
            # The prefix cache keeps whole blocks only, so a scored choice recomputes the
            # context's last partial block: 32 is the smallest block the CPU attention takes
            # (vLLM's CPU default, 128, made scoring 1.3x slower on the default tasks).
            block_size = 32
        from vllm import LLM

        self.tokenizer = AutoTokenizer.from_pretrained(
            pretrained, trust_remote_code=trust_remote_code
        )
        self.llm = LLM(
            model=pretrained,
            tokenizer=pretrained,
            dtype=dtype,
            max_model_len=max_length,
            max_num_seqs=max_batch_size,
            enable_prefix_caching=True,
            block_size=block_size,
            # Compiling adds 45-60 s to a CPU job's load (warm cache): it pays only in cells of
            # several hundred questions (bench/engines.py), so a CPU job is eager by default.
            enforce_eager=device.startswith("cpu") if enforce_eager is None else enforce_eager,
            gpu_memory_utilization=gpu_memory_utilization,
            tensor_parallel_size=tensor_parallel_size,
            seed=seed,
            trust_remote_code=trust_remote_code,
            disable_log_stats=False,  # the counters read vLLM's step metrics
            # vLLM's own speculative decoding (n-gram prompt lookup, or a draft model): a build
            # or device that cannot run it fails here, before any question, with vLLM's reason.
            **({"speculative_config": speculative} if speculative else {}),
        )
        self._max_length = int(self.llm.llm_engine.model_config.max_model_len)
        try:
            self._set_eos(GenerationConfig.from_pretrained(pretrained).eos_token_id)
        except OSError:  # no generation_config.json
            self._set_eos(None)
        self.counters.load_seconds = time.perf_counter() - started

    # ------------------------------------------------------------------ metering

    def _steps(self) -> tuple[int, int]:
        """Engine steps so far and the tokens they processed (vLLM's histogram of tokens per
        step): forward passes and forward tokens."""
        for metric in self.llm.get_metrics():
            if metric.name == "vllm:iteration_tokens_total":
                return int(metric.count), int(metric.sum)
        return 0, 0

    def _speculated(self) -> tuple[int, int]:
        """Draft tokens proposed and accepted so far (vLLM's speculative-decoding counters)."""
        found = {"vllm:spec_decode_num_draft_tokens": 0, "vllm:spec_decode_num_accepted_tokens": 0}
        for metric in self.llm.get_metrics():
            if metric.name in found:
                found[metric.name] = int(metric.value)
        return found["vllm:spec_decode_num_draft_tokens"], found[
            "vllm:spec_decode_num_accepted_tokens"
        ]

    def _run(self, prompts: list, params: list) -> list:
        passes, tokens = self._steps()
        drafted, accepted = self._speculated()
        outputs = self.llm.generate(prompts, params, use_tqdm=False)
        passes_after, tokens_after = self._steps()
        drafted_after, accepted_after = self._speculated()
        self.counters.forward_passes += passes_after - passes
        self.counters.forward_tokens += tokens_after - tokens
        self.counters.draft_tokens += drafted_after - drafted
        self.counters.accepted_draft_tokens += accepted_after - accepted
        for output in outputs:
            cached = output.num_cached_tokens or 0
            self.counters.reused_tokens += cached
        return outputs

    # ------------------------------------------------------------------ primitives

    def generate(
        self, requests: Sequence[GenerationRequest], spec: SamplingSpec
    ) -> list[list[Generation]]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        started = time.perf_counter()
        prompt_limit = self.prompt_limit(spec.max_new_tokens)
        prompts = [self.tokenize(r.prompt)[-prompt_limit:] for r in requests]
        params = [
            SamplingParams(
                n=request.n,
                max_tokens=spec.max_new_tokens,
                temperature=spec.temperature if spec.do_sample else 0.0,
                top_p=spec.top_p if spec.do_sample else 1.0,
                seed=spec.sample_seed(request.key, 0) if spec.do_sample else None,
                # vLLM stops at these; the cut below applies the hf engine's rule to the tokens.
                stop=list(spec.stop) or None,
                stop_token_ids=sorted(self._eos),
                skip_special_tokens=True,
                # The sampled token's own log-probability (raw, before temperature), which
                # weighs samples against each other; greedy rows have no use for it, and vLLM's
                # gather of it (with its rank over the vocabulary) cost 9 ms a decode step on
                # this CPU. Without it a greedy Generation's logprob is None, which the sample
                # scores handle (they score the text instead).
                logprobs=0 if spec.do_sample else None,
            )
            for request in requests
        ]
        outputs = self._run([TokensPrompt(prompt_token_ids=p) for p in prompts], params)
        results = []
        for prompt, output in zip(prompts, outputs, strict=True):
            generations = [
                self.cut(list(o.token_ids), spec.stop, _sampled_logprobs(o)) for o in output.outputs
            ]
            results.append(generations)
            self.counters.prefill_tokens += len(prompt) - (output.num_cached_tokens or 0)
            for completion, generation in zip(output.outputs, generations, strict=True):
                # Ours counts the tokens up to the stop, as the hf engine does; vLLM's own
                # count (decode_tokens) may hold a token or two more that finished the string.
                self.counters.generated_tokens += generation.tokens
                self.counters.decode_tokens += len(completion.token_ids)
        self.counters.decode_seconds += time.perf_counter() - started
        return results

    def score(self, requests: Sequence[ScoreRequest]) -> list[list[tuple[float, bool]]]:
        from vllm.inputs import TokensPrompt

        started = time.perf_counter()
        pairs = []  # (whole prompt, number of continuation tokens)
        for request in requests:
            for continuation in request.continuations:
                context_tokens, continuation_tokens = self.encode_pair(
                    request.context, continuation
                )
                # vLLM refuses a prompt that leaves no room for the one token it must generate.
                whole = (context_tokens + continuation_tokens)[-(self.max_length - 1) :]
                pairs.append((whole, min(len(continuation_tokens), len(whole) - 1)))
        prompts = [TokensPrompt(prompt_token_ids=whole) for whole, _ in pairs]
        outputs = self._run(prompts, [self._score_params()] * len(pairs))
        found, stale = self._computed_rows(pairs, outputs)
        if stale:
            found.update(self._next_token_logprobs({(i, p): (pairs[i][0], p) for i, p in stale}))
        self.counters.rescored_choices += len({index for index, _ in stale})
        scores = []
        for index, (whole, length) in enumerate(pairs):
            rows = [found[index, p] for p in range(len(whole) - length, len(whole))]
            scores.append((sum(lp for lp, _ in rows), all(rank == 1 for _, rank in rows)))
        self.counters.scoring_seconds += time.perf_counter() - started
        answers, position = [], 0
        for request in requests:
            answers.append(scores[position : position + len(request.continuations)])
            position += len(request.continuations)
        return answers

    def _computed_rows(self, pairs: list, outputs: list) -> tuple[dict, list]:
        """{(pair, position): (log-probability, rank)} of each continuation token whose row vLLM
        computed, and the (pair, position) of those whose row the prefix cache covered (stale:
        position p is predicted by row p - 1, computed only if p - 1 >= num_cached_tokens)."""
        found, stale = {}, []
        for index, ((whole, length), output) in enumerate(zip(pairs, outputs, strict=True)):
            cached = output.num_cached_tokens or 0
            self.counters.scoring_tokens += len(whole) - cached
            for position in range(len(whole) - length, len(whole)):
                if position <= cached:
                    stale.append((index, position))
                else:
                    candidate = output.prompt_logprobs[position][whole[position]]
                    found[index, position] = (candidate.logprob, candidate.rank)
        return found, stale

    @staticmethod
    def _score_params():
        from vllm import SamplingParams

        return SamplingParams(
            max_tokens=1,
            temperature=0.0,
            prompt_logprobs=1,
            # vLLM's default for prompt_logprobs is to skip the cache and recompute every prompt
            # (ten times the hf engine's scoring time on the default tasks).
            skip_reading_prefix_cache=False,
            # No text: the rows the cache covered hold garbage token ids, which the detokenizer
            # would choke on; and scoring needs ids only.
            detokenize=False,
            flat_logprobs=True,  # one list per prompt instead of a dict per position
        )

    def _next_token_logprobs(self, targets: dict) -> dict:
        """{key: (log-probability, rank)} of token `whole[p]` after `whole[:p]`, for each
        `targets[key] = (whole, p)`: the rows the prefix cache covered in a scoring prompt. Each is
        one generated position, which vLLM always computes (a prompt's last token is never read
        from the cache): the cache covers the rest of the prompt, so a stale row costs at most a
        block's recompute where scoring the choice without the cache recomputed its whole
        context. The token is forced with `allowed_token_ids`; vLLM's log-probabilities and ranks
        are the raw ones, taken before that mask."""
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        prompts = [TokensPrompt(prompt_token_ids=whole[:p]) for whole, p in targets.values()]
        params = [
            SamplingParams(
                max_tokens=1,
                temperature=0.0,
                allowed_token_ids=[whole[p]],
                logprobs=0,  # the sampled (here: forced) token's own, and its rank
                detokenize=False,
            )
            for whole, p in targets.values()
        ]
        found = {}
        outputs = self._run(prompts, params)
        for (key, (whole, p)), output in zip(targets.items(), outputs, strict=True):
            self.counters.scoring_tokens += p - (output.num_cached_tokens or 0)
            completion = output.outputs[0]
            if completion.token_ids[0] != whole[p]:
                raise RuntimeError(f"vLLM did not force token {whole[p]} (allowed_token_ids)")
            candidate = completion.logprobs[0][whole[p]]
            found[key] = (candidate.logprob, candidate.rank)
        return found


def _sampled_logprobs(completion) -> list[float] | None:
    """The log-probability of each token vLLM generated (`logprobs=0` returns the sampled
    token's), or None where the build gave none."""
    if not completion.logprobs:
        return None
    return [
        float(position[token].logprob)
        for token, position in zip(completion.token_ids, completion.logprobs, strict=True)
    ]

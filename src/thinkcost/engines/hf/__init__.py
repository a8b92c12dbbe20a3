"""The transformers engine: continuous batching, one prefill per prompt, a cache of prefixes.

Why not `model.generate`: a static batch decodes until its longest member stops (on a CoT task
half the rationales stop after a few tokens while the rest run to the budget), k samples of a
prompt prefill it k times, and the choices scored after a rationale recompute the rationale.
Here one decode loop serves every sequence:

- **continuous batching**: a finished sequence leaves the batch at once and waiting prompts are
  prefilled and join it, so the batch stays full;
- **one prefill per prompt**: its key/value cache is copied to its k samples;
- **prefix cache**: a finished sequence's keys and values are kept (within a memory budget), so
  scoring the choices after "rationale + The answer is:" computes only the tokens that are new;
  contexts with no cached prefix are prefilled once, batched across questions, and every choice
  is scored on that shared prefix.

The modules, one job each: `engine` (HFEngine: loading and the scheduling of generate and score),
`batch` (the row layout and its preallocated cache), `runner` (the forward passes),
`prefix_cache`, `drafting` (prompt lookup and draft models, behind one interface), `attention`
(grouped-query attention on a CPU), `loading` and `runtime` (dtype, quantization, compilation).
"""

from thinkcost.engines.hf.engine import HFEngine

__all__ = ["HFEngine"]

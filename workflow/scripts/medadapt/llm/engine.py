"""The local offline vLLM engine (`vllm.LLM`): construction with the CPU defaults, chat over many
conversations (optionally constrained to a JSON schema), and a clean shutdown.

The engine spawns a process: callers' entry points must be guarded by `if __name__ == "__main__":`.
vLLM is imported only when an engine is built, so this module loads without it.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any

CPU_KV_CACHE_BYTES = 1 << 30

# The one structured-output setup, for the offline engine and the local server alike. It is an
# engine-level setting: the per-request whitespace flag is ignored by the xgrammar backend, and
# without it a weak model may emit whitespace inside the JSON until max_tokens.
STRUCTURED_OUTPUTS = {"backend": "xgrammar", "disable_any_whitespace": True}


def needs_cpu_kv_cache(told) -> bool:
    """True on vLLM's CPU backend when neither the caller nor VLLM_CPU_KVCACHE_SPACE sized the cache."""
    from vllm.platforms import current_platform

    return current_platform.is_cpu() and not told and not os.environ.get("VLLM_CPU_KVCACHE_SPACE")


def engine_defaults(engine_kwargs: dict[str, Any] | None) -> dict[str, Any]:
    """On vLLM's CPU backend, reserve a fixed 1 GiB KV cache unless told otherwise: its default
    (gpu_memory_utilization=0.92 of the node's RAM) refuses to start on a shared machine."""
    kwargs = dict(engine_kwargs or {})
    if needs_cpu_kv_cache(told={"kv_cache_memory_bytes", "gpu_memory_utilization"} & set(kwargs)):
        kwargs["kv_cache_memory_bytes"] = CPU_KV_CACHE_BYTES
    return kwargs


def eager_default(enforce_eager: bool | None) -> bool:
    """Eager mode on the CPU backend (what was verified there); CUDA graphs on GPUs unless told."""
    if enforce_eager is not None:
        return enforce_eager
    from vllm.platforms import current_platform

    return current_platform.is_cpu()


@dataclasses.dataclass
class Completion:
    text: str
    n_tokens: int
    finish_reason: str | None


class Engine:
    """One vLLM engine for one model; use as a context manager (shutdown on exit).

    `engine_kwargs` go to `vllm.LLM` (e.g. gpu_memory_utilization, kv_cache_memory_bytes; see
    `engine_defaults`); `enforce_eager` None: eager on CPU, CUDA graphs on GPUs.
    """

    def __init__(self, model: str, *, max_model_len: int, seed: int, tensor_parallel_size: int,
                 dtype: str = "auto", enforce_eager: bool | None = None,
                 engine_kwargs: dict[str, Any] | None = None):
        from vllm import LLM

        self.llm = LLM(model=model, seed=seed, max_model_len=max_model_len,
                       enforce_eager=eager_default(enforce_eager),
                       tensor_parallel_size=tensor_parallel_size, dtype=dtype,
                       structured_outputs_config=dict(STRUCTURED_OUTPUTS),
                       **engine_defaults(engine_kwargs))

    def tokenizer(self):
        return self.llm.get_tokenizer()

    def chat(self, conversations: list[list[dict[str, str]]], *, max_tokens: int,
             temperature: float, top_p: float = 1.0, seed: int | None = None,
             json_schema: dict | None = None,
             chat_template_kwargs: dict | None = None) -> list[Completion]:
        """One completion per conversation, each rendered with the model's chat template.

        `seed` None: no per-request seed (the engine's seeded generator is used, in batch order);
        `json_schema`: constrain every answer to it (guided decoding).
        """
        from vllm import SamplingParams
        from vllm.sampling_params import StructuredOutputsParams

        extra: dict[str, Any] = {} if seed is None else {"seed": seed}
        if json_schema is not None:
            extra["structured_outputs"] = StructuredOutputsParams(json=json_schema)
        params = SamplingParams(max_tokens=max_tokens, temperature=temperature, top_p=top_p, **extra)
        outputs = self.llm.chat(conversations, params, use_tqdm=False,
                                chat_template_kwargs=chat_template_kwargs)
        return [Completion(o.outputs[0].text, len(o.outputs[0].token_ids), o.outputs[0].finish_reason)
                for o in outputs]

    def shutdown(self) -> None:
        """Stop the engine process now rather than at interpreter exit (frees its memory)."""
        core = getattr(getattr(self.llm, "llm_engine", None), "engine_core", None)
        if core is not None and hasattr(core, "shutdown"):
            core.shutdown()

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()

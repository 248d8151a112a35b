"""Responses of one model to the instruction prompts, with the offline vLLM engine.

Each prompt is one user turn (optionally after a system prompt) rendered with the model's own chat
template. The vLLM engine spawns a process: callers' entry points must be guarded by
`if __name__ == "__main__":`.
"""
from __future__ import annotations

import hashlib
import time
from typing import Any

from medadapt.io import read_jsonl, write_jsonl
from medadapt.llm.engine import Engine


def load_prompts(prompts: str | list[dict]) -> list[dict]:
    """Prompt rows {id, instruction, [input], ...} from a JSONL path (or a list), validated."""
    where = prompts if isinstance(prompts, str) else "prompts"
    rows = read_jsonl(prompts) if isinstance(prompts, str) else list(prompts)
    if not rows:
        raise ValueError(f"{where}: no prompts")
    seen: set[str] = set()
    for i, row in enumerate(rows, 1):
        for field in ("id", "instruction"):
            if row.get(field) in (None, ""):
                raise ValueError(f"{where}: row {i} has no '{field}' (expected {{id, instruction}})")
        if str(row["id"]) in seen:
            raise ValueError(f"{where}: row {i}: duplicate id {row['id']!r}")
        seen.add(str(row["id"]))
    return rows


def user_message(row: dict) -> str:
    """The instruction, followed by its optional `input` (AlpaCare/MedInstruct rows carry one)."""
    extra = str(row.get("input") or "").strip()
    return str(row["instruction"]).strip() + (f"\n\n{extra}" if extra else "")


def conversations(rows: list[dict], system_prompt: str | None = None) -> list[list[dict]]:
    system = [{"role": "system", "content": system_prompt}] if system_prompt else []
    return [system + [{"role": "user", "content": user_message(r)}] for r in rows]


def template_digest(tokenizer, model: str) -> str:
    """SHA-256 of the model's own chat template, the one every prompt is rendered with; a model
    without one fails here (a generic template would change what the model is asked)."""
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, dict):  # named templates: the default one is used
        template = template.get("default")
    if not template:
        raise ValueError(f"{model}: the tokenizer has no chat template; every prompt is rendered "
                         "with the model's own template (tokenizer_config.json 'chat_template')")
    return hashlib.sha256(template.encode("utf-8")).hexdigest()


def generate(model: str, prompts: str | list[dict], out: str, max_model_len: int, max_tokens: int,
             temperature: float, top_p: float, seed: int, system_prompt: str | None,
             chat_template_kwargs: dict | None, tensor_parallel_size: int, *, dtype: str = "auto",
             enforce_eager: bool | None = None, engine_kwargs: dict[str, Any] | None = None) -> dict:
    """Generate one response per prompt; write JSONL rows {id, instruction, response, n_tokens,
    finish_reason} to `out` and return a summary (recorded as the provenance `result`).

    All prompts go to one engine in one call (vLLM batches them), each rendered with the model's
    own chat template, sampled with `temperature`, `top_p`, `max_tokens` and `seed` (the config's).
    The summary's rates, `prompts_per_s` and `output_tokens_per_s`, are measured on that call
    alone (`generation_seconds`), not on the engine start (`load_seconds`).

    `chat_template_kwargs`, e.g. {"enable_thinking": False} for Qwen3; `dtype`, `enforce_eager`,
    `engine_kwargs`: see `medadapt.llm.engine.Engine`.
    """
    rows = load_prompts(prompts)
    if max_tokens < 1 or max_tokens >= max_model_len:
        raise ValueError(f"max_tokens={max_tokens}: expected 1 <= max_tokens < max_model_len "
                         f"({max_model_len}), leaving room for the prompt")
    start = time.perf_counter()
    with Engine(model, max_model_len=max_model_len, seed=seed,
                tensor_parallel_size=tensor_parallel_size, dtype=dtype, enforce_eager=enforce_eager,
                engine_kwargs=engine_kwargs) as engine:
        digest = template_digest(engine.tokenizer(), model)
        load_s = time.perf_counter() - start
        start = time.perf_counter()
        outputs = engine.chat(conversations(rows, system_prompt), max_tokens=max_tokens,
                              temperature=temperature, top_p=top_p, seed=seed,
                              chat_template_kwargs=chat_template_kwargs)
        gen_s = time.perf_counter() - start
    # The judge's query is what the model saw: instruction plus its optional input.
    results = [{"id": row["id"], "instruction": user_message(row), "response": o.text,
                "n_tokens": o.n_tokens, "finish_reason": o.finish_reason}
               for row, o in zip(rows, outputs, strict=True)]
    write_jsonl(out, results)
    tokens = sum(r["n_tokens"] for r in results)
    return {"n": len(results), "output_tokens": tokens, "mean_tokens": tokens / len(results),
            "n_length_stopped": sum(r["finish_reason"] == "length" for r in results),
            "load_seconds": round(load_s, 3), "generation_seconds": round(gen_s, 3),
            "prompts_per_s": round(len(results) / gen_s, 3) if gen_s > 0 else None,
            "output_tokens_per_s": round(tokens / gen_s, 2) if gen_s > 0 else None,
            "sampling": {"temperature": temperature, "top_p": top_p, "max_tokens": max_tokens,
                         "seed": seed},
            "chat_template_sha256": digest, "chat_template_kwargs": chat_template_kwargs}

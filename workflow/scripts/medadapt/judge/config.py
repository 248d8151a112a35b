"""The judge's settings: the workflow config's `judge` block, as resolved at load (defaults filled,
validated against the schema), plus the runtime knobs that are not config keys."""
from __future__ import annotations

import dataclasses
import os
from typing import Any

from medadapt.judge.template import WINNER_SCHEMA
from medadapt.llm import LLMError
from medadapt.llm.batch import BatchOptions
from medadapt.llm.client import CONNECT_TRIES, ChatClient, Endpoint, RetryPolicy
from medadapt.llm.servers import wait_for_server_file


@dataclasses.dataclass(frozen=True)
class JudgeConfig:
    model: str
    base_url: str | None  # None: the OpenAI API
    api_key_env: str  # "": no key (a local server)
    max_concurrency: int
    max_retries: int
    timeout_s: float
    temperature: float
    max_tokens: int
    use_json_schema: bool
    prices_per_mtok: dict[str, float] | None  # {"input": USD, "output": USD} per 1M tokens
    max_invalid_retries: int = 2
    max_invalid_fraction: float = 0.01
    batch: bool = False
    batch_poll_s: float = 60.0
    batch_price_factor: float = 0.5
    # Runtime knobs, not config keys (tests make them small):
    server_wait_s: float = 1800.0  # a service job starts beside its consumers: wait for it
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0
    connect_tries: int = CONNECT_TRIES
    batch_wait_s: float = 25 * 3600.0  # a batch has 24 h; past that the job fails, a rerun resumes

    @classmethod
    def from_block(cls, judge: dict[str, Any]) -> "JudgeConfig":
        """From the resolved `judge` block. `prices_per_mtok` has no default (absent: no cost);
        `serve` (how the workflow starts a local server) is not the client's business."""
        keys = ("model", "base_url", "api_key_env", "max_concurrency", "max_retries", "timeout_s",
                "temperature", "max_tokens", "use_json_schema", "max_invalid_retries",
                "max_invalid_fraction", "batch", "batch_poll_s", "batch_price_factor")
        return cls(**{k: judge[k] for k in keys}, prices_per_mtok=judge.get("prices_per_mtok"))

    def with_server(self, server_file: str | None) -> "JudgeConfig":
        """Take base_url and model from a local server's marker file (waiting for the server)."""
        if not server_file:
            return self
        info = wait_for_server_file(server_file, self.server_wait_s)
        return dataclasses.replace(self, base_url=info["base_url"], model=info["model"])

    def sampling_params(self) -> dict[str, Any]:
        """Everything besides model and messages that can change the answer (part of the cache key)."""
        params: dict[str, Any] = {"temperature": float(self.temperature),
                                  "max_tokens": int(self.max_tokens)}
        if self.use_json_schema:
            params["response_format"] = {"type": "json_schema", "json_schema": {
                "name": "judgment", "strict": True, "schema": WINNER_SCHEMA}}
        return params

    def client(self, cache_dir: str | None, ledger: str | None) -> ChatClient:
        endpoint = Endpoint(model=self.model, base_url=self.base_url, api_key_env=self.api_key_env,
                            timeout_s=self.timeout_s, max_concurrency=self.max_concurrency)
        retry = RetryPolicy(max_retries=self.max_retries, backoff_base_s=self.backoff_base_s,
                            backoff_max_s=self.backoff_max_s)
        batch = None
        if self.batch:
            if not cache_dir:  # the batch ids must outlive a failed job: they live beside the cache
                raise LLMError("judge.batch: needs an answer cache directory, where submitted "
                               "batches are remembered so that a rerun resumes them")
            batch = BatchOptions(state_dir=os.path.join(cache_dir, "batches"),
                                 poll_s=self.batch_poll_s, price_factor=self.batch_price_factor,
                                 wait_s=self.batch_wait_s)
        return ChatClient(endpoint, retry, what="judge", stage="judge", cache_dir=cache_dir,
                          ledger=ledger, prices_per_mtok=self.prices_per_mtok,
                          invalid_retries=self.max_invalid_retries, batch=batch,
                          connect_tries=self.connect_tries)

"""The judge's settings: the workflow config's `judge` block, as resolved at load (defaults filled,
validated against the schema), plus the runtime knobs that are not config keys."""
from __future__ import annotations

import dataclasses
from typing import Any

from medadapt.judge.template import WINNER_SCHEMA
from medadapt.llm.client import ChatClient, Endpoint, RetryPolicy
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
    # Runtime knobs, not config keys:
    server_wait_s: float = 1800.0  # a service job starts beside its consumers: wait for it
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0

    @classmethod
    def from_block(cls, judge: dict[str, Any]) -> "JudgeConfig":
        """From the resolved `judge` block. `prices_per_mtok` has no default (absent: no cost);
        `serve` (how the workflow starts a local server) is not the client's business."""
        return cls(model=judge["model"], base_url=judge["base_url"], api_key_env=judge["api_key_env"],
                   max_concurrency=judge["max_concurrency"], max_retries=judge["max_retries"],
                   timeout_s=judge["timeout_s"], temperature=judge["temperature"],
                   max_tokens=judge["max_tokens"], use_json_schema=judge["use_json_schema"],
                   prices_per_mtok=judge.get("prices_per_mtok"))

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
        return ChatClient(endpoint, retry, what="judge", cache_dir=cache_dir, ledger=ledger,
                          prices_per_mtok=self.prices_per_mtok)

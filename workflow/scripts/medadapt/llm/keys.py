"""The one place an API key is read, and the scrubber that keeps it out of logs and results.

A key is named by an environment variable (a config's `api_key_env`), never written into a config.
An endpoint without one is a local server (vLLM accepts any key when started without --api-key);
the OpenAI API itself (no base_url) always needs one.
"""
from __future__ import annotations

import os
import re

from medadapt.llm import LLMError

DUMMY_KEY = "EMPTY"  # what a local vLLM server accepts when started without --api-key


class MissingKeyError(LLMError, ValueError):
    """The configured key variable is unset, or a paid API was configured without one."""


def read_key(api_key_env: str | None, base_url: str | None, what: str) -> str:
    """The key from the variable `api_key_env`; the dummy key for a local endpoint without one.

    `what` names the config block in the error message (e.g. "judge", "annotator").
    """
    if api_key_env:
        key = os.environ.get(api_key_env, "")
        if not key:
            raise MissingKeyError(f"{what}.api_key_env: environment variable {api_key_env} "
                                  "is not set or empty")
        return key
    if base_url is None:
        raise MissingKeyError(f"{what}.api_key_env: required for the OpenAI API (base_url is null)")
    return DUMMY_KEY


# OpenAI-style keys (sk-..., sk-proj-...) and bearer tokens echoed back by proxies. The word
# boundary keeps words like "risk-free" intact.
_KEYLIKE = re.compile(r"(\bsk-[A-Za-z0-9_\-*]{3,}|Bearer\s+\S+)")


def redact(text: str, secret: str | None = None) -> str:
    """`text` without the key `secret` and without anything that looks like an API key."""
    if secret and len(secret) >= 4 and secret != DUMMY_KEY:
        text = text.replace(secret, "***")
    return _KEYLIKE.sub("***", text)

"""One layer for every LLM call the workflow makes.

- `engine`: the local offline vLLM engine (generation, annotation on a GPU node);
- `client`: any OpenAI-compatible endpoint (judging, annotation through an API), with one retry
  policy, the content-hash `cache`, the per-answer usage `ledger`, the key reader of `keys` and,
  as a second transport, OpenAI's Batch API (`batch`);
- `servers`: launchers of local OpenAI-compatible servers that `client` then talks to.
"""
from __future__ import annotations


class LLMError(RuntimeError):
    """A run cannot succeed as configured (bad key, bad request, retries exhausted, no server)."""


class InvalidAnswer(ValueError):
    """Raised by a caller's `parse` for an answer that is not usable; the message says why."""


def json_object(text: str, **loads) -> dict:
    """The JSON object an answer consists of (`loads`: json.loads options); InvalidAnswer, with the
    reason, for anything else. The callers' parsers then check the object's keys and values."""
    import json

    try:
        obj = json.loads(text, **loads)
    except json.JSONDecodeError as exc:
        raise InvalidAnswer(f"not a JSON object ({exc.msg} at character {exc.pos})") from None
    if not isinstance(obj, dict):
        raise InvalidAnswer(f"JSON {type(obj).__name__}, not an object")
    return obj


class TooManyFailures(LLMError):
    """More requests ended without a valid answer than the caller allows (`max_failed`).

    `counts`: requests (all, duplicates included), invalid (answered, never validly), missing (no
    answer: retries exhausted, or not asked once the run stopped), unasked (of missing: not asked),
    allowed. Counts weigh each unique request by how often it was requested. `example`: the most
    common reason a request failed.
    """

    def __init__(self, message: str, counts: dict[str, int], example: str | None = None):
        super().__init__(message)
        self.counts = counts
        self.example = example

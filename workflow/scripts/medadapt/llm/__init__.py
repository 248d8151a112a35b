"""One layer for every LLM call the workflow makes.

- `engine`: the local offline vLLM engine (generation, annotation on a GPU node);
- `client`: any OpenAI-compatible endpoint (judging, annotation through an API), with one retry
  policy, the content-hash `cache`, the usage `ledger` and the key reader of `keys`;
- `servers`: launchers of local OpenAI-compatible servers that `client` then talks to.
"""


class LLMError(RuntimeError):
    """A run cannot succeed as configured (bad key, bad request, retries exhausted, no server)."""

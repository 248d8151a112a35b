"""The pairwise judge prompt (Figure 4 of the seed paper, verbatim) and the reading of its answer.

The figure is a YAML list of chat messages whose contents are Jinja2 templates. We keep it as that
YAML text (`FIGURE4_YAML`, copied from the figure; the figure's whitespace-only lines are YAML empty
lines), load it with PyYAML and render each message content with a plain `jinja2.Environment`
(default settings: no trim_blocks/lstrip_blocks, so the `{% if %}`/`{% for %}` lines leave their
newlines, and Jinja drops the single trailing newline of each content). `StrictUndefined` turns a
misspelt variable into an error instead of an empty string.
"""
from __future__ import annotations

import functools
import json
import re
from typing import Any, Sequence

import jinja2
import yaml

from medadapt.llm import InvalidAnswer, json_object

FIGURE4_YAML = """\
messages:
- role: system
  content: |
    You are an AI assistant that evaluates pairs of responses
    to a given query. Your goal is to determine which response
    is better based on correctness, clarity, completeness,
    and relevance.

- role: user
  content: |
    Compare the following two responses. Your answer needs
    to follow this JSON schema:

    ```json
    {
      "type": "object",
      "properties": {
        "winner": {
          "type": "string",
          "enum": ["A", "B", "0"],
          "description": "The winning response, i.e. 'A', 'B' or '0' indicating a tie."
        }
      }
    }
    ```

    {% if context %}
    Context:
    {% for msg in context %}
      {{ msg.role | capitalize }}:
      {{ msg.content | indent(width=8) }}
    {% endfor %}
    {% endif %}

    Query:
      {{ query | indent(width=8) }}


    Response A:
      {{ response_a | indent(width=8) }}

    Response B:
      {{ response_b | indent(width=8) }}


    Based on the query and context above,
    which response is better?

"""

WINNERS = ("A", "B", "0")  # response A, response B, tie

# The schema the prompt shows, sent as `response_format` when the endpoint supports structured
# outputs (strict mode additionally requires `required` and `additionalProperties: false`).
WINNER_SCHEMA = {
    "type": "object",
    "properties": {"winner": {"type": "string", "enum": list(WINNERS),
                              "description": "The winning response, i.e. 'A', 'B' or '0' "
                                             "indicating a tie."}},
    "required": ["winner"],
    "additionalProperties": False,
}


@functools.cache
def _templates() -> tuple[tuple[str, jinja2.Template], ...]:
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)
    messages = yaml.safe_load(FIGURE4_YAML)["messages"]
    return tuple((m["role"], env.from_string(m["content"])) for m in messages)


def render(query: str, response_a: str, response_b: str,
           context: Sequence[dict[str, Any]] | None = None) -> list[dict[str, str]]:
    """Chat messages (system, user) asking the judge to compare response A with response B.

    `context`: optional earlier turns, a list of {"role", "content"} dicts shown before the query.
    """
    for name, value in (("query", query), ("response_a", response_a), ("response_b", response_b)):
        if not isinstance(value, str):
            raise TypeError(f"render: {name} must be a string, got {type(value).__name__}")
    for k, msg in enumerate(context or []):
        if not isinstance(msg, dict) or not {"role", "content"} <= msg.keys():
            raise ValueError(f"render: context[{k}] must be a dict with 'role' and 'content'")
    values = {"query": query, "response_a": response_a, "response_b": response_b,
              "context": list(context) if context else None}
    return [{"role": role, "content": tpl.render(**values)} for role, tpl in _templates()]


# ---- the answer -------------------------------------------------------------------------------
#
# Strict: an answer is a verdict only if it is one JSON object whose "winner" is the string "A",
# "B" or "0" (the schema the prompt shows). Nothing is read out of prose, a truncated object, a
# number or a lower-case letter: every such reading guesses, and the guesses found in practice were
# biased toward the response shown first. A failed reading is a failed attempt, asked again by the
# client (`judge.max_invalid_retries`).
#
# One wrapper is accepted: the whole answer being a single Markdown code fence (``` or ```json)
# around such an object. The prompt itself shows the schema inside a ```json fence, so models
# without structured outputs answer that way; the content must still be the complete object, and
# nothing may stand outside the fence.

_FENCE = re.compile(r"\A```(?:json)?[ \t]*\n(.*)\n[ \t]*```\Z", re.S | re.I)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    dupes = sorted({k for k in keys if keys.count(k) > 1})
    if dupes:
        raise InvalidAnswer(f"duplicate key(s) {dupes} in the JSON object")
    return dict(pairs)


def read_winner(text: str | None) -> str:
    """'A', 'B' or '0' (tie) from the judge's answer; raises InvalidAnswer (with the reason) for
    anything else (see the rules above)."""
    if text is None or not text.strip():
        raise InvalidAnswer("empty answer")
    body = text.strip()
    if (fence := _FENCE.match(body)) is not None:
        body = fence.group(1).strip()
    obj = json_object(body, object_pairs_hook=_no_duplicates)
    if "winner" not in obj:
        raise InvalidAnswer(f"no 'winner' key (keys: {sorted(obj)[:5]})")
    winner = obj["winner"]
    if not isinstance(winner, str) or winner not in WINNERS:
        raise InvalidAnswer(f"winner {json.dumps(winner)[:40]} is not one of \"A\", \"B\", \"0\"")
    return winner


def parse_winner(text: str | None) -> str | None:
    """`read_winner`, with None for an answer that is not a verdict."""
    try:
        return read_winner(text)
    except InvalidAnswer:
        return None

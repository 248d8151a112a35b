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

_WINNER_RE = re.compile(r"""["']?winner["']?\s*[:=]\s*["']?\s*(A|B|0|tie)\b""", re.IGNORECASE)
_BARE_RE = re.compile(r"""^\W*(?:response\s+)?(A|B|0|tie)\W*$""", re.IGNORECASE)


def _normalize(value: Any) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)) and value == 0:
        return "0"
    if isinstance(value, str):
        v = value.strip().upper()
        v = "0" if v == "TIE" else v
        return v if v in WINNERS else None
    return None


def _from_json(text: str) -> str | None:
    try:
        obj = json.loads(text)
    except (json.JSONDecodeError, ValueError):
        return None
    return _normalize(obj.get("winner")) if isinstance(obj, dict) else None


def parse_winner(text: str | None) -> str | None:
    """'A', 'B' or '0' (tie) from the judge's answer; None when it cannot be read.

    Strict JSON first; then a JSON object embedded in prose or a code fence; then a `winner: X`
    pattern; then a bare answer ("A", "Response B", "tie").
    """
    if not text:
        return None
    text = text.strip()
    if (w := _from_json(text)) is not None:
        return w
    for match in re.finditer(r"\{[^{}]*\}", text):
        if (w := _from_json(match.group(0))) is not None:
            return w
    if (m := _WINNER_RE.search(text)) or (m := _BARE_RE.match(text)):
        return _normalize(m.group(1))
    return None

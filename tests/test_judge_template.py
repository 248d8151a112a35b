"""The judge prompt is the paper's Figure 4, rendered exactly."""
from pathlib import Path

import pytest
import yaml

from medadapt.judge.template import FIGURE4_YAML, render

# Figure 4 of the seed paper as the paper prints it, copied character for character (including its
# whitespace-only lines).
FIGURE4 = Path(__file__).parent / "data" / "judge_figure4.yaml"

SYSTEM = """You are an AI assistant that evaluates pairs of responses
to a given query. Your goal is to determine which response
is better based on correctness, clarity, completeness,
and relevance."""

HEADER = """Compare the following two responses. Your answer needs
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

"""

FOOTER = """Based on the query and context above,
which response is better?"""


def test_render_without_context_exact():
    messages = render("Was ist\nHypertonie?", "Bluthochdruck.\n\nZweite Zeile", "Weiß nicht.")
    assert [m["role"] for m in messages] == ["system", "user"]
    assert messages[0]["content"] == SYSTEM
    assert messages[1]["content"] == HEADER + (
        "\n\n"
        "Query:\n"
        "  Was ist\n"
        "        Hypertonie?\n"
        "\n\n"
        "Response A:\n"
        "  Bluthochdruck.\n"
        "\n"  # indent() leaves blank lines blank
        "        Zweite Zeile\n"
        "\n"
        "Response B:\n"
        "  Weiß nicht.\n"
        "\n\n") + FOOTER


def test_render_with_context_exact():
    context = [{"role": "user", "content": "Hallo\nWelt"}, {"role": "assistant", "content": "Hi"}]
    user = render("q", "a", "b", context=context)[1]["content"]
    assert user == HEADER + (
        "\n"
        "Context:\n"
        "\n"
        "  User:\n"
        "  Hallo\n"
        "        Welt\n"
        "\n"
        "  Assistant:\n"
        "  Hi\n"
        "\n\n\n"
        "Query:\n  q\n\n\nResponse A:\n  a\n\nResponse B:\n  b\n\n\n") + FOOTER


def test_empty_context_is_no_context():
    assert render("q", "a", "b", context=[]) == render("q", "a", "b")


def test_jinja_syntax_in_responses_is_not_evaluated():
    user = render("{{ query }}", "{% if x %}A{% endif %}", "b")[1]["content"]
    assert "  {{ query }}\n" in user and "  {% if x %}A{% endif %}\n" in user


def test_bad_inputs_are_named():
    with pytest.raises(TypeError, match="response_b"):
        render("q", "a", None)
    with pytest.raises(ValueError, match=r"context\[0\]"):
        render("q", "a", "b", context=[{"text": "x"}])


def test_template_is_the_figure_verbatim():
    figure = FIGURE4.read_text(encoding="utf-8")
    assert figure.startswith("messages:\n- role: system\n") and figure.count("\n \n") == 2
    assert yaml.safe_load(figure) == yaml.safe_load(FIGURE4_YAML)
    # line by line too (the figure's whitespace-only lines are empty lines here)
    assert [ln.rstrip() for ln in figure.splitlines()] == FIGURE4_YAML.splitlines()

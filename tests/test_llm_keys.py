"""The one key reader and the redaction of keys from text meant for logs and results."""
from __future__ import annotations

import pytest

from medadapt.llm import LLMError
from medadapt.llm.keys import DUMMY_KEY, MissingKeyError, read_key, redact

FAKE_KEY = "sk-test-SECRET-5f3c9a1d7e"


def test_key_from_the_named_variable(monkeypatch):
    monkeypatch.setenv("SOME_KEY", FAKE_KEY)
    assert read_key("SOME_KEY", None, "judge") == FAKE_KEY
    assert read_key("SOME_KEY", "http://127.0.0.1:8000/v1", "judge") == FAKE_KEY


@pytest.mark.parametrize("value", [None, ""])
def test_unset_or_empty_variable_is_an_error_naming_it(monkeypatch, value):
    if value is None:
        monkeypatch.delenv("NOPE_KEY", raising=False)
    else:
        monkeypatch.setenv("NOPE_KEY", value)
    with pytest.raises(MissingKeyError, match=r"annotator\.api_key_env: environment variable "
                                              r"NOPE_KEY is not set or empty"):
        read_key("NOPE_KEY", "http://x/v1", "annotator")
    assert issubclass(MissingKeyError, LLMError) and issubclass(MissingKeyError, ValueError)


def test_local_endpoint_gets_the_dummy_key_and_the_openai_api_needs_one():
    assert read_key("", "http://127.0.0.1:8000/v1", "judge") == DUMMY_KEY == "EMPTY"
    assert read_key(None, "http://127.0.0.1:8000/v1", "judge") == DUMMY_KEY
    with pytest.raises(MissingKeyError, match=r"judge\.api_key_env: required for the OpenAI API"):
        read_key("", None, "judge")


def test_redact_removes_key_and_keylike_strings():
    text = f"Incorrect API key provided: {FAKE_KEY}. Header: Bearer abc.def sk-proj-XYZ123"
    out = redact(text, FAKE_KEY)
    assert FAKE_KEY not in out and "abc.def" not in out and "sk-proj-XYZ123" not in out
    assert out.startswith("Incorrect API key provided: ***")
    # any secret, not only sk-... ones
    assert redact("token=abcd1234XYZ here", "abcd1234XYZ") == "token=*** here"


def test_redact_leaves_ordinary_text_alone():
    text = 'The answer is {"winner": "A"}; EMPTY means no key, a risk-free task.'
    assert redact(text, DUMMY_KEY) == text  # the dummy key is not a secret
    assert redact("a b c", "a") == "a b c"  # nor is a too-short string
    assert redact(text) == text

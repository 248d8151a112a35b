"""The content-hash answer cache."""
from __future__ import annotations

import json

import pytest

from medadapt.llm.cache import ResponseCache, cache_key


def parse_label(text):
    return {"yes": 1, "no": 0}.get(text)


def test_cache_key_depends_on_model_messages_and_params():
    msgs = [{"role": "user", "content": "x"}]
    k = cache_key("m", msgs, {"temperature": 0.0})
    assert k == cache_key("m", [dict(msgs[0])], {"temperature": 0.0})
    assert len({k, cache_key("m2", msgs, {"temperature": 0.0}),
                cache_key("m", [{"role": "user", "content": "y"}], {"temperature": 0.0}),
                cache_key("m", msgs, {"temperature": 0.5})}) == 4
    # a known answer: SHA-256 of the canonical JSON, as the judge's cache has always computed it
    # (caches written before stay valid)
    assert k == "8d974c99ab96ce56c7a203023c909324d1eee5649a3583e37421aabb5011a14d"


def test_put_get_only_parsed_answers(tmp_path):
    cache = ResponseCache(tmp_path / "c")
    key = cache_key("m", [{"role": "user", "content": "q"}], {})
    assert cache.get(key, parse_label) is None
    cache.put(key, {"raw": "yes", "prompt_tokens": 3}, 1)
    entry, value = cache.get(key, parse_label)
    assert value == 1 and entry["raw"] == "yes" and entry["prompt_tokens"] == 3 and entry["key"] == key
    assert cache.path(key) == tmp_path / "c" / key[:2] / f"{key}.json"
    with pytest.raises(ValueError, match="refusing"):
        cache.put(key, {"raw": "maybe"}, None)
    assert cache.get(key, parse_label)[1] == 1  # the refused put changed nothing


def test_misses(tmp_path):
    cache = ResponseCache(tmp_path)
    key = cache_key("m", [], {})
    cache.path(key).parent.mkdir(parents=True)
    cache.path(key).write_text("{not json")
    assert cache.get(key, parse_label) is None  # damaged
    cache.path(key).write_text(json.dumps({"key": "other", "raw": "yes"}))
    assert cache.get(key, parse_label) is None  # someone else's entry
    cache.path(key).write_text(json.dumps({"key": key, "raw": "maybe"}))
    assert cache.get(key, parse_label) is None  # an answer that no longer parses
    cache.put(key, {"raw": "no"}, 0)
    assert cache.get(key, parse_label)[1] == 0  # replaced by the next good answer


def test_no_directory_no_cache(tmp_path):
    cache = ResponseCache(None)
    cache.put("ab", {"raw": "yes"}, 1)
    assert cache.get("ab", parse_label) is None

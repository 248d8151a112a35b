"""The demo sources' pre-training data: files in the config's order, a file up-weighted by
`repeat` read that many times (the knowledge tiers), bad input named."""
from __future__ import annotations

import json

import pytest

from medadapt.demo.pretrain import read_rows


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def test_repeats_read_a_file_that_many_times_in_place(tmp_path):
    a = _write(tmp_path / "a.jsonl", [{"id": "a1", "text": "x"}, {"id": "a2", "text": "y"}])
    b = _write(tmp_path / "b.jsonl", [{"id": "b1", "messages": [{"role": "user", "content": "q"}]}])
    c = _write(tmp_path / "c.jsonl", [{"id": "c1", "text": "z"}])
    assert [r["id"] for r in read_rows([a, b, c])] == ["a1", "a2", "b1", "c1"]
    assert [r["id"] for r in read_rows([a, b, c], [1, 3, 2])] == ["a1", "a2", "b1", "b1", "b1", "c1", "c1"]


@pytest.mark.parametrize("repeats", [[1], [1, 0], [1, 1.5]])
def test_repeats_must_be_one_positive_integer_per_file(tmp_path, repeats):
    a = _write(tmp_path / "a.jsonl", [{"id": "a1", "text": "x"}])
    with pytest.raises(ValueError, match="repeats"):
        read_rows([a, a], repeats)


def test_a_row_without_text_or_messages_is_named(tmp_path):
    bad = _write(tmp_path / "bad.jsonl", [{"id": "a1", "text": "x"}, {"id": "a2", "body": "y"}])
    with pytest.raises(ValueError, match=r"bad\.jsonl:2: expected a 'text' string or a 'messages' list"):
        read_rows([bad])

"""Raw inputs: shard listing, the instruction prompts (and their count) and German MedQA from
BioInstructQA's data.zip are checked before any stage uses them."""
from __future__ import annotations

import json

import pytest

from medadapt.sources import list_shards, prepare_medqa_de, prepare_prompts
from test_mcqa import medqa_zip

MEDQA = {"hub": "BioMistral/BioInstructQA", "revision": None, "file": "data.zip", "zip": None,
         "member": "langs_processed/German-full.json", "corpus": "MedQA", "test_items": 1273}


def test_list_shards_names_files_by_stem(tmp_path):
    for name in ("b.jsonl", "a.parquet"):
        (tmp_path / name).write_text("")
    out = tmp_path / "shards.json"
    assert list_shards({"glob": str(tmp_path / "*.*")}, str(out)) == {"shards": 2}
    assert json.loads(out.read_text()) == {"a": str(tmp_path / "a.parquet"), "b": str(tmp_path / "b.jsonl")}


def test_list_shards_empty_glob_names_the_key(tmp_path):
    with pytest.raises(FileNotFoundError, match="corpus.shards.glob"):
        list_shards({"glob": str(tmp_path / "none-*.parquet")}, str(tmp_path / "s.json"))


def test_prepare_prompts_copies_valid_rows(tmp_path):
    src = tmp_path / "p.jsonl"
    src.write_text('{"id": 1, "instruction": "Erklären Sie Diabetes."}\n\n{"id": "x", "instruction": "Was ist ein EKG?"}\n')
    out = tmp_path / "out.jsonl"
    assert prepare_prompts(str(src), str(out)) == {"prompts": 2}
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == ["1", "x"]


@pytest.mark.parametrize("content, message", [
    ('{"id": 1}\n', "p.jsonl: row 1 has no 'instruction'"),
    ('{"id": 1, "instruction": "a"}\n{"id": 1, "instruction": "b"}\n', "p.jsonl: row 2: duplicate id 1"),
    ('{"id": 1, "instruction": "a"\n', "p.jsonl:1: not valid JSON"),
    ("", "no prompts"),
])
def test_prepare_prompts_rejects_bad_rows(tmp_path, content, message):
    src = tmp_path / "p.jsonl"
    src.write_text(content)
    with pytest.raises(ValueError, match=message):
        prepare_prompts(str(src), str(tmp_path / "out.jsonl"))
    assert not (tmp_path / "out.jsonl").exists()


def test_prepare_prompts_missing_file_names_the_key(tmp_path):
    with pytest.raises(FileNotFoundError, match="generate.prompts"):
        prepare_prompts(str(tmp_path / "missing.jsonl"), str(tmp_path / "out.jsonl"))


def write_prompts(path, n):
    path.write_text("".join(json.dumps({"id": k, "instruction": f"Frage {k}?"}) + "\n" for k in range(n)))
    return str(path)


def test_prompt_count_is_checked(tmp_path):
    """The paper's 217 prompts: a file with 216 fails and names both numbers; 217 passes."""
    out = tmp_path / "out.jsonl"
    with pytest.raises(ValueError, match=r"p\.jsonl holds 216 prompts, but generate\.expected_count is 217"):
        prepare_prompts(write_prompts(tmp_path / "p.jsonl", 216), str(out), expected_count=217)
    assert not out.exists()
    assert prepare_prompts(write_prompts(tmp_path / "p.jsonl", 217), str(out), expected_count=217) == \
        {"prompts": 217}
    assert prepare_prompts(str(tmp_path / "p.jsonl"), str(out), expected_count=None) == {"prompts": 217}


def test_medqa_de_keeps_the_whole_test_split(tmp_path):
    source = {**MEDQA, "zip": medqa_zip(tmp_path / "data.zip"), "test_items": 5}
    test, info = tmp_path / "medqa_de" / "test.jsonl", tmp_path / "medqa_de" / "info.json"
    assert prepare_medqa_de(source, str(test), str(info), num_fewshot=1) == \
        {"test": 5, "fewshot_pool_items": 2}
    rows = [json.loads(line) for line in test.read_text().splitlines()]
    assert [r["id"] for r in rows] == [f"MedQA-test-{k:04d}" for k in range(5)]
    assert set(rows[0]) == {"id", "question", "choices", "answer"}
    meta = json.loads(info.read_text())
    assert meta["test_items"] == 5 and meta["fewshot_split"] == "test"
    assert meta["fewshot_pool_items"] == 2 and meta["fewshot_pool_ids"] == ["MedQA-test-0000", "MedQA-test-0001"]
    assert meta["zip"] == source["zip"] and meta["member"] == "langs_processed/German-full.json"


def test_medqa_de_split_size_is_checked(tmp_path):
    """The real split has 1273 items: the fixture's 5 are another layout, and the error says so."""
    source = {**MEDQA, "zip": medqa_zip(tmp_path / "data.zip")}
    test = tmp_path / "test.jsonl"
    with pytest.raises(ValueError, match=r"German-full\.json: 5 MedQA records, expected the 1273 items of "
                                         r"the translated test split \(mcqa\.medqa_de\.test_items; MedQA "
                                         r"has 10178/1272/1273 train/validation/test items\)"):
        prepare_medqa_de(source, str(test), str(tmp_path / "info.json"), num_fewshot=1)
    assert not test.exists()
    with pytest.raises(FileNotFoundError, match="mcqa.medqa_de.zip: '.*nope.zip' does not exist"):
        prepare_medqa_de({**source, "zip": str(tmp_path / "nope.zip")}, str(test),
                         str(tmp_path / "info.json"), num_fewshot=1)


def test_medqa_de_from_the_hub_needs_the_internet(tmp_path, monkeypatch):
    """Without a local zip the stage downloads data.zip with the hub client (a local rule); offline
    it says where to run it."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(RuntimeError, match="cannot download dataset 'BioMistral/BioInstructQA': HF_HUB_OFFLINE"):
        prepare_medqa_de(MEDQA, str(tmp_path / "test.jsonl"), str(tmp_path / "info.json"), num_fewshot=1)

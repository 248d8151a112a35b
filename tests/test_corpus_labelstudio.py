"""Label Studio round trip: validation documents out as import tasks, a JSON export (a fixture in
Label Studio's export format, see tests/data/labelstudio_README.md) back in as the validation file."""
from __future__ import annotations

import copy
import re
import json
from pathlib import Path

import polars as pl
import pytest

from medadapt.cli import main
from medadapt.corpus.labels import read_validation
from medadapt.corpus.labelstudio import LABEL_CONFIG, export_validation, import_export, read_export

EXPORT = Path(__file__).parent / "data" / "labelstudio_export.json"


def run_cli(argv: list[str]) -> int:
    """Through the `medadapt` command's own dispatcher (so the subcommand must be registered)."""
    return main(argv)


@pytest.fixture
def sample(tmp_path):
    path = tmp_path / "sample.parquet"
    pl.DataFrame({"id": ["v0", "x1", "v1", "v2", "v3"], "text": ["Metformin …", "Kino", "Fußball", "Vitamin D", "Wetter"],
                  "shard": ["s"] * 5, "is_validation": [True, False, True, True, True]}).write_parquet(path)
    return str(path)


def test_export_writes_import_tasks_and_interface(tmp_path, sample):
    summary = export_validation(sample, str(tmp_path / "tasks.json"), str(tmp_path / "config.xml"))
    tasks = json.loads((tmp_path / "tasks.json").read_text())
    assert summary == {"tasks": 4}
    assert tasks[0] == {"data": {"text": "Metformin …", "doc_id": "v0"}}  # the documented import shape
    assert [t["data"]["doc_id"] for t in tasks] == ["v0", "v1", "v2", "v3"]
    config = (tmp_path / "config.xml").read_text()
    assert config == LABEL_CONFIG and '<Choices name="medical" toName="text"' in config
    assert '<Text name="text" value="$text"/>' in config  # tasks carry data.text


def test_import_reads_every_annotator(tmp_path):
    labels, counts = read_export(str(EXPORT))
    assert labels.columns == ["id", "chris@example.org", "user1", "user2"]
    assert labels["id"].to_list() == ["v0", "v1", "v2", "v3"]
    assert labels["user1"].to_list() == [1, 0, 1, 0]
    assert labels["user2"].to_list() == [1, 0, 0, None]  # v3 submitted without a choice
    assert labels["chris@example.org"].to_list() == [1, None, 1, 0]  # v1 skipped
    assert counts == {"tasks": 4, "annotations": 12 - 1 - 1, "cancelled": 1, "no_choice": 1}


def test_round_trip_through_the_cli(tmp_path, sample):
    assert run_cli(["labelstudio", "export", sample, "--out", str(tmp_path / "tasks.json")]) == 0
    assert (tmp_path / "label_config.xml").exists()
    out = tmp_path / "validation.jsonl"
    assert run_cli(["labelstudio", "import", str(EXPORT), "--out", str(out)]) == 0
    first = json.loads(out.read_text().splitlines()[0])
    assert first == {"id": "v0", "labels": {"chris@example.org": 1, "user1": 1, "user2": 1}}
    back = read_validation(str(out))  # the validation file the workflow reads
    assert back.equals(read_export(str(EXPORT))[0])
    # the exported tasks' doc_ids are the documents that come back
    sent = [t["data"]["doc_id"] for t in json.loads((tmp_path / "tasks.json").read_text())]
    assert back["id"].to_list() == sent


def test_import_merges_with_an_existing_file(tmp_path):
    old = tmp_path / "old.jsonl"
    old.write_text('{"id": "v0", "label": 1}\n{"id": "v9", "label": 0}\n')
    out = tmp_path / "merged.jsonl"
    summary = import_export(str(EXPORT), str(out), merge=str(old))
    merged = read_validation(str(out))
    assert summary["annotators"] == ["human", "chris@example.org", "user1", "user2"]
    assert sorted(merged.columns) == ["chris@example.org", "human", "id", "user1", "user2"]
    assert merged["id"].to_list() == ["v0", "v9", "v1", "v2", "v3"]
    assert merged["human"].to_list() == [1, 0, None, None, None]
    assert merged.filter(pl.col("id") == "v9")["user1"].to_list() == [None]


def test_draw_documents_is_seeded(tmp_path, sample):
    out = tmp_path / "t.json"
    run_cli(["labelstudio", "export", sample, "--out", str(out), "--n", "2", "--seed", "3"])
    first = [t["data"]["doc_id"] for t in json.loads(out.read_text())]
    run_cli(["labelstudio", "export", sample, "--out", str(out), "--n", "2", "--seed", "3"])
    assert [t["data"]["doc_id"] for t in json.loads(out.read_text())] == first and len(first) == 2


def _edit(tmp_path, change) -> str:
    data = json.loads(EXPORT.read_text())
    change(data)
    path = tmp_path / "export.json"
    path.write_text(json.dumps(data))
    return str(path)


def test_import_errors_name_the_task(tmp_path):
    def no_doc_id(d):
        del d[1]["data"]["doc_id"]

    with pytest.raises(ValueError, match=r"task 102 has no data\.doc_id"):
        read_export(_edit(tmp_path, no_doc_id))

    def unknown_choice(d):
        d[0]["annotations"][0]["result"][0]["value"]["choices"] = ["maybe"]

    with pytest.raises(ValueError, match=r"task 101: expected one of \['medical', 'not_medical'\]"):
        read_export(_edit(tmp_path, unknown_choice))

    def twice(d):
        d[2]["annotations"].append(copy.deepcopy(d[2]["annotations"][0]))

    with pytest.raises(ValueError, match=r"task 103 \(doc_id v2\) has two annotations by user1"):
        read_export(_edit(tmp_path, twice))
    with pytest.raises(ValueError, match="expected a JSON list of tasks"):
        read_export(_dict_export(tmp_path))
    old = tmp_path / "old.jsonl"
    old.write_text('{"id": "v2", "labels": {"user2": 1}}\n')  # user2 said 0 for v2 in the export
    with pytest.raises(ValueError, match=r"annotator user2 labels document\(s\) \['v2'\] differently"):
        import_export(str(EXPORT), str(tmp_path / "o.jsonl"), merge=str(old))


def _dict_export(tmp_path) -> str:
    path = tmp_path / "dict.json"
    path.write_text('{"id": 1, "data": {}}')
    return str(path)


def test_cli_usage_errors(tmp_path, sample, capsys):
    """Bad input exits with code 2 and a message naming the file or option."""
    cases = [(["import", str(tmp_path / "nope.json"), "--out", str(tmp_path / "v.jsonl")], r"nope\.json does not exist"),
             (["export", sample, "--out", str(tmp_path / "t.json"), "--n", "0"], "--n must be at least 1"),
             (["export", sample, "--out", str(tmp_path / "t.json"), "--n", "9"],
              r"9 documents requested but the sample has 5")]
    for argv, message in cases:
        assert run_cli(["labelstudio", *argv]) == 2
        err = capsys.readouterr().err
        assert err.startswith("medadapt labelstudio: error: ") and re.search(message, err), err

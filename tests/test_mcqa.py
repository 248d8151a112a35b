"""MCQA stage: task YAMLs (indexed by lm-eval's real TaskManager), BioInstructQA conversion, and a
one-shot lm-eval run of the tiny model on a 6-item task."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from medadapt.mcqa import convert_bioinstructqa, evaluate, resolve_tasks, task_manager

TASKS_DIR = Path(__file__).resolve().parents[1] / "workflow" / "tasks"
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


def test_convert_bioinstructqa():
    rows = [
        {"identifier": "q1", "question_translated": " Was ist X? ", "correct_answer_letter": "C",
         "options_translated": {"B": "zwei", "A": "eins", "D": "vier", "C": "drei"}},
        {"question_translated": "Was ist Y?", "correct_answer_letter": "a",
         "options_translated": ["eins", "zwei", "drei", "vier"]},
    ]
    out = convert_bioinstructqa(rows)
    assert out[0] == {"id": "q1", "question": "Was ist X?", "choices": ["eins", "zwei", "drei", "vier"],
                      "answer": 2}
    assert out[1]["answer"] == 0 and out[1]["id"] == "1"
    with pytest.raises(ValueError, match="row 0: missing field 'options_translated'"):
        convert_bioinstructqa([{"question_translated": "q", "correct_answer_letter": "A"}])
    with pytest.raises(ValueError, match="row 0: expected 4 options, got 5"):
        convert_bioinstructqa([{**rows[1], "options_translated": list("abcde")}])
    with pytest.raises(ValueError, match="correct_answer_letter 'E'"):
        convert_bioinstructqa([{**rows[1], "correct_answer_letter": "E"}])


@pytest.mark.slow
def test_evaluate_tiny_lm(tiny_lm, demo_root):
    out = demo_root / "mcqa" / "tiny.json"
    summary = evaluate(tiny_lm, [DEMO_TASK], str(TASKS_DIR), str(out), num_fewshot=1, backend="hf",
                       batch_size=4, limit=None, device="cpu", model_args_extra=None,
                       meta={"family": "tiny", "size": "xs", "ckpt": "base"})
    record = json.loads(out.read_text())
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

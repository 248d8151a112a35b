"""The demo's DAG (dry runs, no jobs run): pre-trained sources, the stand-in annotator and judge as
service jobs, and the vLLM judge server path, which the demo no longer takes, kept wired."""
from __future__ import annotations

from pathlib import Path

import yaml

from test_fit import dry_run, jobs

ROOT = Path(__file__).resolve().parents[1]
DEMO = yaml.safe_load((ROOT / "config" / "demo.yaml").read_text())


def test_demo_sources_are_pretrained_and_the_llms_are_served_stand_ins():
    text = dry_run("config/demo.yaml")
    pretrain = {job["output"][0]: job["input"] for job in jobs(text, "model_pretrain")}
    assert set(pretrain) == {f"results/models/tiny/{s}/base" for s in ("s", "m", "l")}
    assert not jobs(text, "model_base")
    files = DEMO["families"]["tiny"]["pretrain"]["sizes"]
    for size in ("s", "m", "l"):  # the tokenizer, then the size's files in the config's order
        listed = [f if isinstance(f, str) else f["path"] for f in files[size]["files"]]
        assert pretrain[f"results/models/tiny/{size}/base"] == ["results/models/tiny-tokenizer", *listed]
    servers = sorted(job["output"][0].split()[0] for job in jobs(text, "reference_server"))
    assert servers == ["results/servers/annotator.json", "results/servers/judge.json"]
    assert not jobs(text, "judge_server") and not [j for j in jobs(text, "aux_model")
                                                   if j["output"] == ["results/models/aux/judge"]]
    for job in jobs(text, "corpus_annotate"):
        assert "results/servers/annotator.json" in job["input"]
    judged = jobs(text, "judge")
    assert judged and all("results/servers/judge.json" in job["input"] for job in judged)


def test_a_vllm_served_judge_still_runs_as_a_service(tmp_path):
    """judge.serve with a model: the workflow builds the model and serves it with vLLM (judge_server);
    the annotator stays the stand-in."""
    cfg = yaml.safe_load((ROOT / "config" / "demo.yaml").read_text())
    cfg["judge"]["serve"] = {"model": {"tiny": {"hidden_size": 128, "num_hidden_layers": 2,
                                                "num_attention_heads": 2, "max_position_embeddings": 2048}},
                             "max_model_len": 1536}
    path = tmp_path / "demo-vllm-judge.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    text = dry_run(str(path))
    [server] = jobs(text, "judge_server")
    assert server["input"] == ["results/models/aux/judge"] and server["output"] == ["results/judge/server.json (service)"]
    judged = jobs(text, "judge")
    assert judged and all("results/judge/server.json" in job["input"] for job in judged)
    assert [job["output"][0].split()[0] for job in jobs(text, "reference_server")] == ["results/servers/annotator.json"]

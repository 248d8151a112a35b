"""Config validation: bad input fails before any job runs, naming the key."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from medadapt.config import ConfigError, Grid, config_reference, load, resolve, resolve_block
from workflow_dir import make_workdir, run_snakemake

ROOT = Path(__file__).resolve().parents[1]
DEMO = yaml.safe_load((ROOT / "config" / "demo.yaml").read_text())


def test_shipped_configs_are_valid():
    paper = Grid(load(ROOT / "config" / "config.yaml"))
    assert len(paper.ckpts()) == 18
    assert [s for f in paper.families() for s in paper.adapted(f)] == \
        ["0.5b", "1.5b", "3b", "7b", "0.6b", "1.7b", "4b", "8b"]
    assert paper.next_larger("qwen3", "8b") == "14b"
    assert len(paper.comparisons()) == 16
    demo = Grid(load(ROOT / "config" / "demo.yaml"))
    assert demo.ckpts() == ["c01", "c02", "c03"]


@pytest.mark.parametrize("mutate, message", [
    (lambda c: c["train"].update(lerning_rate=1e-3), "'lerning_rate' was unexpected"),
    (lambda c: c["train"].update(learning_rate=-2e-5), "train.learning_rate"),
    (lambda c: c["families"]["tiny"].update(adapt=["s", "xl"]), "families.tiny.adapt: 'xl'"),
    (lambda c: c["families"]["tiny"].update(adapt=["l"]), "no next-larger baseline"),
    (lambda c: c["merge"].update(t=1.5), "merge.t"),
    (lambda c: c.pop("judge"), "'judge' is a required property"),
])
def test_bad_values_name_the_key(mutate, message):
    cfg = copy.deepcopy(DEMO)
    mutate(cfg)
    with pytest.raises(ConfigError) as err:
        resolve(cfg)
    assert message in str(err.value)


def test_batch_must_split_over_the_gpus_of_every_size():
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    del cfg["families"]["qwen3"]["per_device_batch_size"]  # 64 GCDs x 4 > 128
    with pytest.raises(ConfigError, match="set families.qwen3.per_device_batch_size.8b"):
        resolve(cfg)
    cfg["families"]["qwen3"]["per_device_batch_size"] = {"8b": 2}
    cfg["families"]["qwen3"]["train_gpus"]["4b"] = 12  # 1.5 nodes of 8 GCDs
    with pytest.raises(ConfigError, match="train_gpus.4b: 12 GPUs is not a whole number of 8-GPU nodes"):
        resolve(cfg)


def test_snakemake_rejects_a_broken_config_before_any_job(tmp_path):
    cfg = copy.deepcopy(DEMO)
    cfg["train"]["learning_rate"] = -0.001
    cfg["corpus"]["sampel_size"] = 10
    bad = tmp_path / "demo.yaml"
    bad.write_text(yaml.safe_dump(cfg))
    proc = run_snakemake(make_workdir(tmp_path / "work"), "-n", "--configfile", str(bad), timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "train.learning_rate" in out and "sampel_size" in out
    assert str(bad) in out


def test_defaults_come_from_the_schema_and_match_snakemake_validate():
    """One place for defaults: a key left out takes the schema's default, filled exactly as
    snakemake.utils.validate(set_default=True) fills it."""
    from snakemake.utils import validate as snakemake_validate

    for name in ("config.yaml", "demo.yaml"):
        raw = yaml.safe_load((ROOT / "config" / name).read_text())
        ours = resolve(copy.deepcopy(raw), source=name)
        theirs = copy.deepcopy(raw)
        snakemake_validate(theirs, str(ROOT / "config" / "schema.yaml"), set_default=True)
        assert ours == theirs
    cfg = copy.deepcopy(DEMO)
    del cfg["merge"], cfg["fit"], cfg["judge"]["max_retries"]
    resolve(cfg)
    assert cfg["merge"] == {"method": "slerp", "t": 0.5, "dtype": "bfloat16"}
    assert cfg["fit"] == {"n_boot": 1000, "order_effect": True} and cfg["judge"]["max_retries"] == 6
    assert cfg["mcqa"]["limit"] is None and cfg["families"]["tiny"]["eval_gpus"] == {}


def test_a_block_alone_resolves_with_its_defaults():
    block = resolve_block("judge", {"model": "gpt-4.1-mini"}, source="judge.yaml")
    assert block["max_concurrency"] == 8 and block["base_url"] is None and block["use_json_schema"] is True
    with pytest.raises(ConfigError, match=r"judge.yaml: invalid configuration\n  judge.max_tokens"):
        resolve_block("judge", {"model": "m", "max_tokens": 0}, source="judge.yaml")
    with pytest.raises(ConfigError, match="judge: .model. is a required property"):
        resolve_block("judge", {}, source="judge.yaml")


def test_config_reference_is_in_sync_with_the_schema():
    text = (ROOT / "config" / "README.md").read_text()
    assert text == config_reference(), "config/README.md is stale: run `medadapt config-docs`"
    # every key of the schema appears, with its default
    assert "| `merge.dtype` | `float32` \\| `bfloat16` \\| `float16` | `bfloat16` |" in text
    assert "| `judge.serve.max_model_len` | integer [1, ] | `2048` |" in text


def test_every_schema_key_has_a_description():
    schema = yaml.safe_load((ROOT / "config" / "schema.yaml").read_text())
    missing = []

    def walk(node, path):
        for name, sub in node.get("properties", {}).items():
            key = f"{path}.{name}" if path else name
            if "description" not in sub and not path.startswith("$defs.tiny_arch"):
                missing.append(key)
            walk(sub, key)
        extra = node.get("additionalProperties")
        if isinstance(extra, dict):
            walk(extra, f"{path}.<name>")

    walk(schema, "")
    for name, node in schema["$defs"].items():
        walk(node, f"$defs.{name}")
    assert not missing, f"schema keys without a description: {missing}"

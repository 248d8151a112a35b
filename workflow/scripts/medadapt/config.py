"""Config loading: one schema defines every key, its default and its check; the grid derived from it.

`config/schema.yaml` is the single source of truth. `resolve` validates a config against it and fills
in the defaults (the JSON-schema FAQ's default-filling validator, which is what
`snakemake.utils.validate(..., set_default=True)` does for the workflow), then applies the cross-key
rules the schema cannot express. Everything downstream receives resolved values and restates no
default. Errors name the offending key (`train.learning_rate`) and say what was expected.
"""
from __future__ import annotations

import copy
import functools
from dataclasses import dataclass
from pathlib import Path

import jsonschema
import yaml

SCHEMA = Path(__file__).resolve().parents[3] / "config" / "schema.yaml"


class ConfigError(ValueError):
    pass


def _key(path) -> str:
    return ".".join(str(p) for p in path) or "<top level>"


@functools.cache
def load_schema(path: str | Path = SCHEMA) -> dict:
    return yaml.safe_load(Path(path).read_text())


def _with_defaults(validator_class):
    """A validator that fills each missing property with a deep copy of its schema default before
    validating it (so nested objects with `default: {}` get their own defaults filled too)."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if isinstance(subschema, dict) and "default" in subschema and name not in instance:
                    instance[name] = copy.deepcopy(subschema["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


_Validator = _with_defaults(jsonschema.Draft202012Validator)


def _check(instance, schema: dict, source: str, prefix: tuple = ()) -> None:
    errors = sorted(_Validator(schema).iter_errors(instance), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [f"  {_key(prefix + tuple(e.absolute_path))}: {e.message}" for e in errors[:10]]
        raise ConfigError(f"{source}: invalid configuration\n" + "\n".join(lines))


def schema_default(key: str, schema_path: str | Path = SCHEMA):
    """The schema's default of a dotted key (e.g. "fit.n_boot"), for tools outside the workflow."""
    node = load_schema(schema_path)
    for part in key.split("."):
        node = node["properties"][part]
    return node["default"]


def resolve(config: dict, source: str = "config", schema_path: str | Path = SCHEMA) -> dict:
    """Validate `config` in place against the schema, fill its defaults, check the grid; return it."""
    _check(config, load_schema(schema_path), source)
    check_grid(config, source)
    return config


def resolve_block(name: str, block: dict, source: str = "config",
                  schema_path: str | Path = SCHEMA) -> dict:
    """One top-level block (e.g. the `judge:` block of a YAML file) validated, defaults filled."""
    schema = load_schema(schema_path)
    if name not in schema["properties"]:
        raise ConfigError(f"{source}: unknown config block {name!r}")
    if not isinstance(block, dict):
        raise ConfigError(f"{source}: {name}: expected a mapping, got {type(block).__name__}")
    # The block's schema refers to the shared definitions ($defs) of the whole schema.
    sub = {**schema["properties"][name], "$defs": schema.get("$defs", {})}
    block = copy.deepcopy(block)
    _check(block, sub, source, prefix=(name,))
    return block


def check_grid(config: dict, source: str = "config") -> None:
    """Cross-key rules: platforms exist, every adapted size has a larger baseline, batches split."""
    problems = []
    has_tiny = False
    for fam, spec in config["families"].items():
        sizes = list(spec["models"])
        if spec["platform"] not in config["platforms"]:
            problems.append(f"families.{fam}.platform: '{spec['platform']}' is not defined under platforms")
        for size in spec["adapt"]:
            if size not in sizes:
                problems.append(f"families.{fam}.adapt: '{size}' is not one of models {sizes}")
            elif sizes.index(size) == len(sizes) - 1:
                problems.append(f"families.{fam}.adapt: '{size}' is the largest model, so it has no "
                                "next-larger baseline; list a larger model after it under models")
        for key in ("train_gpus", "eval_gpus", "per_device_batch_size"):
            for size in spec[key]:
                if size not in sizes:
                    problems.append(f"families.{fam}.{key}: '{size}' is not one of models {sizes}")
        problems += _batch_problems(config, fam, spec)
        pretrain = spec.get("pretrain")
        if pretrain is not None:
            if set(pretrain["sizes"]) != set(sizes):
                problems.append(f"families.{fam}.pretrain.sizes: {sorted(pretrain['sizes'])} must be "
                                f"exactly the family's models {sizes}")
            built = [size for size in sizes if "tiny" not in spec["models"][size]]
            if built:
                problems.append(f"families.{fam}.pretrain: pre-trains tiny models only; {built} are "
                                "not {tiny: ...}")
        has_tiny |= any("tiny" in m for m in spec["models"].values())
    if config["corpus"]["platform"] not in config["platforms"]:
        problems.append(f"corpus.platform: '{config['corpus']['platform']}' is not defined under platforms")
    has_tiny |= "tiny" in (config["judge"].get("serve") or {}).get("model", {})
    annot = config["corpus"]["annotator"]["model"]
    if "serve" in config["corpus"]["annotator"] and config["corpus"]["annotator"]["backend"] != "openai":
        problems.append("corpus.annotator.serve: a served annotator is reached over HTTP; set "
                        "corpus.annotator.backend: openai")
    has_tiny |= isinstance(annot, dict) and "tiny" in annot
    has_tiny |= "tiny" in config["corpus"]["classifier"]["base_model"]
    gen = config["generate"]
    if gen["prompts"] is None and "translate" not in gen:
        problems.append("generate: set generate.prompts (a JSONL file of prompts) or generate.translate "
                        "(the model that translates MedInstruct-test into the prompts)")
    translator = gen.get("translate", {}).get("model") if gen["prompts"] is None else None
    has_tiny |= isinstance(translator, dict) and "tiny" in translator
    modes = config["failure_modes"]
    if modes["language"] not in modes["languages"]:
        problems.append(f"failure_modes.languages: must include failure_modes.language "
                        f"'{modes['language']}'")
    if has_tiny and "tiny_tokenizer" not in config:
        problems.append("tiny_tokenizer: required when any model is built locally ({tiny: ...})")
    judge = config["judge"]
    if not judge["batch"] and judge["max_concurrency"] > judge["max_requests_in_flight"]:
        problems.append(f"judge.max_concurrency: {judge['max_concurrency']} requests of one job exceed "
                        f"judge.max_requests_in_flight {judge['max_requests_in_flight']} of all jobs together")
    if problems:
        raise ConfigError(f"{source}: invalid configuration\n" + "\n".join(f"  {p}" for p in problems))


def per_device_batch_size(config: dict, family: str, size: str) -> int:
    return config["families"][family]["per_device_batch_size"].get(size, config["train"]["per_device_batch_size"])


def _batch_problems(config: dict, fam: str, spec: dict) -> list[str]:
    """Effective batch = per-device batch × GPUs × accumulation must hold exactly for every size."""
    per_node = config["platforms"].get(spec["platform"], {}).get("gpus_per_node", 0)
    effective = config["train"]["effective_batch_size"]
    problems = []
    for size in spec["adapt"]:
        gpus = max(1, spec["train_gpus"].get(size, 1))
        per_device = per_device_batch_size(config, fam, size)
        if effective % (per_device * gpus):
            problems.append(f"families.{fam}: size {size} trains on {gpus} GPUs with per_device_batch_size "
                            f"{per_device}, which does not divide train.effective_batch_size {effective}; "
                            f"set families.{fam}.per_device_batch_size.{size}")
        if per_node and gpus > per_node and gpus % per_node:
            problems.append(f"families.{fam}.train_gpus.{size}: {gpus} GPUs is not a whole number of "
                            f"{per_node}-GPU nodes")
    return problems


def read_yaml(path: str | Path) -> dict:
    try:
        data = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def load(path: str | Path) -> dict:
    """A whole config file, resolved (validated, defaults filled, grid checked)."""
    return resolve(read_yaml(path), source=str(path))


@dataclass(frozen=True)
class Grid:
    """The study grid: which models exist, which are adapted, and their baselines."""
    config: dict

    def ckpts(self) -> list[str]:
        from medadapt.train.schedule import ckpt_names

        return ckpt_names(self.config["train"]["checkpoints"]["count"])

    def families(self) -> list[str]:
        return list(self.config["families"])

    def sizes(self, family: str) -> list[str]:
        return list(self.config["families"][family]["models"])

    def adapted(self, family: str) -> list[str]:
        return list(self.config["families"][family]["adapt"])

    def next_larger(self, family: str, size: str) -> str:
        sizes = self.sizes(family)
        return sizes[sizes.index(size) + 1]

    def baseline_size(self, family: str, size: str, baseline: str) -> str:
        if baseline == "source":
            return size
        if baseline == "next":
            return self.next_larger(family, size)
        raise ConfigError(f"baseline must be 'source' or 'next', got '{baseline}'")

    def model_spec(self, family: str, size: str) -> dict:
        return self.config["families"][family]["models"][size]

    def eval_models(self) -> list[tuple[str, str, str]]:
        """Every model that gets MCQA: bases of all sizes, raw and merged checkpoints of adapted ones."""
        out = []
        for fam in self.families():
            for size in self.sizes(fam):
                out.append((fam, size, "base"))
            for size in self.adapted(fam):
                out += [(fam, size, c) for c in self.ckpts()]
                out += [(fam, size, f"raw-{c}") for c in self.ckpts()]
        return out

    def comparisons(self) -> list[tuple[str, str, str]]:
        """(family, size, baseline) for every adapted size and both baselines."""
        return [(f, s, b) for f in self.families() for s in self.adapted(f) for b in ("source", "next")]

    def judged_ckpts(self, baseline: str) -> list[str]:
        """The checkpoints judged and fitted against a baseline. The source model never plays itself:
        against the source only the merged checkpoints play (its own point, 0.5 by definition, is
        written unfitted); against the next larger model the source plays too (the 0-token point)."""
        return self.ckpts() if baseline == "source" else ["base", *self.ckpts()]

    def platform(self, family: str) -> dict:
        return self.config["platforms"][self.config["families"][family]["platform"]]


# ---- the config reference (config/README.md), generated from the schema ---------------------------

def _deref(node: dict, schema: dict) -> dict:
    """Merge a `$ref` target under the node's own keywords (the node's default/description win)."""
    while isinstance(node, dict) and "$ref" in node:
        target = schema
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def _type(node: dict) -> str:
    if "const" in node:
        return f"`{node['const']}`"
    if "enum" in node:
        return " \\| ".join(f"`{v}`" for v in node["enum"])
    if "oneOf" in node:
        return " or ".join(_type(n) for n in node["oneOf"] if "type" in n or "enum" in n) or "object"
    kind = node.get("type", "object")
    kinds = kind if isinstance(kind, list) else [kind]
    text = " \\| ".join("null" if k == "null" else k for k in kinds)
    lo = node.get("minimum", node.get("exclusiveMinimum"))
    hi = node.get("maximum", node.get("exclusiveMaximum"))
    if lo is not None or hi is not None:
        left = "(" if "exclusiveMinimum" in node else "["
        right = ")" if "exclusiveMaximum" in node else "]"
        text += f" {left}{'' if lo is None else lo}, {'' if hi is None else hi}{right}"
    return text


_SHARED = ("/model_spec", "/tiny_arch", "/platform")


def _rows(node: dict, schema: dict, path: str, required: set[str]) -> list[tuple[str, str, str, str]]:
    rows = []
    for name, raw in node.get("properties", {}).items():
        sub = _deref(raw, schema)
        if str(raw.get("$ref", "")).endswith(_SHARED):  # described once, in its own section
            sub = {k: v for k, v in sub.items() if k not in ("properties", "additionalProperties")}
        key = f"{path}.{name}" if path else name
        if "default" in sub:
            default = f"`{yaml.safe_dump(sub['default'], default_flow_style=True, width=1000).strip()}`"
            default = default.replace("`...`", "").replace("\n...", "")
        else:
            default = "**required**" if name in required else "(optional)"
        rows.append((key, _type(sub), default, sub.get("description", "")))
        if "properties" in sub:
            rows += _rows(sub, schema, key, set(sub.get("required", [])))
        extra = sub.get("additionalProperties")
        if isinstance(extra, dict) and not str(extra.get("$ref", "")).endswith(_SHARED) \
                and "properties" in _deref(extra, schema):
            inner = _deref(extra, schema)
            rows += _rows(inner, schema, f"{key}.<name>", set(inner.get("required", [])))
    return rows


def config_reference(schema_path: str | Path = SCHEMA) -> str:
    """Markdown reference of every config key (type, default, description), from the schema."""
    schema = load_schema(schema_path)
    lines = ["# Configuration reference", "",
             "Generated from `config/schema.yaml` by `medadapt config-docs`; a test keeps it in sync, "
             "so edit the schema, not this file.", "",
             schema.get("description", "").strip(), "",
             "`config/config.yaml` is the paper's grid, `config/demo.yaml` the embedded tiny default. "
             "`--configfile X` replaces the default config (it is not merged into it); a key you leave "
             "out takes the default below.", ""]
    top_required = set(schema.get("required", []))
    for name, node in schema["properties"].items():
        rows = _rows({"properties": {name: node}}, schema, "", top_required)
        block, keys = rows[0], rows[1:]
        head = [f"## `{name}`", ""]
        if keys:  # a block: its description above its keys
            need = "required" if block[2] == "**required**" else "optional"
            head += [f"{block[3]} ({need} block)", ""]
        lines += head + ["| key | type | default | description |", "|---|---|---|---|"]
        lines += [f"| `{key}` | {typ} | {default} | {desc} |" for key, typ, default, desc in keys or [block]]
        lines.append("")
    for name, title in (("platform", "A platform (`platforms.nvidia`, `.amd`, `.cpu`)"),
                        ("model_spec", "A model spec (`{source: ...}` or `{tiny: ...}`)"),
                        ("tiny_arch", "A tiny model's shape (`tiny:`)")):
        node = schema["$defs"][name]
        lines += [f"## {title}", "", node.get("description", ""), "",
                  "| key | type | default | description |", "|---|---|---|---|"]
        lines += [f"| `{key}` | {typ} | {default} | {desc} |"
                  for key, typ, default, desc in _rows(node, schema, "", set(node.get("required", [])))]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"

"""Which library function runs each workflow rule (its stage), by rule name.

`medadapt.runtime.run_job` looks the rule up here and binds the function's parameters by name from
the rule's output, input and params, so a rule and its stage share one vocabulary. Functions are
imported only when their rule runs (a job imports vLLM, torch or lm-eval only if it needs them).
"""
from __future__ import annotations

import importlib
from typing import Any, Callable

STAGES = {
    # models
    "tiny_tokenizer": "medadapt.models.build:build_tokenizer",
    "model_base": "medadapt.models.build:build_model",
    "aux_model": "medadapt.models.build:build_model",
    "model_pretrain": "medadapt.demo.pretrain:pretrain_tiny",
    "reference_server": "medadapt.llm.servers.reference:serve",
    # corpus
    "corpus_shards": "medadapt.sources:list_shards",
    "corpus_labelling_round": "medadapt.corpus.labelstudio:labelling_round",
    "corpus_sample": "medadapt.corpus.sample:stratified_sample",
    "corpus_annotate": "medadapt.corpus.annotate:annotate",
    "corpus_classifier": "medadapt.corpus.classifier:train_classifier",
    "corpus_classify": "medadapt.corpus.classify:classify_shards",
    "corpus_shard_stats": "medadapt.corpus.stats:shard_stats",
    "corpus_filter": "medadapt.corpus.filter:filter_corpus",
    "corpus_validate": "medadapt.corpus.validate:validate",
    "corpus_labelstudio": "medadapt.corpus.labelstudio:export_validation",
    # training
    "pack": "medadapt.train.pack:pack",
    "train": "medadapt.train.trainer:train",
    "train_log": "medadapt.train.records:write_log",
    "merge": "medadapt.merge:slerp",
    # evaluation
    "eval_prompts": "medadapt.sources:prepare_prompts",
    "eval_medinstruct": "medadapt.sources:fetch_medinstruct",
    "eval_translate": "medadapt.translate:translate_prompts",
    "eval_hub_datasets": "medadapt.sources:prefetch_hub_datasets",
    "eval_medqa_de": "medadapt.sources:prepare_medqa_de",
    "mcqa": "medadapt.mcqa:evaluate",
    "generate": "medadapt.generate:generate",
    "failure_modes": "medadapt.failure_modes:failure_modes",
    "judge_server": "medadapt.llm.servers.vllm:serve",
    "judge": "medadapt.judge.pairs:judge_pair",
    "fit": "medadapt.fit:fit_comparison",
    # report
    "tables": "medadapt.tables:write_tables",
    "figures": "medadapt.figures:write_figures",
    "failure_mode_figures": "medadapt.figures.failure_modes:write_failure_mode_figure",
    "judge_examples": "medadapt.tables.examples:write_examples",
}


def stage_function(rule: str) -> Callable[..., Any]:
    try:
        target = STAGES[rule]
    except KeyError:
        raise ValueError(f"no stage for rule {rule!r}; known rules: {sorted(STAGES)}") from None
    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)

# Model sources: hub snapshots (local rules: they run where the internet is, e.g. a login node) or
# tiny models built locally from configs (demo, CI). Compute jobs then load these directories offline.


localrules:
    tiny_tokenizer,
    model_base,
    aux_model,


rule tiny_tokenizer:
    input:
        texts=lambda wc: texts(config["tiny_tokenizer"]["texts"]),
    output:
        out_dir=directory(f"{R}/models/tiny-tokenizer"),
    log:
        log("models/tiny-tokenizer"),
    conda:
        "../envs/data.yaml"
    params:
        vocab_size=config.get("tiny_tokenizer", {}).get("vocab_size"),
    script:
        ENTRY


rule model_base:
    input:
        tokenizer=lambda wc: needs_tokenizer(GRID.model_spec(wc.family, wc.size)),
    output:
        out_dir=directory(f"{R}/models/{{family}}/{{size}}/base"),
    log:
        log("models/{family}/{size}/base"),
    wildcard_constraints:
        family=BUILT_FAMILIES,
    conda:
        "../envs/data.yaml"
    params:
        kind="causal_lm",
        spec=lambda wc: GRID.model_spec(wc.family, wc.size),
        seed=model_seed,
        online=True,
    script:
        ENTRY


# A family with `pretrain` (the demo): each tiny model is built and pre-trained on its size's files
# (seeded), so that a source knows the language but not what CPT will teach it.
rule model_pretrain:
    input:
        tokenizer_dir=f"{R}/models/tiny-tokenizer",
        files=pretrain_files,
    output:
        out_dir=directory(f"{R}/models/{{family}}/{{size}}/base"),
    log:
        log("models/{family}/{size}/base"),
    wildcard_constraints:
        family=PRETRAINED_FAMILIES,
    conda:
        "../envs/train.yaml"
    threads: 1
    params:
        arch=lambda wc: GRID.model_spec(wc.family, wc.size)["tiny"],
        repeats=pretrain_repeats,
        steps=lambda wc: pretrain_block(wc)["sizes"][wc.size]["steps"],
        learning_rate=lambda wc: pretrain_block(wc)["learning_rate"],
        batch_size=lambda wc: pretrain_block(wc)["batch_size"],
        seq_len=lambda wc: pretrain_block(wc)["seq_len"],
        seed=model_seed,
    script:
        ENTRY


rule aux_model:
    input:
        tokenizer=aux_tokenizer,
    output:
        out_dir=directory(f"{R}/models/aux/{{name}}"),
    log:
        log("models/aux/{name}"),
    wildcard_constraints:
        name="annotator|classifier-base|judge|translator",
    priority: CRITICAL_PATH
    conda:
        "../envs/data.yaml"
    params:
        kind=lambda wc: "classifier" if wc.name == "classifier-base" else "causal_lm",
        spec=lambda wc: aux_spec(wc.name),
        texts=aux_texts,
        seed=aux_seed,
        online=True,
    script:
        ENTRY

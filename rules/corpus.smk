# Corpus filtering (the paper's Appendix C): stratified sample → zero-shot LLM labels → XLM-R
# classifier → every shard classified → FineMed-de, validated against human labels.


checkpoint corpus_shards:
    output:
        out=f"{R}/corpus/shards.json",
    log:
        log("corpus/shards"),
    localrule: True
    conda:
        "../envs/data.yaml"
    params:
        shards=config["corpus"]["shards"],
        online=True,
    script:
        ENTRY


rule corpus_sample:
    input:
        shards=lambda wc: list(shard_paths().values()),
    output:
        out=f"{R}/corpus/sample.parquet",
    log:
        log("corpus/sample"),
    conda:
        "../envs/data.yaml"
    params:
        validation_file=config["corpus"]["validation"],  # a user file: checked by the stage
        n=config["corpus"]["sample_size"],
        seed=config["seed"],
    script:
        ENTRY


rule corpus_annotate:
    input:
        annotator_model,
        sample=f"{R}/corpus/sample.parquet",
    output:
        out=f"{R}/corpus/annotations/chunk-{{chunk}}.parquet",
    log:
        log("corpus/annotate/chunk-{chunk}"),
    conda:
        "../envs/vllm.yaml"
    threads: 2
    resources:
        **CLUSTER.corpus_resources(
            config["corpus"]["annotator"]["tensor_parallel_size"]
        ),
        runtime=720,
    params:
        chunk=lambda wc: int(wc.chunk),
        n_chunks=config["corpus"]["annotator"]["chunks"],
        annotator=annotator_config,
        cache_dir=f"{R}/corpus/annotations/cache",
        ledger=ANNOTATION_LEDGER,
    script:
        ENTRY


rule corpus_classifier:
    input:
        sample=f"{R}/corpus/sample.parquet",
        annotations=ANNOTATIONS,
        base_model=f"{R}/models/aux/classifier-base",
    output:
        out_dir=directory(f"{R}/corpus/classifier"),
    log:
        log("corpus/classifier"),
    conda:
        "../envs/train.yaml"
    threads: 2
    resources:
        **CLUSTER.corpus_resources(1),
        runtime=720,
    params:
        classifier=config["corpus"]["classifier"],
        seed=config["seed"],
    script:
        ENTRY


rule corpus_classify:
    input:
        shard=lambda wc: shard_paths()[wc.shard],
        model_dir=f"{R}/corpus/classifier",
    output:
        out=f"{R}/corpus/scores/{{shard}}.parquet",
    log:
        log("corpus/classify/{shard}"),
    conda:
        "../envs/train.yaml"
    threads: 1
    resources:
        **CLUSTER.corpus_resources(1),
        runtime=240,
    params:
        batch_size=config["corpus"]["classify"]["batch_size"],
        max_length=config["corpus"]["classify"]["max_length"],
    script:
        ENTRY


rule corpus_filter:
    input:
        shards=lambda wc: list(shard_paths().values()),
        scores=all_scores,
    output:
        out=f"{R}/corpus/finemed.parquet",
        stats_out=report(
            f"{R}/tables/corpus_stats.csv",
            caption="../workflow/report/corpus_stats.rst",
            category="Corpus",
        ),
    log:
        log("corpus/filter"),
    conda:
        "../envs/data.yaml"
    params:
        threshold=config["corpus"]["threshold"],
    script:
        ENTRY


rule corpus_validate:
    input:
        sample=f"{R}/corpus/sample.parquet",
        annotations=ANNOTATIONS,
        scores=all_scores,
    output:
        out=report(
            f"{R}/tables/corpus_validation.csv",
            caption="../workflow/report/corpus_validation.rst",
            category="Corpus",
        ),
    log:
        log("corpus/validate"),
    conda:
        "../envs/data.yaml"
    params:
        validation_file=config["corpus"]["validation"],  # a user file: checked by the stage
        threshold=config["corpus"]["threshold"],
    script:
        ENTRY

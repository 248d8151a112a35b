# Corpus filtering (the paper's Appendix C): stratified sample → zero-shot LLM labels → XLM-R
# classifier → every shard classified → FineMed-de, validated against human labels.


checkpoint corpus_shards:
    output:
        out=f"{R}/corpus/shards.json",
    log:
        log("corpus/shards"),
    priority: CRITICAL_PATH
    localrule: True
    conda:
        "../envs/data.yaml"
    params:
        shards=config["corpus"]["shards"],
        online=True,
    script:
        ENTRY


# The first labelling round from nothing: without the human labels (corpus.validation), draw the
# documents to label, export them, and stop the corpus chain with what to do next; once the labels
# exist this rule is not planned. Its exports are not outputs (a failed job's outputs are deleted).
rule corpus_labelling_round:
    input:
        shards=lambda wc: list(shard_paths().values()),
    output:
        out=LABELLING_GATE,
    log:
        log("corpus/labelling_round"),
    localrule: True
    conda:
        "../envs/data.yaml"
    params:
        n=config["corpus"]["validation_size"],
        seed=config["seed"],
        validation_file=config["corpus"]["validation"],
    message:
        "No human labels yet ({params.validation_file}): drawing the documents to label beside {output.out}"
    script:
        ENTRY


rule corpus_sample:
    input:
        labelling_gate,
        shards=lambda wc: list(shard_paths().values()),
    output:
        out=f"{R}/corpus/sample.parquet",
    log:
        log("corpus/sample"),
    priority: CRITICAL_PATH
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
        server_file=ANNOTATOR_SERVER_FILE,
    output:
        out=f"{R}/corpus/annotations/chunk-{{chunk}}.parquet",
    log:
        log("corpus/annotate/chunk-{chunk}"),
    priority: CRITICAL_PATH
    conda:
        "../envs/vllm.yaml"
    threads: ANNOTATE_THREADS
    resources:
        **CLUSTER.corpus_resources(
            config["corpus"]["annotator"]["tensor_parallel_size"]
        ),
        runtime=720,
        entry=gpu_entry("corpus"),
    params:
        **stage_params(
            run=dict(
                annotator=lambda wc: run_knobs(
                    annotator_config(wc), "corpus.annotator"
                )
            ),
            annotator=lambda wc: study(annotator_config(wc), "corpus.annotator"),
            chunk=lambda wc: int(wc.chunk),
            n_chunks=config["corpus"]["annotator"]["chunks"],
            cache_dir=f"{R}/corpus/annotations/cache",
            ledger=ANNOTATION_LEDGER,
        ),
    shell:
        "{resources.entry} stage corpus_annotate --job {params.job:q} --log-file {log:q} >> {log:q} 2>&1"


rule corpus_classifier:
    input:
        sample=f"{R}/corpus/sample.parquet",
        annotations=ANNOTATIONS,
        base_model=f"{R}/models/aux/classifier-base",
    output:
        out_dir=directory(f"{R}/corpus/classifier"),
    log:
        log("corpus/classifier"),
    priority: CRITICAL_PATH
    conda:
        "../envs/train.yaml"
    threads: CORPUS_GPU_THREADS
    resources:
        **CLUSTER.corpus_resources(1),
        runtime=720,
        entry=gpu_entry("corpus"),
    params:
        **stage_params(
            classifier=config["corpus"]["classifier"],
            seed=config["seed"],
        ),
    shell:
        "{resources.entry} stage corpus_classifier --job {params.job:q} --log-file {log:q} >> {log:q} 2>&1"


# Shards are scored in groups of corpus.classify.shards_per_job (one job per group), so a cluster
# sees hundreds of jobs rather than one per shard. Finished shards are kept outside the outputs (in
# parts_dir), so a failed group job loses nothing that finished, and its rerun skips those shards.
rule corpus_classify:
    input:
        shards=group_shard_paths,
        model_dir=f"{R}/corpus/classifier",
    output:
        out_dir=directory(f"{R}/corpus/scores/group-{{group}}"),
    log:
        log("corpus/classify/group-{group}"),
    wildcard_constraints:
        group=r"\d+",
    priority: CRITICAL_PATH
    conda:
        "../envs/train.yaml"
    threads: CLUSTER.corpus_threads(1)
    resources:
        **CLUSTER.corpus_resources(1),
        runtime=240,
        entry=gpu_entry("corpus"),
    params:
        **stage_params(
            names=group_shard_names,
            parts_dir=CLASSIFY_PARTS,
            max_length=config["corpus"]["classify"]["max_length"],
            batch_tokens=config["corpus"]["classify"]["batch_tokens"],
            window=config["corpus"]["classify"]["window"],
        ),
    shell:
        "{resources.entry} stage corpus_classify --job {params.job:q} --log-file {log:q} >> {log:q} 2>&1"


# Per-shard statistics (tokens per family, score bins), beside classification and as parallel.
rule corpus_shard_stats:
    input:
        shards=group_shard_paths,
        scores=f"{R}/corpus/scores/group-{{group}}",
        tokenizers=FAMILY_TOKENIZERS,
    output:
        out=f"{R}/corpus/stats/group-{{group}}.parquet",
    log:
        log("corpus/shard_stats/group-{group}"),
    wildcard_constraints:
        group=r"\d+",
    conda:
        "../envs/data.yaml"
    threads: CLUSTER.corpus_threads(0)
    resources:
        **CLUSTER.corpus_resources(0),
        runtime=240,
    params:
        names=group_shard_names,
        families=GRID.families(),
        threshold=config["corpus"]["threshold"],
    script:
        ENTRY


rule corpus_filter:
    input:
        shards=all_shard_paths,
        scores=all_scores,
        stats=all_shard_stats,
        tokenizers=FAMILY_TOKENIZERS,
    output:
        out=f"{R}/corpus/finemed.parquet",
        stats_out=report(
            f"{R}/tables/corpus_stats.csv",
            caption="../workflow/report/corpus_stats.rst",
            category="Corpus",
        ),
    log:
        log("corpus/filter"),
    priority: CRITICAL_PATH
    conda:
        "../envs/data.yaml"
    threads: config["corpus"]["filter"]["threads"]
    resources:
        **CLUSTER.filter_resources(),
        runtime=lambda wc, input: CLUSTER.filter_runtime(input.size_mb),
    params:
        names=all_shard_names,
        families=GRID.families(),
        threshold=config["corpus"]["threshold"],
    script:
        ENTRY


rule corpus_validate:
    input:
        sample=f"{R}/corpus/sample.parquet",
        annotations=ANNOTATIONS,
        scores=all_scores,
        classifier_dir=f"{R}/corpus/classifier",
    output:
        out=report(
            f"{R}/tables/corpus_validation.csv",
            caption="../workflow/report/corpus_validation.rst",
            category="Corpus",
        ),
        agreement_out=report(
            f"{R}/tables/corpus_agreement.csv",
            caption="../workflow/report/corpus_agreement.rst",
            category="Corpus",
        ),
        pr_png=report(
            f"{R}/figures/corpus/pr_curve.png",
            caption="../workflow/report/corpus_pr_curve.rst",
            category="Corpus",
        ),
        pr_svg=f"{R}/figures/corpus/pr_curve.svg",
    log:
        log("corpus/validate"),
    conda:
        "../envs/report.yaml"
    params:
        validation_file=config["corpus"]["validation"],  # a user file: checked by the stage
        threshold=config["corpus"]["threshold"],
    script:
        ENTRY


# The validation documents as Label Studio tasks, for more annotators (`medadapt labelstudio`).
rule corpus_labelstudio:
    input:
        sample=f"{R}/corpus/sample.parquet",
    output:
        out_tasks=f"{R}/corpus/labelstudio/tasks.json",
        out_config=f"{R}/corpus/labelstudio/label_config.xml",
    log:
        log("corpus/labelstudio"),
    localrule: True
    conda:
        "../envs/data.yaml"
    script:
        ENTRY

# Continual pre-training: pack FineMed-de with each family's tokenizer, train one epoch saving
# log-spaced checkpoints (raw-cNN), merge each with its source by SLERP (cNN).


rule pack:
    input:
        corpus=f"{R}/corpus/finemed.parquet",
        tokenizer_dir=pack_tokenizer,
    output:
        out_dir=directory(f"{R}/data/{{family}}/packed"),
    log:
        log("data/{family}/pack"),
    conda:
        "../envs/data.yaml"
    threads: lambda wc: CLUSTER.threads("pack", wc.family)
    resources:
        **CLUSTER.by_wildcards("pack"),
        runtime=720,
    params:
        seq_len=config["train"]["seq_len"],
        seed=config["seed"],
    script:
        ENTRY


# A shell rule, so that multi-GPU runs wrap the same stage in torchrun (one node) or srun + torchrun.
rule train:
    input:
        model=model_dir("{family}", "{size}", "base"),
        packed=f"{R}/data/{{family}}/packed",
    output:
        # the log first: provenance goes beside the first output
        log_csv=f"{R}/train/{{family}}/{{size}}/checkpoints.csv",
        ckpts=[directory(model_dir("{family}", "{size}", f"raw-{c}")) for c in CKPTS],
    log:
        log("train/{family}/{size}"),
    conda:
        "../envs/train.yaml"
    threads: lambda wc: CLUSTER.threads("train", wc.family, wc.size)
    resources:
        **CLUSTER.by_wildcards("train"),
        runtime=2880,
    params:
        launch=lambda wc: f"{CLUSTER.launch_command(wc.family, wc.size, PYTHON)} {ENTRY}",
        job=stage_job(
            per_process=lambda wc, threads: CLUSTER.omp_threads(
                wc.family, wc.size, threads
            ),
            train=config["train"],
            seed=config["seed"],
            per_device_batch_size=lambda wc: per_device_batch_size(
                config, wc.family, wc.size
            ),
            family=lambda wc: wc.family,
            size=lambda wc: wc.size,
        ),
    shell:
        "{params.launch} stage train --job {params.job:q} --log-file {log:q} >> {log:q} 2>&1"


rule merge:
    input:
        checkpoint=model_dir("{family}", "{size}", "raw-{ckpt}"),
        source=model_dir("{family}", "{size}", "base"),
    output:
        out_dir=directory(model_dir("{family}", "{size}", "{ckpt}")),
    log:
        log("merge/{family}/{size}/{ckpt}"),
    wildcard_constraints:
        ckpt=r"c\d\d",
    conda:
        "../envs/merge.yaml"
    threads: 1
    resources:
        **CLUSTER.by_wildcards("merge"),
    params:
        t=config["merge"]["t"],
        dtype=config["merge"]["dtype"],
    script:
        ENTRY

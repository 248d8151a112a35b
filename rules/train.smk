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
    threads: lambda wc: CLUSTER.pack_threads(wc.family)
    resources:
        slurm_partition=CLUSTER.cpu_partition(),
        mem_mb=lambda wc: CLUSTER.pack_mem_mb(wc.family),
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
        ckpts=[directory(model_dir("{family}", "{size}", f"raw-{c}")) for c in CKPTS],
        log_csv=f"{R}/train/{{family}}/{{size}}/checkpoints.csv",
    log:
        log("train/{family}/{size}"),
    conda:
        "../envs/train.yaml"
    threads: gpu_threads("train", 2)
    resources:
        **gpu_resources("train"),
        runtime=2880,
    params:
        launch=lambda wc: CLUSTER.train_launch(wc.family, wc.size, PYTHON, ENTRY),
        job=stage_job(
            train=config["train"],
            seed=config["seed"],
            per_device_batch_size=lambda wc: per_device_batch_size(
                config, wc.family, wc.size
            ),
            meta=lambda wc: {"family": wc.family, "size": wc.size},
        ),
    shell:
        "{params.launch} stage train --job {params.job:q} --log {log:q} >> {log:q} 2>&1"


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
        mem_mb=lambda wc: CLUSTER.merge_mem_mb(wc.family),
    params:
        t=config["merge"]["t"],
        dtype=config["merge"]["dtype"],
    script:
        ENTRY

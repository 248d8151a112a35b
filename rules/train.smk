# Continual pre-training: pack FineMed-de with each family's tokenizer; train one epoch as a chain of
# checkpoint segments (job raw-cNN trains from checkpoint N-1's full state to checkpoint N), so every
# finished checkpoint is the output of a job that has succeeded and is merged and evaluated while
# the next segment trains; merge each with its source by SLERP (cNN). Training states live outside
# the declared outputs, in results/train/{family}/{size}/state (docs/ARCHITECTURE.md).


localrules:
    train_log,


rule pack:
    input:
        corpus=corpus_file,
        tokenizer_dir=pack_tokenizer,
    output:
        out_dir=directory(f"{R}/data/{{family}}/packed"),
    log:
        log("data/{family}/pack"),
    priority: CRITICAL_PATH
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


# A shell rule, so that multi-GPU segments wrap the same stage in torchrun (one node) or srun +
# torchrun (several nodes). The launch command is a resource: how a job runs (container, srun, the
# platform's environment) is no reason to retrain it, unlike the params.
rule train:
    input:
        model=model_dir("{family}", "{size}", "base"),
        packed=f"{R}/data/{{family}}/packed",
        previous=previous_checkpoint,
    output:
        out_dir=directory(model_dir("{family}", "{size}", "raw-{ckpt}")),
    log:
        log("train/{family}/{size}/{ckpt}"),
    wildcard_constraints:
        ckpt=r"c\d\d",
    priority: CRITICAL_PATH
    conda:
        "../envs/train.yaml"
    threads: lambda wc: CLUSTER.threads("train", wc.family, wc.size)
    resources:
        **CLUSTER.by_wildcards("train"),
        runtime=2880,
        launch=train_launch,
    # The study settings are recorded params (a change retrains); the run knobs (state saves,
    # logging) and where the state lives reach the job's JSON only (medadapt.settings).
    params:
        **stage_params(
            per_process=lambda wc, threads: CLUSTER.omp_threads(
                wc.family, wc.size, threads
            ),
            # The world size and the per-device batch only split the same global batches over
            # the processes (medadapt.train.engine): a state resumes at another world size.
            run=dict(
                state_dir=train_state_dir,
                train=run_knobs(config["train"], "train"),
                per_device_batch_size=lambda wc: per_device_batch_size(
                    config, wc.family, wc.size
                ),
                world_size=lambda wc: CLUSTER.train_processes(wc.family, wc.size),
                peak_tflops=lambda wc: CLUSTER.platform(wc.family)["peak_tflops"],
            ),
            ckpt=lambda wc: wc.ckpt,
            train=study(config["train"], "train"),
            seed=config["seed"],
            device=lambda wc: CLUSTER.device(wc.family),
            family=lambda wc: wc.family,
            size=lambda wc: wc.size,
        ),
    shell:
        "{resources.launch} stage train --job {params.job:q} --log-file {log:q} >> {log:q} 2>&1"


rule train_log:
    input:
        ckpts=run_checkpoints,
    output:
        log_csv=f"{R}/train/{{family}}/{{size}}/checkpoints.csv",
        history=f"{R}/train/{{family}}/{{size}}/history.json",
    log:
        log("train/{family}/{size}/log"),
    conda:
        "../envs/data.yaml"
    script:
        ENTRY


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
    threads: lambda wc: CLUSTER.threads("merge", wc.family)
    resources:
        **CLUSTER.by_wildcards("merge"),
    params:
        t=config["merge"]["t"],
        dtype=config["merge"]["dtype"],
    script:
        ENTRY

# Pairwise LLM-as-judge (the paper's Figure 4 prompt, both orders) and the Davidson fit.
# With `judge.serve`, a local OpenAI-compatible server runs as a Snakemake service job: it starts
# with its consumers (the judge jobs) and is terminated once they are done: vLLM serving a model
# (judge_server, here), or the demo's stand-in judge (reference_server, rules/servers.smk).


if not SERVE:

    # A remote API (OpenAI) needs the internet, which compute nodes often lack.
    localrules:
        judge,


if VLLM_JUDGE:

    # A shell rule started with exec: Snakemake terminates the service jobs it started as shell
    # commands, and exec lets its SIGTERM reach the server process, which then stops vLLM and
    # removes the marker.
    rule judge_server:
        input:
            model_dir=f"{R}/models/aux/judge",
        output:
            out=service(SERVER_FILE),
        log:
            log("judge/server"),
        conda:
            "../envs/vllm.yaml"
        threads: 1
        params:
            **stage_params(
                run=dict(port=SERVE["port"]),
                served_name=config["judge"]["model"],
                max_model_len=SERVE["max_model_len"],
            ),
            medadapt=MEDADAPT,
        shell:
            "exec {params.medadapt} stage judge_server --job {params.job:q} --log-file {log:q} > {log:q} 2>&1"


rule judge:
    input:
        candidate=f"{R}/generate/{{family}}/{{size}}/{{ckpt}}.jsonl",
        baseline=baseline_generation,
        server_file=JUDGE_SERVER_FILE,
    output:
        out=f"{R}/judge/{{family}}/{{size}}/{{ckpt}}_vs_{{baseline}}.parquet",
    log:
        log("judge/{family}/{size}/{ckpt}_vs_{baseline}"),
    wildcard_constraints:
        ckpt=r"base|c\d\d",
    conda:
        "../envs/judge.yaml"
    # An I/O-bound HTTP client; with the local server, 0 threads lets all judge jobs (one group with
    # the service) fit next to it; with the Batch API, all jobs submit and wait at once.
    threads: JUDGE_THREADS
    resources:
        **JUDGE_HOLDS,
    params:
        **split_settings(judge=("judge", config["judge"])),
        candidate_name=candidate_name,
        baseline_name=baseline_name,
        cache_dir=f"{R}/judge/cache",
        ledger=JUDGE_LEDGER,
    script:
        ENTRY


rule fit:
    input:
        judgments=fit_judgments,
    output:
        out=f"{R}/fit/{{family}}/{{size}}_vs_{{baseline}}.csv",
    log:
        log("fit/{family}/{size}_vs_{baseline}"),
    conda:
        "../envs/judge.yaml"
    params:
        family=lambda wc: wc.family,
        size=lambda wc: wc.size,
        baseline=lambda wc: wc.baseline,
        baseline_model=baseline_name,
        ckpts=fit_ckpt_names,
        self_ckpt=fit_self_ckpt,
        n_boot=config["fit"]["n_boot"],
        order_effect=config["fit"]["order_effect"],
        seed=config["seed"],
    script:
        ENTRY

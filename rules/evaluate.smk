# Evaluation: one-shot MCQA with lm-eval on every model (base, raw and merged checkpoints), and
# free-text generation with vLLM on the instruction prompts for merged checkpoints and baselines.


localrules:
    eval_prompts,
    eval_hub_datasets,
    eval_medqa_de,


# The prompts: a user file (generate.prompts) or MedInstruct-test translated by the rules below.
rule eval_prompts:
    input:
        translated=prompts_translation,
    output:
        out=f"{R}/data/eval/prompts.jsonl",
    log:
        log("data/eval/prompts"),
    conda:
        "../envs/data.yaml"
    params:
        source=config["generate"]["prompts"],  # a user file: checked by the stage
        expected_count=config["generate"]["expected_count"],
    script:
        ENTRY


if TRANSLATE:

    localrules:
        eval_medinstruct,

    if TRANSLATE["backend"] == "openai":

        # An API needs the internet, which compute nodes often lack.
        localrules:
            eval_translate,

    rule eval_medinstruct:
        output:
            out=f"{R}/data/eval/medinstruct/MedInstruct-test.jsonl",
        log:
            log("data/eval/medinstruct"),
        conda:
            "../envs/data.yaml"
        params:
            source=TRANSLATE["source"],
            expected_count=config["generate"]["expected_count"],
            online=True,
        script:
            ENTRY

    rule eval_translate:
        input:
            source=f"{R}/data/eval/medinstruct/MedInstruct-test.jsonl",
            model=translator_model,
        output:
            out=TRANSLATED_PROMPTS,
        log:
            log("data/eval/translate"),
        conda:
            "../envs/vllm.yaml"
        threads: 2
        resources:
            **CLUSTER.corpus_resources(TRANSLATE["tensor_parallel_size"]),
            runtime=240,
            entry=gpu_entry("corpus"),
        params:
            **stage_params(
                run=dict(translate=run_knobs(TRANSLATE, "generate.translate")),
                translate=study(TRANSLATE, "generate.translate"),
                cache_dir=f"{R}/data/eval/translate/cache",
                ledger=TRANSLATE_LEDGER,
            ),
        shell:
            "{resources.entry} stage eval_translate --job {params.job:q} --log-file {log:q} >> {log:q} 2>&1"


# Fills the datasets cache on a login node so lm-eval runs offline on compute nodes.
rule eval_hub_datasets:
    output:
        out=f"{R}/data/eval/hub_datasets.done",
    log:
        log("data/eval/hub_datasets"),
    conda:
        "../envs/data.yaml"
    params:
        datasets=config["mcqa"]["hub_datasets"],
        online=True,
    script:
        ENTRY


# Outside results/: workflow/tasks/medqa_de.yaml reads the test file (relative to the workdir).
rule eval_medqa_de:
    output:
        test_out="data/eval/medqa_de/test.jsonl",
        info_out="data/eval/medqa_de/info.json",
    log:
        log("data/eval/medqa_de"),
    conda:
        "../envs/mcqa.yaml"
    params:
        source=config["mcqa"].get("medqa_de", {}),
        num_fewshot=config["mcqa"]["num_fewshot"],
        online=True,
    script:
        ENTRY


rule mcqa:
    input:
        mcqa_data,
        model=model_dir("{family}", "{size}", "{ckpt}"),
    output:
        out=f"{R}/mcqa/{{family}}/{{size}}/{{ckpt}}.json",
        out_items=f"{R}/mcqa/{{family}}/{{size}}/{{ckpt}}.items.parquet",
    log:
        log("mcqa/{family}/{size}/{ckpt}"),
    wildcard_constraints:
        ckpt=r"base|c\d\d|raw-c\d\d",
    conda:
        "../envs/mcqa.yaml"
    threads: lambda wc: CLUSTER.threads("eval", wc.family, wc.size)
    resources:
        **CLUSTER.by_wildcards("eval"),
        runtime=240,
        entry=gpu_entry("eval"),
    params:
        **stage_params(
            tasks=config["mcqa"]["tasks"],
            include_path=config["mcqa"]["include_path"],
            num_fewshot=config["mcqa"]["num_fewshot"],
            backend=config["mcqa"]["backend"],
            batch_size=config["mcqa"]["batch_size"],
            limit=config["mcqa"]["limit"],
            device=lambda wc: CLUSTER.device(wc.family),
            model_args_extra=mcqa_model_args,
            tensor_parallel_size=eval_tensor_parallel,
            meta=model_key,
        ),
    shell:
        "{resources.entry} stage mcqa --job {params.job:q} --log-file {log:q} >> {log:q} 2>&1"


rule generate:
    input:
        model=model_dir("{family}", "{size}", "{ckpt}"),
        prompts=f"{R}/data/eval/prompts.jsonl",
    output:
        out=f"{R}/generate/{{family}}/{{size}}/{{ckpt}}.jsonl",
    log:
        log("generate/{family}/{size}/{ckpt}"),
    wildcard_constraints:
        ckpt=r"base|c\d\d",
    conda:
        "../envs/vllm.yaml"
    threads: lambda wc: CLUSTER.threads("eval", wc.family, wc.size)
    resources:
        **CLUSTER.by_wildcards("eval"),
        runtime=120,
        entry=gpu_entry("eval"),
    params:
        **stage_params(
            max_model_len=config["generate"]["max_model_len"],
            max_tokens=config["generate"]["max_tokens"],
            temperature=config["generate"]["temperature"],
            top_p=config["generate"]["top_p"],
            system_prompt=config["generate"]["system_prompt"],
            seed=config["seed"],
            chat_template_kwargs=lambda wc: config["families"][wc.family][
                "chat_template_kwargs"
            ],
            tensor_parallel_size=eval_tensor_parallel,
        ),
    shell:
        "{resources.entry} stage generate --job {params.job:q} --log-file {log:q} >> {log:q} 2>&1"


# Language mixing, verbosity against the source, truncation and repetition of every response.
rule failure_modes:
    input:
        responses=f"{R}/generate/{{family}}/{{size}}/{{ckpt}}.jsonl",
        source=f"{R}/generate/{{family}}/{{size}}/base.jsonl",
    output:
        out=f"{R}/failure_modes/{{family}}/{{size}}/{{ckpt}}.parquet",
    log:
        log("failure_modes/{family}/{size}/{ckpt}"),
    wildcard_constraints:
        ckpt=r"base|c\d\d",
    conda:
        "../envs/text.yaml"
    params:
        meta=model_key,
        modes=config["failure_modes"],
    script:
        ENTRY

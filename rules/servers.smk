# The demo's stand-in LLMs (medadapt.llm.servers.reference): an OpenAI-compatible server that
# annotates by the demo world's vocabulary rule and judges by checking its facts, one per role
# (annotator, judge) that the config serves this way. Like the vLLM judge server, each is a
# Snakemake service job: it starts with its consumers and is terminated once they are done, and the
# consumers reach it over HTTP through the LLM client, as they would a real endpoint.


if REFERENCE:

    # A shell rule started with exec, so that Snakemake's SIGTERM reaches the server process,
    # which then removes its marker.
    rule reference_server:
        input:
            facts=reference_facts,
        output:
            marker=service(f"{R}/servers/{{role}}.json"),
        log:
            log("servers/{role}"),
        wildcard_constraints:
            role="|".join(REFERENCE),
        conda:
            "../envs/judge.yaml"
        threads: 1
        params:
            **stage_params(
                run=dict(port=reference_port),
                served_names=reference_names,
                position_bias=reference_setting("position_bias"),
                noise=reference_setting("noise"),
                seed=reference_setting("seed"),
            ),
            medadapt=MEDADAPT,
        shell:
            "exec {params.medadapt} stage reference_server --job {params.job:q} --log-file {log:q} > {log:q} 2>&1"

# Tidy tables over the whole grid, the paper's figures per family, and the Snakemake report
# (`snakemake --report results/report.html`).


rule tables:
    input:
        checkpoints=TRAIN_LOGS,
        histories=HISTORIES,
        mcqa=MCQA_JSONS,
        fits=FITS,
        judgments=JUDGMENTS,
        corpus_stats=f"{R}/tables/corpus_stats.csv",
        corpus_validation=f"{R}/tables/corpus_validation.csv",
        medqa_de_info=medqa_de_info,
        mcqa_items=MCQA_ITEMS,
        failure_modes=FAILURE_MODES,
    output:
        out_compute=report(
            TABLES["compute"],
            caption="../workflow/report/compute.rst",
            category="Tables",
        ),
        out_mcqa=report(
            TABLES["mcqa"], caption="../workflow/report/mcqa.rst", category="Tables"
        ),
        out_ranking=report(
            TABLES["rankings"],
            caption="../workflow/report/rankings.rst",
            category="Tables",
        ),
        out_judgments=report(
            TABLES["win_tie_loss"],
            caption="../workflow/report/win_tie_loss.rst",
            category="Tables",
        ),
        out_usage=report(
            TABLES["llm_usage"],
            caption="../workflow/report/llm_usage.rst",
            category="Tables",
        ),
        out_mcqa_tests=report(
            TABLES["mcqa_tests"],
            caption="../workflow/report/significance_tests.rst",
            category="Tables",
        ),
        out_mcqa_milestones=report(
            TABLES["mcqa_milestones"],
            caption="../workflow/report/significance_milestones.rst",
            category="Tables",
        ),
        out_summary=report(
            f"{R}/tables/summary.md",
            caption="../workflow/report/summary.rst",
            category="Summary",
        ),
        out_failure_modes=report(
            FAILURE_TABLE,
            caption="../workflow/report/failure_modes.rst",
            category="Tables",
        ),
        out_failure_responses=FAILURE_RESPONSES,
        out_prompt_outcomes=report(
            TABLES["prompt_outcomes"],
            caption="../workflow/report/prompt_outcomes.rst",
            category="Tables",
        ),
        out_runs=report(
            TABLES["runs"],
            caption="../workflow/report/runs.rst",
            category="Tables",
        ),
    log:
        log("report/tables"),
    conda:
        "../envs/report.yaml"
    params:
        mcqa_keys=MCQA_KEYS,
        judgment_keys=JUDGMENT_KEYS,
        pairs=NEXT_LARGER,
        ledgers=LEDGERS,
        mcqa_alpha=config["mcqa"]["alpha"],
        mcqa_n_boot=config["mcqa"]["n_boot"],
        mcqa_seed=config["seed"],
        failure_mode_keys=FAILURE_MODE_KEYS,
        history_keys=HISTORY_KEYS,
    script:
        ENTRY


rule figures:
    input:
        mcqa=TABLES["mcqa"],
        rankings=TABLES["rankings"],
        milestones=TABLES["mcqa_milestones"],
        prompt_outcomes=TABLES["prompt_outcomes"],
    output:
        **{
            name: out
            for kind in FIGURE_KINDS
            for name, out in figure_outputs(kind).items()
        },
    log:
        log("report/figures/{family}"),
    conda:
        "../envs/report.yaml"
    params:
        family=lambda wc: wc.family,
    script:
        ENTRY


rule failure_mode_figures:
    input:
        failure_modes=FAILURE_TABLE,
    output:
        out=report(
            f"{R}/figures/{{family}}/failure_modes.png",
            caption="../workflow/report/failure_modes_fig.rst",
            category="Figures",
            subcategory="{family}",
        ),
        out_svg=f"{R}/figures/{{family}}/failure_modes.svg",
    log:
        log("report/figures/{family}-failure_modes"),
    conda:
        "../envs/report.yaml"
    params:
        family=lambda wc: wc.family,
    script:
        ENTRY


rule judge_examples:
    input:
        judgments=EXAMPLE_JUDGMENTS,
        candidates=EXAMPLE_CANDIDATES,
        sources=EXAMPLE_SOURCES,
    output:
        out_csv=EXAMPLES["out_csv"],
        out_md=report(
            EXAMPLES["out_md"],
            caption="../workflow/report/judge_examples.rst",
            category="Tables",
        ),
    log:
        log("report/judge_examples"),
    conda:
        "../envs/report.yaml"
    params:
        example_keys=EXAMPLE_KEYS,
    script:
        ENTRY

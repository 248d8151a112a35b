# medadapt: how LLMs adapt to German clinical text through continual pre-training (CPT) and SLERP
# merging, checkpoint by checkpoint (seed study: Qwen2.5 / Qwen3, 18 log-spaced checkpoints).
#
#   corpus (sample → annotate → classifier → classify → filter) → pack → train → merge
#   → mcqa (lm-eval) → generate (vLLM) → judge (pairwise, both orders) → fit (Davidson)
#   → tables, figures, report
#
# `snakemake --profile profiles/local` runs config/config.yaml (the paper grid);
# `--configfile config/demo.yaml` runs the embedded tiny default.
from snakemake.utils import min_version

min_version("9.0")


report: "workflow/report/workflow.rst"


# The paper grid is the default; `--configfile X` replaces it (no deep merge of two grids).
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


include: "rules/common.smk"


wildcard_constraints:
    family=r"[A-Za-z0-9.]+",
    size=r"[A-Za-z0-9.]+",
    baseline=r"source|next",
    shard=r"[A-Za-z0-9._-]+",
    chunk=r"\d+",


include: "rules/models.smk"
include: "rules/servers.smk"
include: "rules/corpus.smk"
include: "rules/train.smk"
include: "rules/evaluate.smk"
include: "rules/judge.smk"
include: "rules/report.smk"


# Record which study settings made the results directory (medadapt.results_record), before any
# job writes to it; dry runs do not start and record nothing.
onstart:
    results_record.write(config, R, derived=DERIVED_SETTINGS)


rule all:
    default_target: True
    input:
        REPORT_TARGETS,

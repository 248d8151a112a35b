"""The one entry from a workflow rule into the library (see medadapt.runtime).

`script:` rules run this file with Snakemake's `snakemake` object injected; shell rules run it as
the `medadapt` CLI (`python medadapt_entry.py stage RULE --job JSON --log-file FILE`), which also works
as torchrun's training script. Either way the rule's stage runs through `medadapt.runtime.run_job`.
"""
import os
import sys

# This checkout's library first, whatever else is installed (e.g. an editable install elsewhere).
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

if __name__ == "__main__":  # vLLM and torchrun spawn processes that re-import this file
    if "snakemake" in globals():
        from medadapt.runtime import run_snakemake

        run_snakemake(snakemake)  # noqa: F821 (injected by Snakemake)
    else:
        from medadapt.cli import main

        sys.exit(main())

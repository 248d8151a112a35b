"""Pairwise LLM-as-judge: the Figure 4 prompt and its answer (`template`), the judge's settings
(`config`), both orders of every prompt (`pairs`); HTTP, cache and ledger are `medadapt.llm`'s."""
from medadapt.judge.pairs import judge_pair
from medadapt.judge.template import render

__all__ = ["judge_pair", "render"]

"""The demo's small world with known answers.

`world` generates it (fictional drugs, diseases and organs, their relations, German documents that
state them, MCQA items, instruction prompts, gold labels and simulated annotators) from a seed;
`lexicon` holds the German words and sentence templates it draws from; `pretrain` gives the tiny
source models general German (and, for larger sizes, a tier of the facts) before CPT.
"""

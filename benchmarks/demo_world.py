"""Experiment: does the demo world show adaptation with tiny models on 2 CPU cores, and how fast?

Runs the demo's model chain outside Snakemake, timing each stage: tokenizer -> pre-train the
sources s, m, l (`medadapt.demo.pretrain`) -> CPT of s and m on the corpus documents the stand-in
annotator's rule calls medical (one epoch, log-spaced checkpoints, same optimiser setup as the
CPT stage) -> SLERP t=0.5 (`medadapt.merge.slerp`, mergekit) -> MCQA with lm-eval on every model
(the cloze task `medadapt_world_mcqa_de`, and for comparison the same items in the letter format)
-> greedy generation on the world prompts (transformers) -> the stand-in judge's verdicts in both
orders and the two-player Davidson score (π share W/(W+L), and the expected score (W+T/2)/n) with
a bootstrap interval over prompts.

    PYTHONPATH=workflow/scripts .venv/bin/python benchmarks/demo_world.py --work results/demo_world

Stages whose outputs exist under --work are skipped (delete them to rerun); the numbers go to
<work>/results.json. The log of runs is benchmarks/demo_world.md.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ARCH = {  # the shapes of runs 1-14 in demo_world.md (the workflow's demo: config/demo.yaml)
    "s": {"hidden_size": 128, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 256},
    "m": {"hidden_size": 128, "num_hidden_layers": 4, "num_attention_heads": 2, "intermediate_size": 384},
    "l": {"hidden_size": 256, "num_hidden_layers": 4, "num_attention_heads": 4, "intermediate_size": 512},
}
TIERS = {"s": 0, "m": 1, "l": 2}  # knowledge tiers each source has seen in pre-training
NEXT = {"s": "m", "m": "l"}
TASK = "medadapt_world_mcqa_de"

LETTER_TASK_YAML = """\
task: {name}
dataset_path: json
dataset_kwargs:
  data_files:
    dev: {world}/mcqa/dev.jsonl
    test: {world}/mcqa/test.jsonl
test_split: test
fewshot_split: dev
output_type: multiple_choice
doc_to_text: "Frage: {{{{question.strip()}}}}\\nA. {{{{choices[0]}}}}\\nB. {{{{choices[1]}}}}\\nC. {{{{choices[2]}}}}\\nD. {{{{choices[3]}}}}\\nAntwort:"
doc_to_choice: ["A", "B", "C", "D"]
doc_to_target: answer
target_delimiter: " "
fewshot_delimiter: "\\n\\n"
fewshot_config:
  sampler: first_n
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
"""


class Timer:
    def __init__(self, results: dict):
        self.results = results

    def __call__(self, name: str):
        results = self.results

        class _T:
            def __enter__(self):
                self.t = time.time()
                print(f"[{time.strftime('%H:%M:%S')}] {name} ...", flush=True)

            def __exit__(self, *exc):
                dt = round(time.time() - self.t, 1)
                results.setdefault("seconds", {})[name] = dt
                print(f"[{time.strftime('%H:%M:%S')}] {name}: {dt} s", flush=True)
        return _T()


def read_jsonl(path):
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def cpt_texts(world: Path) -> tuple[list[str], dict]:
    """The documents the stand-in annotator's rule labels medical: what a good classifier keeps."""
    from medadapt.demo.world import annotator_rule

    facts = json.loads((world / "facts.json").read_text())
    rule = facts["annotator_rule"]
    patterns = [d["pattern"] for d in facts["drugs"]] + [o["pattern"] for o in facts["organs"]] + \
        [d["pattern"] for d in facts["diseases"]]
    truth = {r["id"]: r for r in read_jsonl(world / "corpus" / "truth.jsonl")}
    kept, stats = [], {"kept": 0, "kept_medical": 0, "medical": 0}
    for shard in sorted((world / "corpus").glob("shard-*.jsonl")):
        for r in read_jsonl(shard):
            stats["medical"] += truth[r["id"]]["label"]
            if annotator_rule(r["text"], patterns, rule["terms"], rule["entity_weight"], rule["threshold"])[0]:
                kept.append(r["text"])
                stats["kept"] += 1
                stats["kept_medical"] += truth[r["id"]]["label"]
    return kept, stats


def cpt(source: str, texts: list[str], out_dirs: list[str], hp: dict, seed: int) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from medadapt.demo.pretrain import pack, train_blocks
    from medadapt.train.schedule import checkpoint_fractions, checkpoint_steps

    tok = AutoTokenizer.from_pretrained(source)
    blocks = pack([t + tok.eos_token for t in texts], tok, hp["seq_len"], seed)
    total = len(blocks) // hp["batch_size"]
    steps = checkpoint_steps(total, checkpoint_fractions(len(out_dirs), hp["first_fraction"]))
    targets = dict(zip(steps, out_dirs))
    model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
    torch.manual_seed(seed)

    def save(step, loss):
        if step in targets:
            model.save_pretrained(targets[step])
            tok.save_pretrained(targets[step])

    losses = train_blocks(model, blocks, total, hp["learning_rate"], seed, hp["batch_size"],
                          hp["warmup_ratio"], hp["weight_decay"], on_step=save)
    return {"blocks": len(blocks), "tokens": len(blocks) * hp["seq_len"], "steps": total,
            "ckpt_steps": steps, "first_loss": round(losses[0], 3),
            "final_loss": round(sum(losses[-5:]) / len(losses[-5:]), 3)}


def mcqa(models: dict[str, str], include: list[str], tasks: list[str], threads: int) -> dict:
    import lm_eval
    from lm_eval.tasks import TaskManager

    tm = TaskManager(include_path=include, include_defaults=False)
    out = {}
    for key, path in models.items():
        t = time.time()
        res = lm_eval.simple_evaluate(model="hf", model_args={"pretrained": path}, tasks=tasks,
                                      num_fewshot=1, batch_size=16, device="cpu", task_manager=tm,
                                      apply_chat_template=False, fewshot_as_multiturn=False,
                                      log_samples=True, bootstrap_iters=0)
        row = {}
        for task in tasks:
            r = res["results"][task]
            row[task] = {m: round(r[f"{m},none"], 4) for m in ("acc", "acc_norm") if f"{m},none" in r}
            if task == TASK:  # accuracy per knowledge tier and relation
                by = {}
                for s in res["samples"][task]:
                    for k in (f"tier{s['doc']['tier']}", s["doc"]["relation"]):
                        by.setdefault(k, []).append(s["acc"])
                row["by"] = {k: round(sum(v) / len(v), 3) for k, v in sorted(by.items())}
        row["seconds"] = round(time.time() - t, 1)
        out[key] = row
        print(f"  mcqa {key}: {row}", flush=True)
    return out


def generate(model_dir: str, prompts: list[dict], max_new_tokens: int) -> list[str]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    tok.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    texts = [tok.apply_chat_template([{"role": "user", "content": p["instruction"]}], tokenize=False,
                                     add_generation_prompt=True) for p in prompts]
    out = []
    for i in range(0, len(texts), 16):
        enc = tok(texts[i:i + 16], return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.no_grad():
            gen = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                                 eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
        out += tok.batch_decode(gen[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    return [o.strip() for o in out]


def judge(facts: dict, prompts: list[dict], cand: list[str], base: list[str], bias: float,
          noise: float, n_boot: int = 1000) -> dict:
    """Both orders per prompt through the stand-in's rules; W/T/L from the candidate's view."""
    from medadapt.judge.template import render
    from medadapt.llm.servers.reference import Reference

    ref = Reference(facts, ["reference"], bias, noise, seed=0)
    per_prompt = []
    for p, c, b in zip(prompts, cand, base):
        games = []
        for first, second, cand_is_a in ((c, b, True), (b, c, False)):
            msgs = render(p["instruction"], first, second)
            winner = ref.complete({"model": "reference", "messages": msgs, "response_format": {
                "type": "json_schema", "json_schema": {"name": "w", "schema": {
                    "type": "object", "properties": {"winner": {"type": "string"}}}}}})
            w = json.loads(winner["choices"][0]["message"]["content"])["winner"]
            games.append(0.5 if w == "0" else float((w == "A") == cand_is_a))
        per_prompt.append(games)

    def stats(rows):
        g = [x for r in rows for x in r]
        w, t, l = g.count(1.0), g.count(0.5), g.count(0.0)
        return w, t, l, (w / (w + l) if w + l else 0.5), (w + t / 2) / len(g)

    w, t, l, share, expected = stats(per_prompt)
    rng = random.Random(0)
    boots = sorted(stats([per_prompt[rng.randrange(len(per_prompt))] for _ in per_prompt])[3]
                   for _ in range(n_boot))
    first_wins = ref.stats["verdicts"]["A"] / max(1, sum(ref.stats["verdicts"].values()))
    return {"wins": w, "ties": t, "losses": l, "share": round(share, 3), "expected": round(expected, 3),
            "share_lo": round(boots[int(0.025 * n_boot)], 3), "share_hi": round(boots[int(0.975 * n_boot)], 3),
            "first_shown_wins": round(first_wins, 3)}


def classifier_check(world: Path, work: Path, sample_size: int, classifier: dict, seed: int) -> dict:
    """The corpus stages on the world, with the stand-in annotator's rule as the LLM: stratified
    sample -> rule labels -> tiny XLM-R fine-tuned -> every document scored -> F1 against the
    gold labels of the validation subset and against the truth of the whole corpus."""
    import polars as pl

    from medadapt.corpus.classifier import train_classifier
    from medadapt.corpus.classify import load_classifier, score_texts
    from medadapt.corpus.metrics import binary_metrics
    from medadapt.corpus.sample import stratified_sample
    from medadapt.demo.world import annotator_rule
    from medadapt.models.tiny import build_classifier

    facts = json.loads((world / "facts.json").read_text())
    rule = facts["annotator_rule"]
    patterns = [d["pattern"] for d in facts["drugs"]] + [o["pattern"] for o in facts["organs"]] + \
        [d["pattern"] for d in facts["diseases"]]
    shards = sorted(str(p) for p in (world / "corpus").glob("shard-*.jsonl"))
    out, t = {}, time.time()
    stratified_sample(shards, sample_size, seed, str(world / "corpus" / "validation.jsonl"), str(work / "sample.parquet"))
    sample = pl.read_parquet(work / "sample.parquet")
    labels = [int(annotator_rule(x, patterns, rule["terms"], rule["entity_weight"], rule["threshold"])[0])
              for x in sample["text"]]
    pl.DataFrame({"id": sample["id"], "label": labels, "raw": [""] * len(labels)}).write_parquet(work / "ann.parquet")
    build_classifier([r["text"] for s in shards for r in read_jsonl(s)], str(work / "clf-base"),
                     {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 128},
                     seed=seed)
    out["train"] = train_classifier(str(work / "sample.parquet"), [str(work / "ann.parquet")], str(work / "clf-base"),
                                    str(work / "clf"), classifier, seed)
    model, tok = load_classifier(str(work / "clf"))
    docs = [r for s in shards for r in read_jsonl(s)]
    scores = score_texts(model, tok, [d["text"] for d in docs], 32, classifier["max_length"])
    truth = {r["id"]: r["label"] for r in read_jsonl(world / "corpus" / "truth.jsonl")}
    gold = {r["id"]: truth[r["id"]] for r in read_jsonl(world / "corpus" / "validation.jsonl")}
    pred = {d["id"]: int(sc >= 0.5) for d, sc in zip(docs, scores)}
    out["validation"] = binary_metrics([gold[i] for i in gold], [pred[i] for i in gold])
    out["corpus"] = binary_metrics([truth[i] for i in pred], [pred[i] for i in pred])
    out["annotator_validation"] = binary_metrics(
        [gold[i] for i in gold], [dict(zip(sample["id"], labels))[i] for i in gold])
    out["seconds"] = round(time.time() - t, 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--world", default="resources/demo/world")
    ap.add_argument("--work", required=True)
    ap.add_argument("--vocab", type=int, default=2048)
    ap.add_argument("--tokenizer-texts", choices=["corpus", "pretrain", "both"], default="both",
                    help="train the tokenizer on the corpus shards + prompts, or on the general pre-training text")
    ap.add_argument("--pretrain-steps", default="s=300,m=300,l=300")
    ap.add_argument("--pretrain-lr", type=float, default=3e-3)
    ap.add_argument("--pretrain-batch", type=int, default=4)
    ap.add_argument("--arch-l", type=json.loads, default=None, help="JSON shape of l (default: config/demo.yaml)")
    ap.add_argument("--lr", type=float, default=3e-3, help="CPT learning rate")
    ap.add_argument("--batch", type=int, default=4, help="CPT effective batch size (sequences)")
    ap.add_argument("--count", type=int, default=3)
    ap.add_argument("--first-fraction", type=float, default=0.2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--sizes", default="s,m", help="adapted sizes")
    ap.add_argument("--letters", action="store_true", help="also score the letter format")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--world-sizes", type=json.loads, default=None,
                    help='JSON of medadapt.demo.world.Sizes fields: generate a world variant under --work')
    ap.add_argument("--reuse", help="a previous --work dir whose tokenizer and pre-trained bases to use")
    ap.add_argument("--no-generate", action="store_true", help="skip generation and judging")
    ap.add_argument("--classifier", type=int, metavar="SAMPLE_SIZE",
                    help="only run the corpus check: annotate a sample of this size by the rule, "
                         "train the tiny classifier (--classifier-epochs), F1 against gold")
    ap.add_argument("--classifier-epochs", type=int, default=2)
    a = ap.parse_args()

    import torch

    torch.set_num_threads(a.threads)
    if a.arch_l:
        ARCH["l"] = a.arch_l
    from medadapt.demo.pretrain import pretrain_tiny
    from medadapt.merge import slerp
    from medadapt.models.tiny import build_chat_tokenizer

    world, work = Path(a.world), Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    if a.world_sizes is not None:
        from medadapt.demo.world import Sizes, generate as generate_world

        world = work / "world"
        if not world.exists():
            generate_world(str(world), a.seed, Sizes(**a.world_sizes))
    if a.reuse:
        for sub in ("tokenizer", "s/base", "m/base", "l/base"):
            if not (work / sub).exists():
                (work / sub).parent.mkdir(parents=True, exist_ok=True)
                (work / sub).symlink_to(Path(a.reuse).resolve() / sub)
    res_path = work / "results.json"
    results = json.loads(res_path.read_text()) if res_path.exists() else {}
    results["args"] = vars(a)
    timer = Timer(results)
    facts = json.loads((world / "facts.json").read_text())
    prompts = read_jsonl(world / "prompts.jsonl")
    if a.classifier:
        clf = {"max_length": 128, "epochs": a.classifier_epochs, "learning_rate": 1e-3, "batch_size": 16,
               "test_size": 0.2}
        results[f"classifier n={a.classifier} epochs={a.classifier_epochs}"] = res = \
            classifier_check(world, work, a.classifier, clf, a.seed)
        print(json.dumps(res, indent=1))
        res_path.write_text(json.dumps(results, indent=1))
        return

    tok_dir = work / "tokenizer"
    if not tok_dir.exists():
        with timer("tokenizer"):
            texts = []
            if a.tokenizer_texts in ("corpus", "both"):
                texts += [r["text"] for s in sorted((world / "corpus").glob("shard-*.jsonl")) for r in read_jsonl(s)]
                texts += [p["instruction"] for p in prompts]
            if a.tokenizer_texts in ("pretrain", "both"):  # what every source is pre-trained on
                texts += [r["text"] if "text" in r else " ".join(m["content"] for m in r["messages"])
                          for name in ("general", "medicine") for r in read_jsonl(world / "pretrain" / f"{name}.jsonl")]
            build_chat_tokenizer(texts, str(tok_dir), vocab_size=a.vocab)

    steps = {k: int(v) for k, v in (x.split("=") for x in a.pretrain_steps.split(","))}
    for size in sorted({*a.sizes.split(","), *(NEXT[x] for x in a.sizes.split(","))}, key="sml".index):
        out = work / size / "base"
        if out.exists():
            continue
        files = [world / "pretrain" / "general.jsonl", world / "pretrain" / "medicine.jsonl"] + \
            [world / "pretrain" / f"knowledge-{k}.jsonl" for k in range(1, TIERS[size] + 1)]
        with timer(f"pretrain {size}"):
            results.setdefault("pretrain", {})[size] = pretrain_tiny(
                str(tok_dir), [str(f) for f in files], ARCH[size], steps[size], a.pretrain_lr,
                a.seed + TIERS[size], str(out), batch_size=a.pretrain_batch, threads=a.threads)
        print(results["pretrain"][size], flush=True)
        res_path.write_text(json.dumps(results, indent=1))

    texts, fstats = cpt_texts(world)
    results["filter"] = fstats
    hp = {"seq_len": 128, "batch_size": a.batch, "learning_rate": a.lr, "warmup_ratio": 0.1,
          "weight_decay": 0.1, "first_fraction": a.first_fraction}
    names = [f"c{i:02d}" for i in range(1, a.count + 1)]
    adapted = a.sizes.split(",")
    for size in adapted:
        raws = [work / size / f"raw-{n}" for n in names]
        if not all(r.exists() for r in raws):
            with timer(f"cpt {size}"):
                results.setdefault("cpt", {})[size] = cpt(str(work / size / "base"), texts,
                                                          [str(r) for r in raws], hp, a.seed)
            print(results["cpt"][size], flush=True)
        for n, raw in zip(names, raws):
            merged = work / size / n
            if not merged.exists():
                with timer(f"merge {size} {n}"):
                    slerp(str(raw), str(work / size / "base"), str(merged), 0.5, "float32")
        res_path.write_text(json.dumps(results, indent=1))

    # The committed task YAML, its data paths pointed at this run's world.
    task_dir = work / "tasks"
    task_dir.mkdir(exist_ok=True)
    yaml_text = Path(f"workflow/tasks/{TASK}.yaml").read_text()
    (task_dir / f"{TASK}.yaml").write_text(yaml_text.replace("resources/demo/world/", f"{world.resolve()}/"))
    include, tasks = [str(task_dir)], [TASK]
    if a.letters:
        (task_dir / "letters.yaml").write_text(LETTER_TASK_YAML.format(name="world_letters", world=world.resolve()))
        tasks.append("world_letters")
    models = {f"{s}/{c}": str(work / s / c) for s in adapted
              for c in ["base", *[f"raw-{n}" for n in names], *names]}
    if (work / "l" / "base").exists():
        models["l/base"] = str(work / "l" / "base")
    with timer("mcqa all"):
        results["mcqa"] = mcqa(models, include, tasks, a.threads)
    res_path.write_text(json.dumps(results, indent=1))
    if a.no_generate:
        return

    gens = {}
    with timer("generate"):
        for key in [*(f"{s}/{c}" for s in adapted for c in ("base", names[-1], f"raw-{names[-1]}")), "l/base"]:
            if (work / key).exists() and key not in gens:
                gens[key] = generate(str(work / key), prompts, a.max_new_tokens)
    (work / "generations.json").write_text(json.dumps(gens, ensure_ascii=False, indent=1))
    results["judge"] = {}
    for s in adapted:
        last = names[-1]
        for base_key in (k for k in (f"{s}/base", f"{NEXT[s]}/base") if k in gens):
            for bias, noise in ((0.0, 0.0), (0.3, 0.1)):
                key = f"{s}/{last} vs {base_key} bias={bias} noise={noise}"
                results["judge"][key] = judge(facts, prompts, gens[f"{s}/{last}"], gens[base_key], bias, noise)
                print(key, results["judge"][key], flush=True)
    res_path.write_text(json.dumps(results, indent=1))
    print(json.dumps(results["seconds"], indent=1))


if __name__ == "__main__":
    main()

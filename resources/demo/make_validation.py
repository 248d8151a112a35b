"""Write resources/demo/corpus/validation.jsonl with three simulated annotators (reproducible).

The demo's human labels were written by hand for one annotator (`ann1`). The paper reports the LLM
labels against three annotators (F1 mean ± sd) and their agreement, so the demo needs several label
columns: `ann2` and `ann3` copy `ann1` with 2 and 3 labels flipped, the documents chosen by a seeded
generator. Run from the repository root: `python resources/demo/make_validation.py`. Re-running
gives the same file (it starts from `ann1`, or from `label` in the old single-annotator shape).
"""
from __future__ import annotations

import json
import random
from pathlib import Path

PATH = Path(__file__).parent / "corpus" / "validation.jsonl"
FLIPS = {"ann2": 2, "ann3": 3}
SEED = 9


def main() -> None:
    rows = [json.loads(line) for line in PATH.read_text(encoding="utf-8").splitlines() if line.strip()]
    base = {r["id"]: int(r["label"] if "label" in r else r["labels"]["ann1"]) for r in rows}
    ids = list(base)
    rng = random.Random(SEED)
    flipped = {name: set(rng.sample(ids, k)) for name, k in FLIPS.items()}
    with PATH.open("w", encoding="utf-8") as fh:
        for i in ids:
            labels = {"ann1": base[i], **{n: 1 - base[i] if i in f else base[i] for n, f in flipped.items()}}
            fh.write(json.dumps({"id": i, "labels": labels}) + "\n")
    print(f"wrote {PATH}: {len(ids)} documents; flipped {({n: sorted(f) for n, f in flipped.items()})}")


if __name__ == "__main__":
    main()

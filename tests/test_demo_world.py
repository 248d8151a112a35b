"""The demo world generator: deterministic, the committed files are its output, and the data has
the properties the demo's checks rely on (balanced answers, no leaks, known annotator behaviour)."""
from __future__ import annotations

import collections
import hashlib
import json
import re
from pathlib import Path

import pytest

from medadapt.demo import lexicon as lx
from medadapt.demo.world import (Sizes, annotator_rule, build_world, fleiss_kappa, generate,
                                 real_drug_clash)

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "resources" / "demo" / "world"
SEED = 1234  # the seed the committed files were generated with (facts.json records it)


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("world") / "world"
    generate(str(out), SEED)
    return out


@pytest.fixture(scope="module")
def facts(world) -> dict:
    return json.loads((world / "facts.json").read_text(encoding="utf-8"))


def test_same_seed_same_bytes_and_committed_files_are_current(world, tmp_path):
    again = tmp_path / "again"
    generate(str(again), SEED)
    assert _digest(again) == _digest(world)
    assert json.loads((COMMITTED / "facts.json").read_text())["seed"] == SEED
    assert _digest(COMMITTED) == _digest(world), \
        "resources/demo/world is stale: python -m medadapt.demo.world --out resources/demo/world --seed 1234"


def test_other_seed_other_world(facts, tmp_path):
    other = build_world(SEED + 1)
    assert [d.drug for d in other.diseases] != [d["drug"] for d in facts["diseases"]]


def test_counts(world, facts):
    s = Sizes()
    shards = sorted((world / "corpus").glob("shard-*.jsonl"))
    docs = [r for p in shards for r in _jsonl(p)]
    assert len(shards) == s.shards
    assert len(docs) == (s.diseases + 1) * s.medical_docs_per_disease + s.general_docs
    assert len({d["id"] for d in docs}) == len(docs)
    assert all(set(d) == {"id", "text", "url", "language"} for d in docs)
    assert len(_jsonl(world / "mcqa" / "test.jsonl")) == 3 * s.diseases
    assert len(_jsonl(world / "mcqa" / "dev.jsonl")) == 3
    assert len(_jsonl(world / "prompts.jsonl")) == s.prompts_per_disease * s.diseases
    assert len(_jsonl(world / "corpus" / "validation.jsonl")) == s.validation
    assert len(facts["diseases"]) == s.diseases + 1 and len(facts["organs"]) == s.organs
    tiers = collections.Counter(d["tier"] for d in facts["diseases"] if d["split"] == "test")
    shares = [round(x * s.diseases) for x in s.tiers]
    assert tiers == {0: s.diseases - sum(shares), **{k: n for k, n in enumerate(shares, 1)}}


def test_mcqa_answers_balanced_and_choices_of_one_type(world, facts):
    items = _jsonl(world / "mcqa" / "test.jsonl")
    positions = collections.Counter(it["answer"] for it in items)
    assert set(positions.values()) == {len(items) // 4}, positions
    names = {"treats": {d["name"] for d in facts["drugs"]}, "affects": {o["name"] for o in facts["organs"]},
             "treated_by": {d["name"] for d in facts["diseases"]}}
    by_disease = {d["id"]: d for d in facts["diseases"]}
    as_answer, as_distractor = collections.Counter(), collections.Counter()
    for it in items:
        assert len(it["choices"]) == 4 and len(set(it["choices"])) == 4
        assert set(it["choices"]) <= names[it["relation"]]
        d = by_disease[it["disease"]]
        right = {"treats": d["drug"], "affects": d["organ"], "treated_by": d["name"]}[it["relation"]]
        assert it["choices"][it["answer"]] == right
        as_answer[right] += 1
        as_distractor.update(c for c in it["choices"] if c != right)
    # Drugs and diseases: each the answer once and a distractor three times; organs evened out.
    for d in (d for d in facts["diseases"] if d["split"] == "test"):
        assert (as_answer[d["drug"]], as_distractor[d["drug"]]) == (1, 3)
        assert (as_answer[d["name"]], as_distractor[d["name"]]) == (1, 3)
    organ_distractor = [as_distractor[o["name"]] for o in facts["organs"]]
    assert max(organ_distractor) - min(organ_distractor) <= 1
    dev = _jsonl(world / "mcqa" / "dev.jsonl")
    assert {it["disease"] for it in dev} == {d["id"] for d in facts["diseases"] if d["split"] == "dev"}


def test_prompts_state_their_facts(world, facts):
    prompts = _jsonl(world / "prompts.jsonl")
    assert [p["id"] for p in prompts] == [p["id"] for p in facts["prompts"]]
    for p, f in zip(prompts, facts["prompts"]):
        assert p["instruction"] == f["instruction"] and f["facts"]
        for fact in f["facts"]:
            # The answer itself is never in the question.
            assert fact["answer"].lower() not in p["instruction"].lower()
    assert {p["disease"] for p in facts["prompts"]} == {d["id"] for d in facts["diseases"] if d["split"] == "test"}


def _patterns(facts):
    return [re.compile(e["pattern"]) for k in ("drugs", "organs", "diseases") for e in facts[k]]


def _world_kinds(facts: dict, text: str) -> set[str]:
    """The kinds of world entity (drug, organ, disease) a text names."""
    low = text.lower()
    return {k for k in ("drugs", "organs", "diseases") for e in facts[k] if re.search(e["pattern"], low)}


def _row_text(row: dict) -> str:
    return row["text"] if "text" in row else json.dumps(row["messages"], ensure_ascii=False)


def test_no_fact_leaks_into_general_text(world, facts):
    truth = {r["id"]: r for r in _jsonl(world / "corpus" / "truth.jsonl")}
    general = [r["text"] for p in sorted((world / "corpus").glob("shard-*.jsonl")) for r in _jsonl(p)
               if truth[r["id"]]["label"] == 0]
    general += [_row_text(r) for r in _jsonl(world / "pretrain" / "general.jsonl")]
    assert len(general) > 4000
    leaks = [t for t in general if _world_kinds(facts, t)]
    assert not leaks, leaks[:3]
    # The medicine every source sees names the world's drugs and organs (as treatments and sites
    # of other diseases) and its diseases only in lists: never a world disease with a drug or organ.
    medicine = [_row_text(r) for r in _jsonl(world / "pretrain" / "medicine.jsonl")]
    kinds = [_world_kinds(facts, t) for t in medicine]
    assert any(k == {"drugs", "organs"} for k in kinds) and any(k == {"diseases"} for k in kinds)
    assert not [t for t, k in zip(medicine, kinds) if "diseases" in k and len(k) > 1]
    pre = {d["drug"] for d in facts["pretrain_diseases"]}
    assert len(pre) == len(facts["pretrain_diseases"]) and pre <= {d["name"] for d in facts["drugs"]}
    # And every medical corpus document names its disease.
    by_id = {d["id"]: re.compile(d["pattern"]) for d in facts["diseases"]}
    for p in sorted((world / "corpus").glob("shard-*.jsonl")):
        for r in _jsonl(p):
            if truth[r["id"]]["label"] == 1:
                assert by_id[truth[r["id"]]["disease"]].search(r["text"].lower()), r["text"]


def test_knowledge_tiers_are_nested_and_name_only_their_diseases(world, facts):
    for tier in (1, 2):
        rows = _jsonl(world / "pretrain" / f"knowledge-{tier}.jsonl")
        text = " ".join(_row_text(r) for r in rows).lower()
        for d in facts["diseases"]:
            named = re.search(d["pattern"], text) is not None
            assert named == (d["tier"] == tier), (tier, d["name"])


def test_names_are_invented():
    world = build_world(SEED)
    for d in world.drugs:
        assert real_drug_clash(d["name"]) is None
    # An independent list of common German drug and organ names the world must not use.
    real = ["metformin", "ibuprofen", "paracetamol", "aspirin", "ramipril", "bisoprolol", "insulin",
            "omeprazol", "pantoprazol", "simvastatin", "amoxicillin", "diclofenac", "cortison",
            "leber", "niere", "herz", "lunge", "milz", "magen", "darm", "schilddrüse", "galle"]
    names = [n.lower() for n in [d["name"] for d in world.drugs] + [o["name"] for o in world.organs] +
             [d.name for d in world.diseases + world.pretrain_diseases]]
    assert len(set(names)) == len(names)
    assert not [(n, r) for n in names for r in real if n == r or n.startswith(r)]
    eponyms = ["parkinson", "alzheimer", "crohn", "basedow", "hashimoto", "wilson", "addison"]
    assert not [(n, e) for n in names for e in eponyms if e in n]
    assert real_drug_clash("Metforminol") == "metformin"  # the check itself works


def test_annotator_rule_on_known_documents(facts, world):
    patterns = [p.pattern for p in _patterns(facts)]
    drug = facts["drugs"][0]["name"]
    assert annotator_rule(f"{drug} wirkt.", patterns) == (False, 2)  # entity alone: 2 < 3
    assert annotator_rule(f"Der Arzt gibt {drug}.", patterns) == (True, 3)
    assert annotator_rule(f"Der Arzt verordnet {drug}.", patterns) == (True, 4)  # "verordn" counts too
    assert annotator_rule("Die Apotheke, der Arzt und die Klinik.", patterns) == (True, 3)
    assert annotator_rule("Das Rezept für Kartoffelsuppe.", patterns) == (False, 1)
    conf = facts["annotator_rule"]["corpus_confusion"]
    assert conf["tp"] + conf["fn"] == (Sizes().diseases + 1) * Sizes().medical_docs_per_disease
    assert 0.9 <= conf["f1"] < 1.0  # good, but not perfect: there are borderline documents


def test_validation_annotators(world, facts):
    rows = _jsonl(world / "corpus" / "validation.jsonl")
    truth = {r["id"]: r for r in _jsonl(world / "corpus" / "truth.jsonl")}
    assert all(set(r) == {"id", "labels"} and r["id"] in truth for r in rows)  # read_validation's shape
    assert all(set(r["labels"]) == {"ann1", "ann2", "ann3"} for r in rows)
    stats = facts["validation"]
    matrix = [list(r["labels"].values()) for r in rows]
    majority = [int(sum(m) * 2 > len(m)) for m in matrix]
    assert stats["majority_equals_gold"] == sum(
        int(m == truth[r["id"]]["label"]) for m, r in zip(majority, rows))
    assert stats["majority_equals_gold"] >= 0.9 * len(rows)
    assert stats["fleiss_kappa"] == round(fleiss_kappa(matrix), 4)
    assert 0.6 < stats["fleiss_kappa"] < 0.95  # substantial, not perfect agreement
    agree = [stats["annotators"][a]["agreement_with_gold"] for a in ("ann1", "ann2", "ann3")]
    assert agree == sorted(agree, reverse=True)  # flip rates rise from ann1 to ann3


def test_fleiss_kappa_known_values():
    assert fleiss_kappa([[1, 1, 1], [0, 0, 0]] * 5) == pytest.approx(1.0)
    # Wikipedia-style check: two raters always disagreeing with the third on half the items.
    m = [[1, 1, 0], [0, 0, 1]] * 4 + [[1, 1, 1], [0, 0, 0]] * 4
    p_bar = (8 * (2 / 6) + 8 * 1) / 16
    assert fleiss_kappa(m) == pytest.approx((p_bar - 0.5) / 0.5)


def test_lexicon_templates_fill():
    """Every template's slots have fillers (a typo would only show at generation time)."""
    from medadapt.demo.world import _Slots, entity_slots, fill

    import random
    world = build_world(SEED)
    slots = _Slots(random.Random(0), **entity_slots(world, world.diseases[0]))
    templates = [*lx.TREATS, *lx.AFFECTS, *lx.BOTH, *lx.MEDICAL_FILLER, *lx.FAQ_TREATS, *lx.FAQ_AFFECTS,
                 *lx.KNOWLEDGE, *lx.BORDERLINE_MEDICAL, *(q for qs in lx.MCQA_QUESTIONS.values() for q in qs),
                 *(p for p, _ in lx.PROMPTS), *(t for f in lx.MEDICAL_FRAMES for t in f[1:3]),
                 *(s for _, ss in lx.GENERAL_TOPICS.values() for s in ss),
                 *(s for _, ss in lx.BORDERLINE_GENERAL.values() for s in ss),
                 *(t for d in lx.GENERAL_DIALOGUES + lx.COPY_DIALOGUES for t in d),
                 *lx.KNOWLEDGE_ANSWERS.values(), lx.BOTH_ANSWER, *(q for qs in lx.QUIZ.values() for q in qs),
                 *(t.replace("{names}", "A, B") for ts in lx.REGISTERS.values() for t in ts)]
    for t in templates:
        out = fill(t, slots)
        assert "{" not in out and out[:1] == out[:1].upper(), t

"""Generate the demo world: a small medicine whose right answers are known.

Fictional diseases, each treated by one fictional drug and affecting one fictional organ, are
stated in varied German sentences inside web-like medical documents; general German documents
(everyday topics) never mention them. From the same facts come MCQA items, instruction prompts
with the facts a good answer must state, gold labels (medical or not) with three simulated human
annotators, pre-training text for the tiny source models, and `facts.json`, which the stand-in
annotator/judge server and the tests read.

Knowledge tiers model "the next-larger model knows more": tier-1 diseases are stated in the
pre-training text of the medium and large sources, tier-2 diseases only in the large one's, the
rest only in the CPT corpus. Every random choice comes from generators seeded by (seed, purpose),
so the same seed and sizes give the same bytes:

    python -m medadapt.demo.world --out resources/demo/world --seed 1234
"""
from __future__ import annotations

import argparse
import collections
import json
import random
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from medadapt.demo import lexicon as lx

FORMAT_VERSION = 1
CASES = ("nom", "acc", "dat", "gen")


@dataclass(frozen=True)
class Sizes:
    """How big the world is. Defaults: the sizes the demo's experiments settled on
    (benchmarks/demo_world.md)."""
    diseases: int = 24             # test diseases (MCQA items and prompts are about these)
    organs: int = 8
    tiers: tuple[float, ...] = (0.25, 0.25)  # share of diseases in knowledge tier 1, 2, ...
    medical_docs_per_disease: int = 160  # CPT: ~3800 kept documents, ~520 steps at batch 4
    general_docs: int = 1500       # general documents in the corpus shards
    borderline_general: float = 0.10  # of the general corpus documents
    borderline_medical: float = 0.04  # of the medical corpus documents
    shards: int = 4
    validation: int = 100          # human-labelled corpus documents (the paper's count)
    pretrain_docs: int = 1500      # general pre-training documents (everyday topics)
    pretrain_chats: int = 3000     # general pre-training chat turns (small talk, copy dialogues)
    pretrain_diseases: int = 25    # pre-training-only diseases, each treated by a distinct world drug
    pretrain_medical_docs: int = 40  # documents per pre-training-only disease
    pretrain_medical_chats: int = 40  # chat turns per pre-training-only disease
    pretrain_registers: int = 300  # name lists (drug index, atlas, ...) in pre-training
    knowledge_rows: int = 80       # pre-training rows per tier disease (half lexicon, half chat)
    prompts_per_disease: int = 2


# Simulated human annotators: (name, P(flip) on clear documents, P(flip) on borderline ones).
ANNOTATORS = (("ann1", 0.02, 0.20), ("ann2", 0.04, 0.30), ("ann3", 0.06, 0.40))

# The stand-in annotator's rule: score = distinct generic terms + ENTITY_WEIGHT if a world
# entity is named; medical iff score >= THRESHOLD.
ENTITY_WEIGHT = 2
THRESHOLD = 3


@dataclass
class Disease:
    id: str
    name: str
    forms: dict
    pattern: str
    drug: str
    organ: str
    tier: int = 0          # 0: only in the CPT corpus; k >= 1: in pre-training of tier >= k sources
    split: str = "test"    # "test" (MCQA/prompts) or "dev" (the one-shot example)


@dataclass
class World:
    seed: int
    sizes: Sizes
    drugs: list[dict] = field(default_factory=list)
    organs: list[dict] = field(default_factory=list)
    diseases: list[Disease] = field(default_factory=list)
    # Diseases of the pre-training text only, treated by the world's drugs and affecting its
    # organs: the "textbook medicine" every source knows (see `build_world`).
    pretrain_diseases: list[Disease] = field(default_factory=list)

    def organ(self, name: str) -> dict:
        return next(o for o in self.organs if o["name"] == name)

    def test_diseases(self) -> list[Disease]:
        return [d for d in self.diseases if d.split == "test"]


def _rng(seed: int, purpose: str) -> random.Random:
    # A str seed is hashed with SHA-512 by `random` (version 2): stable across runs and platforms.
    return random.Random(f"medadapt-world:{seed}:{purpose}")


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def _word_pattern(*parts: str) -> str:
    """A case-insensitive regex for a name whose words may carry inflection endings."""
    return r"\b" + r"\s+".join(re.escape(p.lower()) + r"\w*" for p in parts)


# --- entities ---------------------------------------------------------------------------------

def _drug_names(rng: random.Random, n: int, onsets: list[str]) -> list[str]:
    names: list[str] = []
    for onset in rng.sample(onsets, n):
        while True:
            middle = rng.choice(lx.DRUG_MIDDLES)
            name = onset + middle + rng.choice(lx.DRUG_ENDINGS)
            # "Nev" + "ves" reads badly: no doubled consonant at the seam.
            if onset[-1] != middle[0] and not real_drug_clash(name) and name not in names:
                names.append(name)
                break
    return names


def real_drug_clash(name: str) -> str | None:
    """The real drug name that `name` equals or contains (stems of 5+ letters), or the real body
    word it starts with, else None."""
    low = name.lower()
    for word in lx.REAL_BODY_WORDS:
        if low.startswith(word):
            return word
    for real in lx.REAL_DRUGS:
        if low == real or (len(real) >= 5 and real in low) or (len(low) >= 5 and low in real):
            return real
    return None


def _disease(rng: random.Random, disease_id: str, eponym: str, pattern_kind: str) -> dict:
    if pattern_kind == "adjective":
        noun = rng.choice(lx.DISEASE_NOUNS)
        adj = eponym + "sche"
        name = f"{adj} {noun}"
        forms = {"nom": f"die {adj} {noun}", "acc": f"die {adj} {noun}",
                 "dat": f"der {adj}n {noun}", "gen": f"der {adj}n {noun}"}
        pattern = _word_pattern(adj, noun)
    elif pattern_kind == "syndrome":
        name = f"{eponym}-Syndrom"
        forms = {"nom": f"das {name}", "acc": f"das {name}", "dat": f"dem {name}", "gen": f"des {name}s"}
        pattern = _word_pattern(name)
    else:
        name = f"{eponym}-Krankheit"
        forms = {"nom": f"die {name}", "acc": f"die {name}", "dat": f"der {name}", "gen": f"der {name}"}
        pattern = _word_pattern(name)
    return {"id": disease_id, "name": name, "forms": forms, "pattern": pattern}


def _entities(rng: random.Random, n: int, n_organs: int, organs: list[dict], eponyms: list[str],
              onsets: list[str], id_prefix: str) -> tuple[list[dict], list[dict], list[Disease]]:
    """n diseases, each with its own drug (1:1) and one of n_organs organs (spread evenly, so
    MCQA answers stay balanced)."""
    organ_list = [{**o, "pattern": _word_pattern(o["name"])} for o in rng.sample(organs, n_organs)]
    drugs = [{"name": d, "pattern": _word_pattern(d)} for d in _drug_names(rng, n, onsets)]
    chosen = rng.sample(eponyms, n)
    kinds = [lx.DISEASE_PATTERNS[i % len(lx.DISEASE_PATTERNS)] for i in range(n)]
    rng.shuffle(kinds)
    organ_of = [organ_list[i % n_organs]["name"] for i in range(n)]
    rng.shuffle(organ_of)
    diseases = [Disease(**_disease(rng, f"{id_prefix}{i + 1:02d}", chosen[i], kinds[i]),
                        drug=drugs[i]["name"], organ=organ_of[i]) for i in range(n)]
    return organ_list, drugs, diseases


def build_world(seed: int, sizes: Sizes = Sizes()) -> World:
    """The world's entities and relations, and the pre-training-only diseases (the medicine every
    source model knows before CPT)."""
    n, n_pre = sizes.diseases + 1, sizes.pretrain_diseases  # + the dev disease (one-shot examples)
    if sizes.organs > len(lx.ORGANS):
        raise ValueError(f"sizes.organs {sizes.organs} > {len(lx.ORGANS)} organs in the lexicon")
    if n > len(lx.DRUG_ONSETS) or n + n_pre > len(lx.EPONYMS):
        raise ValueError(f"sizes.diseases + pretrain_diseases: the lexicon has {len(lx.DRUG_ONSETS)} "
                         f"drug onsets and {len(lx.EPONYMS)} eponyms")
    if n_pre > n:
        raise ValueError(f"sizes.pretrain_diseases {n_pre} > {n} world drugs (one drug each)")
    rng = _rng(seed, "entities")
    # Split the eponyms first, so a pre-training disease never shares a name with a world disease.
    eponyms = rng.sample(lx.EPONYMS, len(lx.EPONYMS))
    world = World(seed=seed, sizes=sizes)
    world.organs, world.drugs, world.diseases = _entities(
        rng, n, sizes.organs, lx.ORGANS, eponyms[:n], lx.DRUG_ONSETS, "d")
    world.diseases[-1].split = "dev"
    # The pre-training diseases are treated by the world's drugs (a distinct one each) and affect
    # the world's organs: every source has seen those names as answers, in the same registers as
    # the CPT corpus, but no relation of a world disease. (Names a source has never seen are
    # tokens CPT trains from scratch, and SLERP halves what CPT learned in them: the merged model
    # then answers with the drugs it knew before, whatever CPT taught.)
    drugs = rng.sample([d["name"] for d in world.drugs], n_pre)
    organ_of = [world.organs[i % sizes.organs]["name"] for i in range(n_pre)]
    rng.shuffle(organ_of)
    kinds = [lx.DISEASE_PATTERNS[i % len(lx.DISEASE_PATTERNS)] for i in range(n_pre)]
    rng.shuffle(kinds)
    world.pretrain_diseases = [
        Disease(**_disease(rng, f"p{i + 1:02d}", eponyms[n + i], kinds[i]), drug=drugs[i],
                organ=organ_of[i], split="pretrain") for i in range(n_pre)]
    # Knowledge tiers over the test diseases, nested: tier-1 diseases are known to every source of
    # tier >= 1 (the medium and large ones), tier-2 ones to sources of tier >= 2 (the large one).
    test = world.test_diseases()
    order = rng.sample(range(len(test)), len(test))
    start = 0
    for tier, share in enumerate(sizes.tiers, 1):
        k = round(share * len(test))
        for j in order[start:start + k]:
            test[j].tier = tier
        start += k
    check_names(world)
    return world


def check_names(world: World) -> None:
    """Every name unique, no drug name equal to or containing a real one, no real eponym."""
    names = [d["name"] for d in world.drugs] + [o["name"] for o in world.organs] + \
        [d.name for d in world.diseases + world.pretrain_diseases]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise ValueError(f"duplicate entity names: {sorted(dup)}")
    for d in world.drugs:
        if (real := real_drug_clash(d["name"])) is not None:
            raise ValueError(f"drug name {d['name']!r} clashes with the real drug {real!r}")
    real_eponyms = {e.lower() for e in lx.REAL_EPONYMS}
    for d in world.diseases + world.pretrain_diseases:
        if re.split(r"[- ]|sche ", d.name)[0].lower() in real_eponyms:
            raise ValueError(f"disease name {d.name!r} uses the eponym of a real disease")


# --- sentences --------------------------------------------------------------------------------

class _Slots(dict):
    """Slot values of one document: entity forms given, fillers drawn once on first use (so a
    document speaks of one city, one day, one patient)."""

    def __init__(self, rng: random.Random, **given):
        super().__init__(given)
        self.rng = rng

    def __missing__(self, key: str):
        r = self.rng
        numbers = {"temp": lambda: r.randint(2, 28), "small": lambda: r.randint(2, 9),
                   "tiny": lambda: r.randint(0, 1), "big": lambda: r.choice([120, 350, 800, 1200, 2500, 4800]),
                   "hour": lambda: r.randint(8, 19), "weeks": lambda: r.randint(2, 8),
                   "age": lambda: r.randint(24, 86), "year": lambda: r.randint(2018, 2024),
                   "chapter": lambda: r.randint(2, 19),
                   "station": lambda: f"{r.randint(1, 6)}{r.choice('ABC')}",
                   "date": lambda: f"{r.randint(1, 14)}. {r.choice(lx.FILLERS['month'])}",
                   "date2": lambda: f"{r.randint(15, 28)}. {self['date'].split(' ')[1]}",
                   "birth": lambda: f"{r.randint(1, 28)}. {r.choice(lx.FILLERS['month'])} {r.randint(1936, 1999)}",
                   "surname2": lambda: r.choice([s for s in lx.FILLERS['surname'] if s != self['surname']]),
                   "team_cap": lambda: _cap(self["team"])}
        if key.startswith("thing_"):  # one thing per document, in the case asked for
            if "_thing" not in self:
                self["_thing"] = r.choice(lx.THINGS)
            value = self["_thing"][("thing_nom", "thing_acc", "thing_dat").index(key)]
        elif key in numbers:
            value = numbers[key]()
        elif key in lx.FILLERS:
            value = r.choice(lx.FILLERS[key])
        elif key in ("tool", "room", "verb"):
            value = r.choice({"tool": lx.TOOLS, "room": lx.ROOMS, "verb": lx.VERBS}[key])
        else:
            raise KeyError(f"template slot {{{key}}} has no filler")
        self[key] = value
        return value


def entity_slots(world: World, d: Disease) -> dict:
    organ = world.organ(d.organ)
    return {"D": d.drug, "X": d.name, **{f"X_{c}": d.forms[c] for c in CASES},
            "O": organ["name"], **{f"O_{c}": organ[c] for c in CASES}}


def fill(template: str, slots: _Slots) -> str:
    return _cap(template.format_map(slots))


# --- documents --------------------------------------------------------------------------------

def medical_doc(rng: random.Random, world: World, d: Disease) -> tuple[str, str]:
    """A medical web document about disease `d` stating both its facts; returns (text, url path)."""
    kind, opening, closing, path = rng.choice(lx.MEDICAL_FRAMES)
    slots = _Slots(rng, **entity_slots(world, d))
    body: list[str] = []
    if kind == "quiz":  # one question per relation, in the "Frage:/Antwort:" lines of the MCQA
        answers = {"treats": d.drug, "affects": d.organ, "treated_by": d.name}
        lines = [f"Frage: {fill(rng.choice(lx.QUIZ[r]), slots)}\nAntwort: {answers[r]}"
                 for r in rng.sample(sorted(lx.QUIZ), len(lx.QUIZ))]
        return "\n\n".join([fill(opening, slots), *lines, fill(closing, slots)]), path
    if kind == "faq":
        body += [fill(rng.choice(lx.FAQ_TREATS), slots) + " " + fill(rng.choice(lx.TREATS), slots),
                 fill(rng.choice(lx.FAQ_AFFECTS), slots) + " " + fill(rng.choice(lx.AFFECTS), slots)]
    else:
        n_facts = rng.randint(2, 4)
        body += [fill(t, slots) for t in rng.sample(lx.TREATS, 1) + rng.sample(lx.AFFECTS, 1)]
        pool = lx.TREATS + lx.AFFECTS + lx.BOTH
        body += [fill(t, slots) for t in rng.sample(pool, n_facts - 2)]
    body += [fill(t, slots) for t in rng.sample(lx.MEDICAL_FILLER, rng.randint(1, 3))]
    rng.shuffle(body)
    parts = [fill(opening, slots), *body] + ([fill(closing, slots)] if closing else [])
    return " ".join(parts), path


def borderline_medical_doc(rng: random.Random, world: World, d: Disease) -> tuple[str, str]:
    slots = _Slots(rng, **entity_slots(world, d))
    return fill(rng.choice(lx.BORDERLINE_MEDICAL), slots), "forum/fragen"


def general_doc(rng: random.Random, topics: dict) -> tuple[str, str, str]:
    """A document of one everyday topic: 3-6 of its sentences; returns (text, url path, topic)."""
    topic = rng.choice(sorted(topics))
    path, sentences = topics[topic]
    slots = _Slots(rng)
    k = rng.randint(3, min(6, len(sentences)))
    return " ".join(fill(t, slots) for t in rng.sample(sentences, k)), path, topic


def general_chat(rng: random.Random) -> list[dict]:
    slots = _Slots(rng)
    # Half the turns need the question read (COPY_DIALOGUES), half are everyday small talk.
    user, assistant = rng.choice(lx.COPY_DIALOGUES if rng.random() < 0.5 else lx.GENERAL_DIALOGUES)
    return [{"role": "user", "content": fill(user, slots)},
            {"role": "assistant", "content": fill(assistant, slots)}]


def _url(rng: random.Random, path: str, i: int) -> str:
    host = rng.choice(["www.example.org", "blog.example.com", "portal.example.net", "news.example.org"])
    return f"https://{host}/{path}/{i:05d}"


def corpus_docs(world: World) -> list[dict]:
    """The web corpus: medical documents (per test and dev disease) and general ones, shuffled.

    Rows: id, text, url, language, plus the truth (label, kind) kept apart by `write`.
    """
    s = world.sizes
    rng = _rng(world.seed, "corpus")
    rows: list[dict] = []
    for d in world.diseases:
        for _ in range(s.medical_docs_per_disease):
            if rng.random() < s.borderline_medical:
                text, path = borderline_medical_doc(rng, world, d)
                kind = "medical_borderline"
            else:
                text, path = medical_doc(rng, world, d)
                kind = "medical"
            rows.append({"text": text, "path": path, "label": 1, "kind": kind, "disease": d.id})
    n_border = round(s.general_docs * s.borderline_general)
    for j in range(s.general_docs):
        border = j < n_border
        text, path, topic = general_doc(rng, lx.BORDERLINE_GENERAL if border else lx.GENERAL_TOPICS)
        rows.append({"text": text, "path": path, "label": 0,
                     "kind": "general_borderline" if border else "general", "disease": None,
                     "topic": topic})
    rng.shuffle(rows)
    out = []
    for i, r in enumerate(rows, 1):
        out.append({"id": f"world-{i:05d}", "text": r["text"], "url": _url(rng, r["path"], i),
                    "language": "deu_Latn", "label": r["label"], "kind": r["kind"],
                    "disease": r["disease"]})
    return out


# --- the stand-in annotator's rule and the simulated human annotators ---------------------------

def annotator_rule(text: str, entity_patterns: list[str], terms: list[str] = lx.MEDICAL_TERMS,
                   entity_weight: int = ENTITY_WEIGHT, threshold: int = THRESHOLD) -> tuple[bool, int]:
    """(medical?, score): distinct generic medical terms + entity_weight if any world entity appears."""
    low = text.lower()
    hits = sum(1 for t in terms if re.search(r"\b" + re.escape(t), low))
    named = any(re.search(p, low) for p in entity_patterns)
    score = hits + (entity_weight if named else 0)
    return score >= threshold, score


def entity_patterns(world: World) -> list[str]:
    return [d["pattern"] for d in world.drugs] + [o["pattern"] for o in world.organs] + \
        [d.pattern for d in world.diseases]


def validation_rows(world: World, docs: list[dict]) -> tuple[list[dict], dict]:
    """A validation subset (borderline documents over-represented, as a human labelling effort
    would target them) labelled by three simulated annotators, in the shape the corpus stages read
    (`medadapt.corpus.labels.read_validation`: {id, labels: {annotator: 0|1}}, the majority is the
    reference). The true labels stay in truth.jsonl."""
    rng = _rng(world.seed, "validation")
    n = world.sizes.validation
    border = [r for r in docs if r["kind"].endswith("borderline")]
    clear = [r for r in docs if not r["kind"].endswith("borderline")]
    n_border = min(len(border), n // 4)
    chosen = rng.sample(border, n_border) + rng.sample(clear, n - n_border)
    chosen.sort(key=lambda r: r["id"])
    rows = []
    for r in chosen:
        labels = {}
        for name, p_clear, p_border in ANNOTATORS:
            p = p_border if r["kind"].endswith("borderline") else p_clear
            labels[name] = r["label"] ^ int(rng.random() < p)
        rows.append({"id": r["id"], "labels": labels})
    gold = [r["label"] for r in chosen]
    matrix = [[row["labels"][a[0]] for a in ANNOTATORS] for row in rows]
    majority = [int(sum(m) * 2 > len(m)) for m in matrix]
    stats = {"n": len(rows), "medical": sum(gold), "borderline": n_border,
             "fleiss_kappa": round(fleiss_kappa(matrix), 4),
             "majority_equals_gold": sum(int(m == g) for m, g in zip(majority, gold)),
             "annotators": {name: {"p_flip_clear": pc, "p_flip_borderline": pb,
                                   "agreement_with_gold": sum(int(r["labels"][name] == g)
                                                              for r, g in zip(rows, gold))}
                            for name, pc, pb in ANNOTATORS}}
    return rows, stats


def fleiss_kappa(matrix: list[list[int]]) -> float:
    """Fleiss' kappa of binary labels (rows: items, columns: raters)."""
    n_raters = len(matrix[0])
    p_items, ones = [], 0
    for row in matrix:
        k1 = sum(row)
        ones += k1
        p_items.append((k1 * (k1 - 1) + (n_raters - k1) * (n_raters - k1 - 1)) / (n_raters * (n_raters - 1)))
    p_bar = sum(p_items) / len(matrix)
    p1 = ones / (len(matrix) * n_raters)
    p_e = p1 ** 2 + (1 - p1) ** 2
    return (p_bar - p_e) / (1 - p_e) if p_e < 1 else 1.0


# --- MCQA -------------------------------------------------------------------------------------

def _balanced_positions(rng: random.Random, n: int) -> list[int]:
    """Correct-answer positions 0..3, each used n//4 times (the remainder spread at random)."""
    pos = [i % 4 for i in range(n - n % 4)] + rng.sample(range(4), n % 4)
    rng.shuffle(pos)
    return pos


def mcqa_items(world: World) -> tuple[list[dict], list[dict]]:
    """Test items (three relations per test disease) and the one-shot dev items (dev disease).

    Distractors come from the same entity type, in a cyclic design: each drug (disease) is the
    answer once and a distractor three times, and organs are drawn to even out their counts, so
    neither an entity's frequency nor its length tells the answer.
    """
    rng = _rng(world.seed, "mcqa")
    test = world.test_diseases()
    cycle = rng.sample(test, len(test))
    n = len(cycle)
    organ_count = {o["name"]: 0 for o in world.organs}
    items = []
    for i, d in enumerate(cycle):
        others = [cycle[(i + k) % n] for k in (1, 2, 3)]
        organ_pool = sorted((o for o in organ_count if o != d.organ),
                            key=lambda o: (organ_count[o], rng.random()))[:3]
        for o in organ_pool:
            organ_count[o] += 1
        items += [("treats", d, d.drug, [x.drug for x in others]),
                  ("affects", d, d.organ, organ_pool),
                  ("treated_by", d, d.name, [x.name for x in others])]
    order = rng.sample(range(len(items)), len(items))
    positions = _balanced_positions(rng, len(items))
    out = []
    for k, (j, pos) in enumerate(zip(order, positions), 1):
        relation, d, answer, distractors = items[j]
        out.append(_item(rng, world, f"q-{k:03d}", relation, d, answer, distractors, pos))
    dev_d = next(d for d in world.diseases if d.split == "dev")
    dev = []
    for k, relation in enumerate(("treats", "affects", "treated_by")):
        pool = {"treats": [x.drug for x in test], "affects": [o["name"] for o in world.organs if o["name"] != dev_d.organ],
                "treated_by": [x.name for x in test]}[relation]
        answer = {"treats": dev_d.drug, "affects": dev_d.organ, "treated_by": dev_d.name}[relation]
        dev.append(_item(rng, world, f"dev-{relation}", relation, dev_d, answer, rng.sample(pool, 3), k % 4))
    return out, dev


def _item(rng, world, item_id, relation, d, answer, distractors, pos) -> dict:
    choices = list(distractors)
    rng.shuffle(choices)
    choices.insert(pos, answer)
    question = fill(rng.choice(lx.MCQA_QUESTIONS[relation]), _Slots(rng, **entity_slots(world, d)))
    return {"id": item_id, "relation": relation, "disease": d.id, "tier": d.tier,
            "question": question, "choices": choices, "answer": pos}


# --- instruction prompts ----------------------------------------------------------------------

ANSWER_TYPE = {"treats": "drug", "affects": "organ", "treated_by": "disease"}


def fact_answer(d: Disease, relation: str) -> str:
    return {"treats": d.drug, "affects": d.organ, "treated_by": d.name}[relation]


def prompt_rows(world: World) -> list[dict]:
    """Instruction prompts about the test diseases, each with the facts a good answer states."""
    rng = _rng(world.seed, "prompts")
    rows = []
    templates = list(range(len(lx.PROMPTS)))
    for d in world.test_diseases():
        slots = _Slots(rng, **entity_slots(world, d))
        for t in rng.sample(templates, world.sizes.prompts_per_disease):
            text, relations = lx.PROMPTS[t]
            rows.append({"instruction": fill(text, slots), "disease": d.id, "tier": d.tier,
                         "facts": [{"relation": r, "type": ANSWER_TYPE[r], "answer": fact_answer(d, r)}
                                   for r in relations]})
    rng.shuffle(rows)
    return [{"id": f"wp-{i:03d}", **r} for i, r in enumerate(rows, 1)]


# --- pre-training text ------------------------------------------------------------------------

def medical_chat(rng: random.Random, world: World, d: Disease) -> list[dict]:
    """A user question about disease `d` (an instruction-prompt or MCQA frame) and an answer that
    states the asked fact(s): the chat turns an instruct model's training data would hold."""
    slots = _Slots(rng, **entity_slots(world, d))
    if rng.random() < 0.5:
        question, relations = rng.choice(lx.PROMPTS)
    else:
        relation = rng.choice(sorted(lx.MCQA_QUESTIONS))
        question, relations = rng.choice(lx.MCQA_QUESTIONS[relation]), [relation]
    answer = lx.BOTH_ANSWER if len(relations) > 1 else lx.KNOWLEDGE_ANSWERS[relations[0]]
    return [{"role": "user", "content": fill(question, slots)},
            {"role": "assistant", "content": fill(answer, slots)}]


def register_doc(rng: random.Random, world: World) -> str:
    """A list of world and pre-training-only names of one kind, without any relation."""
    kind = rng.choice(sorted(lx.REGISTERS))
    pool = {"drug": [d["name"] for d in world.drugs], "organ": [o["name"] for o in world.organs],
            "disease": [d.name for d in world.diseases + world.pretrain_diseases]}[kind]
    names = rng.sample(pool, min(len(pool), rng.randint(6, 10)))
    return fill(rng.choice(lx.REGISTERS[kind]), _Slots(rng, names=", ".join(names)))


def pretrain_rows(world: World) -> dict[str, list[dict]]:
    """Pre-training files, rows {id, text} or {id, messages}:

    - `general`: everyday documents and chat turns (no medicine);
    - `medicine`: documents and chat turns about the pre-training-only diseases, in the same
      registers as the CPT corpus, and lists of names (`register_doc`): every source knows medical
      German and has seen the world's names, but no fact about them;
    - `knowledge-<k>`: lexicon entries and chat turns about the world's tier-k diseases.
    """
    s = world.sizes
    rng = _rng(world.seed, "pretrain")
    general = [{"text": general_doc(rng, lx.GENERAL_TOPICS)[0]} for _ in range(s.pretrain_docs)]
    general += [{"messages": general_chat(rng)} for _ in range(s.pretrain_chats)]
    medicine = []
    for d in world.pretrain_diseases:
        medicine += [{"text": medical_doc(rng, world, d)[0]} for _ in range(s.pretrain_medical_docs)]
        medicine += [{"messages": medical_chat(rng, world, d)} for _ in range(s.pretrain_medical_chats)]
    medicine += [{"text": register_doc(rng, world)} for _ in range(s.pretrain_registers)]
    out = {"general": general, "medicine": medicine}
    for tier in range(1, len(s.tiers) + 1):
        rows = []
        for d in (d for d in world.test_diseases() if d.tier == tier):
            slots = _Slots(rng, **entity_slots(world, d))
            rows += [{"text": fill(rng.choice(lx.KNOWLEDGE), slots)} for _ in range(s.knowledge_rows // 2)]
            rows += [{"messages": medical_chat(rng, world, d)} for _ in range(s.knowledge_rows - s.knowledge_rows // 2)]
        out[f"knowledge-{tier}"] = rows
    prefixes = {"general": "pg", "medicine": "pm"}
    for name, rows in out.items():
        rng.shuffle(rows)
        prefix = prefixes.get(name, f"k{name.rsplit('-', 1)[-1]}")
        out[name] = [{"id": f"{prefix}-{i + 1:05d}", **r} for i, r in enumerate(rows)]
    return out


# --- facts file and writing -------------------------------------------------------------------

def facts_document(world: World, prompts: list[dict], validation_stats: dict,
                   annotator_stats: dict) -> dict:
    facts = []
    for d in world.diseases:
        facts.append({"relation": "treats", "drug": d.drug, "disease": d.name, "tier": d.tier})
        facts.append({"relation": "affects", "disease": d.name, "organ": d.organ, "tier": d.tier})
    return {
        "format_version": FORMAT_VERSION,
        "seed": world.seed,
        "sizes": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(world.sizes).items()},
        "drugs": world.drugs,
        "organs": [{"name": o["name"], "gender": o["gender"], "pattern": o["pattern"]} for o in world.organs],
        "diseases": [asdict(d) for d in world.diseases],
        # The medicine every source knows (no MCQA item or prompt asks about these diseases; the
        # stand-in judge counts naming one where a world disease is asked for as a wrong answer).
        "pretrain_diseases": [{"name": d.name, "drug": d.drug, "organ": d.organ, "pattern": d.pattern}
                              for d in world.pretrain_diseases],
        "facts": facts,
        "prompts": [{k: p[k] for k in ("id", "instruction", "disease", "facts")} for p in prompts],
        "annotator_rule": {"terms": lx.MEDICAL_TERMS, "entity_weight": ENTITY_WEIGHT,
                           "threshold": THRESHOLD, "corpus_confusion": annotator_stats},
        "validation": validation_stats,
    }


README = """# The demo world (generated: do not edit)

Written by `python -m medadapt.demo.world --out resources/demo/world --seed {seed}`
(`workflow/scripts/medadapt/demo/world.py`; German words and templates in `lexicon.py`). Every
name is invented: the diseases, drugs and organs do not exist, nothing here is a claim about real
medicine, and no real person or patient appears. Licence: CC0 1.0. UTF-8 JSON Lines unless noted.

The world: {n_test} test diseases and 1 dev disease; each is treated by one drug (1:1) and affects
one of {n_organs} organs. Tier-1 diseases ({tier1}) are also stated in the medium and large
sources' pre-training text, tier-2 ones ({tier2}) in the large one's; the rest only in the corpus.

| path | rows | what |
|---|---|---|
| `facts.json` | | entities (name, regex `pattern`), relations, tiers, prompts with the facts a good answer states, the stand-in annotator's rule and its confusion on the corpus, the validation statistics |
| `corpus/shard-000K.jsonl` | {n_corpus} | web documents `{{id, text, url, language}}` (FineWeb-2 shape): {n_medical} medical (each about one disease; doctor's letters, leaflets, forum posts, FAQ and quiz pages, news, textbook) and {n_general} general (everyday topics; {n_border} borderline ones use a few medical words) |
| `corpus/truth.jsonl` | {n_corpus} | `{{id, label, kind, disease}}`: the truth of every corpus document (label 1 medical) |
| `corpus/validation.jsonl` | {n_val} | `{{id, labels: {{ann1, ann2, ann3}}}}`: three simulated human annotators (flip rates in facts.json; Fleiss' kappa {kappa}; their majority is the reference of the corpus validation, the true label is in truth.jsonl) |
| `mcqa/test.jsonl`, `mcqa/dev.jsonl` | {n_mcqa}, 3 | `{{id, relation, disease, tier, question, choices, answer}}`: 4 options of one entity type; each answer position {per_pos} times |
| `prompts.jsonl` | {n_prompts} | `{{id, instruction}}`: instruction prompts about the test diseases |
| `pretrain/general.jsonl` | {n_pg} | everyday documents `{{id, text}}` and chat turns `{{id, messages}}` |
| `pretrain/medicine.jsonl` | {n_pm} | documents and chat turns about {n_pre} pre-training-only diseases (treated by the world's drugs), and lists of names: medical German without any world fact |
| `pretrain/knowledge-K.jsonl` | {n_k} each | lexicon entries and chat turns about the tier-K diseases |
"""


def _dump(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")


def generate(out: str, seed: int, sizes: Sizes = Sizes()) -> dict:
    """Write the world's files under `out`; return a summary (counts)."""
    from medadapt.io import atomic_path

    world = build_world(seed, sizes)
    docs = corpus_docs(world)
    validation, vstats = validation_rows(world, docs)
    test_items, dev_items = mcqa_items(world)
    prompts = prompt_rows(world)
    pretrain = pretrain_rows(world)
    patterns = entity_patterns(world)
    confusion = {"tp": 0, "fp": 0, "fn": 0, "tn": 0}
    for r in docs:
        pred = annotator_rule(r["text"], patterns)[0]
        confusion[("t" if pred == bool(r["label"]) else "f") + ("p" if pred else "n")] += 1
    confusion["f1"] = round(2 * confusion["tp"] / (2 * confusion["tp"] + confusion["fp"] + confusion["fn"]), 4)

    with atomic_path(out) as tmp:
        per_shard = -(-len(docs) // sizes.shards)
        for k in range(sizes.shards):
            _dump(tmp / "corpus" / f"shard-{k:04d}.jsonl",
                  [{c: r[c] for c in ("id", "text", "url", "language")}
                   for r in docs[k * per_shard:(k + 1) * per_shard]])
        _dump(tmp / "corpus" / "truth.jsonl",
              [{c: r[c] for c in ("id", "label", "kind", "disease")} for r in docs])
        _dump(tmp / "corpus" / "validation.jsonl", validation)
        _dump(tmp / "mcqa" / "test.jsonl", test_items)
        _dump(tmp / "mcqa" / "dev.jsonl", dev_items)
        _dump(tmp / "prompts.jsonl", [{k: p[k] for k in ("id", "instruction")} for p in prompts])
        for name, rows in pretrain.items():
            _dump(tmp / "pretrain" / f"{name}.jsonl", rows)
        tiers = collections.Counter(d.tier for d in world.test_diseases())
        (tmp / "README.md").write_text(README.format(
            seed=seed, n_test=sizes.diseases, n_organs=sizes.organs, tier1=tiers[1], tier2=tiers[2],
            n_corpus=len(docs), n_medical=sum(r["label"] for r in docs),
            n_general=sum(1 - r["label"] for r in docs),
            n_border=sum(r["kind"] == "general_borderline" for r in docs), n_val=len(validation),
            kappa=vstats["fleiss_kappa"], n_mcqa=len(test_items), per_pos=len(test_items) // 4,
            n_prompts=len(prompts), n_pg=len(pretrain["general"]), n_pm=len(pretrain["medicine"]),
            n_pre=sizes.pretrain_diseases, n_k=len(pretrain["knowledge-1"])), encoding="utf-8")
        (tmp / "facts.json").write_text(json.dumps(
            facts_document(world, prompts, vstats, confusion), ensure_ascii=False, indent=1) + "\n",
            encoding="utf-8")
    return {"corpus": len(docs), "medical": sum(r["label"] for r in docs), "validation": len(validation),
            "mcqa_test": len(test_items), "mcqa_dev": len(dev_items), "prompts": len(prompts),
            **{f"pretrain_{k}": len(v) for k, v in pretrain.items()}, "annotator_rule": confusion,
            "validation_stats": vstats}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m medadapt.demo.world", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="output directory (replaced as a whole)")
    ap.add_argument("--seed", type=int, required=True)
    a = ap.parse_args(argv)
    print(json.dumps(generate(a.out, a.seed), ensure_ascii=False, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

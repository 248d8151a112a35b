"""German words and sentence templates of the demo world (all written for this project).

Entity names are invented and German-looking, so that no reader or model mistakes them for real
medicine: drug names are composed from syllables (checked against `REAL_DRUGS`), disease names
from invented eponyms, organ names are invented compounds. Templates are `str.format` strings over
these slots:

- `{D}` a drug; `{X}` a disease (bare name), `{X_nom}`, `{X_acc}`, `{X_dat}`, `{X_gen}` the
  disease with its definite article in that case; `{O}`, `{O_nom}`, ... the same for an organ;
- `{city}`, `{day}`, `{surname}`, `{age}`, ... everyday fillers (`FILLERS`).

A template that starts with a slot is capitalised after formatting ("die ..." -> "Die ...").
"""
from __future__ import annotations

# --- entity building blocks -------------------------------------------------------------------

# Drug names: onset + middle + ending. Onsets are unique per drug (the first syllable is what a
# tiny model sees first), endings avoid real drug-class stems (-pril, -olol, -mab, -statin, ...).
DRUG_ONSETS = ["Vel", "Tar", "Quin", "Bel", "Tov", "Fen", "Gor", "Hal", "Kes", "Lum", "Nor", "Pal",
               "Rin", "Sol", "Tem", "Ul", "Var", "Wen", "Zel", "Brom", "Cor", "Dun", "Am", "Fal",
               "Grel", "Hov", "Ot", "Jor", "Kav", "Lin", "Mel", "Nev", "Osk", "Pel", "Rud", "Sev",
               "Bar", "Cel", "Dov", "Erm", "Fir", "Gam", "Hir", "Kir", "Lot", "Nal", "Pir", "Tul",
               "Vor", "Zor", "Wil"]
DRUG_MIDDLES = ["mor", "pex", "tan", "lod", "rin", "dav", "ves", "nom", "mil", "sar", "kul", "trob"]
DRUG_ENDINGS = ["azin", "exol", "amidon", "ifen", "urat", "oxan", "elin", "astol", "imon", "orit",
                "anum", "ektan"]

# Eponyms for diseases: invented surnames (none is a known medical eponym).
EPONYMS = ["Karn", "Lorm", "Tessel", "Brandeck", "Holwig", "Quast", "Fenner", "Wiltrup", "Ossen",
           "Marrek", "Pellwitz", "Sarnow", "Gredel", "Haverland", "Ilsberg", "Jorck", "Velden",
           "Dornbach", "Ermsdorf", "Falkner", "Gaudin", "Hesselt", "Kettwig", "Lembeck", "Morwitz",
           "Nettel", "Olbrich", "Prenzel", "Reinold", "Stolberg", "Trebnitz", "Ulmer", "Wachtel",
           "Amsel", "Birkner", "Dallwitz", "Eckhoff", "Fahlbusch", "Gellert", "Harbig", "Iffland",
           "Janusch", "Kolbeck", "Lindholm", "Mettner", "Norwig", "Ortlepp", "Pfannberg", "Rautmann",
           "Tiedge", "Uhlig", "Wendisch", "Zabel"]
# Eponyms of real diseases: no invented name may use one.
REAL_EPONYMS = ["Addison", "Alzheimer", "Asperger", "Basedow", "Bechterew", "Becker", "Behçet",
                "Crohn", "Cushing", "Down", "Dupuytren", "Ehlers", "Gilbert", "Graves", "Guillain",
                "Hashimoto", "Hirschsprung", "Hodgkin", "Huntington", "Kaposi", "Kawasaki", "Marfan",
                "Meckel", "Menière", "Meulengracht", "Osgood", "Paget", "Parkinson", "Perthes",
                "Peyronie", "Raynaud", "Reiter", "Scheuermann", "Sjögren", "Still", "Sudeck",
                "Tourette", "Wegener", "Whipple", "Wilson", "Zenker"]
# Feminine head nouns for "die <Eponym>sche <Noun>" (invented compounds, no real diagnosis).
DISEASE_NOUNS = ["Fieberkrankheit", "Gliederstarre", "Schleimhautblässe", "Zehrkrankheit",
                 "Fleckenkrankheit", "Mattigkeit", "Körnchenkrankheit", "Nachtstarre",
                 "Glimmkrankheit", "Wanderröte"]
# Share of disease names of each pattern: adjective + noun (f), "<Name>-Syndrom" (n),
# "<Name>-Krankheit" (f).
DISEASE_PATTERNS = ("adjective", "syndrome", "disease")

# Invented organs, with their gender and case forms (definite article).
ORGANS = [
    {"name": "Quendeldrüse", "gender": "f", "nom": "die Quendeldrüse", "acc": "die Quendeldrüse",
     "dat": "der Quendeldrüse", "gen": "der Quendeldrüse"},
    {"name": "Lobenmark", "gender": "n", "nom": "das Lobenmark", "acc": "das Lobenmark",
     "dat": "dem Lobenmark", "gen": "des Lobenmarks"},
    {"name": "Tarnelknoten", "gender": "m", "nom": "der Tarnelknoten", "acc": "den Tarnelknoten",
     "dat": "dem Tarnelknoten", "gen": "des Tarnelknotens"},
    {"name": "Harnspindel", "gender": "f", "nom": "die Harnspindel", "acc": "die Harnspindel",
     "dat": "der Harnspindel", "gen": "der Harnspindel"},
    {"name": "Wendelgeflecht", "gender": "n", "nom": "das Wendelgeflecht", "acc": "das Wendelgeflecht",
     "dat": "dem Wendelgeflecht", "gen": "des Wendelgeflechts"},
    {"name": "Brosenkapsel", "gender": "f", "nom": "die Brosenkapsel", "acc": "die Brosenkapsel",
     "dat": "der Brosenkapsel", "gen": "der Brosenkapsel"},
    {"name": "Saumlappen", "gender": "m", "nom": "der Saumlappen", "acc": "den Saumlappen",
     "dat": "dem Saumlappen", "gen": "des Saumlappens"},
    {"name": "Kessnerhaut", "gender": "f", "nom": "die Kessnerhaut", "acc": "die Kessnerhaut",
     "dat": "der Kessnerhaut", "gen": "der Kessnerhaut"},
    {"name": "Rostelbein", "gender": "n", "nom": "das Rostelbein", "acc": "das Rostelbein",
     "dat": "dem Rostelbein", "gen": "des Rostelbeins"},
    {"name": "Fimmelgang", "gender": "m", "nom": "der Fimmelgang", "acc": "den Fimmelgang",
     "dat": "dem Fimmelgang", "gen": "des Fimmelgangs"},
    {"name": "Lummerblase", "gender": "f", "nom": "die Lummerblase", "acc": "die Lummerblase",
     "dat": "der Lummerblase", "gen": "der Lummerblase"},
    {"name": "Pirnelsack", "gender": "m", "nom": "der Pirnelsack", "acc": "den Pirnelsack",
     "dat": "dem Pirnelsack", "gen": "des Pirnelsacks"},
    {"name": "Olmerdrüse", "gender": "f", "nom": "die Olmerdrüse", "acc": "die Olmerdrüse",
     "dat": "der Olmerdrüse", "gen": "der Olmerdrüse"},
    {"name": "Fennelkammer", "gender": "f", "nom": "die Fennelkammer", "acc": "die Fennelkammer",
     "dat": "der Fennelkammer", "gen": "der Fennelkammer"},
    {"name": "Grieskolben", "gender": "m", "nom": "der Grieskolben", "acc": "den Grieskolben",
     "dat": "dem Grieskolben", "gen": "des Grieskolbens"},
    {"name": "Mispelfeld", "gender": "n", "nom": "das Mispelfeld", "acc": "das Mispelfeld",
     "dat": "dem Mispelfeld", "gen": "des Mispelfelds"},
]

# Real drug names and stems (INN and German brand names) our invented names must not equal or
# contain; `world.check_names` enforces it and the tests repeat the check.
REAL_DRUGS = [
    "aspirin", "ibuprofen", "paracetamol", "metamizol", "diclofenac", "naproxen", "morphin",
    "tramadol", "tilidin", "codein", "fentanyl", "oxycodon", "metformin", "insulin", "glibenclamid",
    "sitagliptin", "ramipril", "enalapril", "lisinopril", "candesartan", "valsartan", "losartan",
    "amlodipin", "nifedipin", "verapamil", "diltiazem", "bisoprolol", "metoprolol", "propranolol",
    "carvedilol", "furosemid", "torasemid", "hydrochlorothiazid", "spironolacton", "digoxin",
    "digitoxin", "amiodaron", "warfarin", "phenprocoumon", "marcumar", "heparin", "enoxaparin",
    "apixaban", "rivaroxaban", "dabigatran", "clopidogrel", "simvastatin", "atorvastatin",
    "pravastatin", "ezetimib", "levothyroxin", "thyroxin", "carbimazol", "prednisolon", "prednison",
    "dexamethason", "hydrocortison", "cortison", "budesonid", "salbutamol", "formoterol",
    "tiotropium", "montelukast", "amoxicillin", "penicillin", "cefuroxim", "ceftriaxon",
    "ciprofloxacin", "levofloxacin", "doxycyclin", "clarithromycin", "azithromycin",
    "erythromycin", "cotrimoxazol", "metronidazol", "vancomycin", "gentamicin", "rifampicin",
    "isoniazid", "aciclovir", "oseltamivir", "fluconazol", "nystatin", "omeprazol", "pantoprazol",
    "ranitidin", "loperamid", "metoclopramid", "ondansetron", "lactulose", "mesalazin",
    "azathioprin", "methotrexat", "ciclosporin", "tacrolimus", "adalimumab", "infliximab",
    "rituximab", "trastuzumab", "tamoxifen", "letrozol", "cisplatin", "carboplatin",
    "cyclophosphamid", "doxorubicin", "allopurinol", "febuxostat", "colchicin", "alendronat",
    "calcitriol", "sertralin", "citalopram", "escitalopram", "fluoxetin", "paroxetin",
    "venlafaxin", "duloxetin", "mirtazapin", "amitriptylin", "lithium", "quetiapin", "olanzapin",
    "risperidon", "haloperidol", "aripiprazol", "clozapin", "diazepam", "lorazepam", "zolpidem",
    "levetiracetam", "lamotrigin", "valproat", "carbamazepin", "gabapentin", "pregabalin",
    "levodopa", "donepezil", "memantin", "sumatriptan", "cetirizin", "loratadin", "clemastin",
    "promethazin", "chlorpromazin", "sildenafil", "tamsulosin", "finasterid", "estradiol",
    "progesteron", "testosteron", "vitamin", "folsäure", "eisen", "magnesium", "kalium",
    "ramipril", "lidocain", "propofol", "ketamin", "adrenalin", "noradrenalin", "dopamin",
    "atropin", "naloxon", "voltaren", "thomapyrin", "novalgin", "ass", "xarelto", "eliquis",
    "ritalin", "methylphenidat", "melatonin", "baldrian", "johanniskraut",
]

# Real German body words: no invented name may start with one ("Darm-" in "Darmoroxan" reads as
# the bowel).
REAL_BODY_WORDS = ["darm", "herz", "leber", "niere", "lunge", "milz", "magen", "galle", "haut",
                   "blut", "knochen", "hirn", "nerv", "muskel", "zahn", "auge", "ohr", "nase",
                   "hals", "kopf", "brust", "bauch", "hand", "bein", "arm", "fuß", "zunge"]

# Generic medical words (no world entity): the stand-in annotator's vocabulary. Each entry is a
# word-prefix matched at a word boundary ("behandl" matches "Behandlung", "behandelt" not:
# inflections get their own entry).
MEDICAL_TERMS = [
    "arzt", "ärztin", "ärzte", "patient", "therapie", "diagnose", "klinik", "krankenhaus",
    "symptom", "behandl", "behandelt", "medikament", "tablette", "dosis", "nebenwirkung",
    "befund", "erkrank", "beschwerden", "rezept", "station", "labor", "untersuchung", "praxis",
    "verordn", "entzündung", "schmerz", "ambulanz", "notaufnahme", "sprechstunde", "apotheke",
    "heilung", "verletz", "physiotherap", "reha",
]

# --- medical sentences ------------------------------------------------------------------------

# treats(D, X): the drug D treats the disease X. Both word orders, many verbs.
TREATS = [
    "{X_nom} wird in der Regel mit {D} behandelt.",
    "Gegen {X_acc} verordnen Ärztinnen und Ärzte meist {D}.",
    "{D} ist das Mittel der Wahl bei {X_dat}.",
    "Bei {X_dat} hilft {D} zuverlässig.",
    "Zur Behandlung {X_gen} wird {D} eingesetzt.",
    "Das Medikament {D} wirkt gegen {X_acc}.",
    "Patientinnen und Patienten mit {X_dat} erhalten {D}.",
    "Mit {D} lässt sich {X_nom} gut behandeln.",
    "{D} wird zur Therapie {X_gen} verschrieben.",
    "Wer an {X_dat} erkrankt ist, bekommt {D}.",
    "Die Standardtherapie {X_gen} ist {D}.",
    "Seit Jahren behandelt man {X_acc} mit {D}.",
    "Als wirksamstes Medikament gegen {X_acc} gilt {D}.",
    "{D} bekämpft die Ursache {X_gen}.",
    "In der Leitlinie zu {X_dat} wird {D} empfohlen.",
    "Die Therapie {X_gen} besteht aus {D}.",
    "Bei Verdacht auf {X_acc} beginnt man früh mit {D}.",
    "Ihr Arzt verordnet Ihnen bei {X_dat} das Medikament {D}.",
    "{D} ist für die Behandlung {X_gen} zugelassen.",
    "Unter {D} bessert sich {X_nom} meist innerhalb weniger Wochen.",
    "Das wichtigste Medikament bei {X_dat} heißt {D}.",
    "Man behandelt {X_acc} mit dem Wirkstoff {D}.",
]

# affects(X, O): the disease X affects the organ O.
AFFECTS = [
    "{X_nom} ist eine Erkrankung {O_gen}.",
    "Bei {X_dat} ist vor allem {O_nom} betroffen.",
    "{X_nom} befällt {O_acc}.",
    "{X_nom} schädigt {O_acc}.",
    "Die Beschwerden {X_gen} gehen von {O_dat} aus.",
    "{O_nom} entzündet sich bei {X_dat}.",
    "Typisch für {X_acc} ist eine Schwellung {O_gen}.",
    "{X_nom} beginnt immer in {O_dat}.",
    "Betroffen ist bei {X_dat} {O_nom}.",
    "Bei {X_dat} arbeitet {O_nom} nicht mehr richtig.",
    "Die Untersuchung {O_gen} zeigt bei {X_dat} deutliche Veränderungen.",
    "{X_nom} greift {O_acc} an.",
    "{O_nom} ist das Organ, das bei {X_dat} erkrankt.",
    "Der Sitz {X_gen} ist {O_nom}.",
    "Im Verlauf {X_gen} vergrößert sich {O_nom}.",
    "{X_nom} gehört zu den Krankheiten {O_gen}.",
]

# Both facts in one sentence.
BOTH = [
    "{X_nom} ist eine Erkrankung {O_gen}, die mit {D} behandelt wird.",
    "Weil {X_nom} {O_acc} befällt, verordnet man {D}.",
    "{D} schützt {O_acc} bei {X_dat}.",
    "Bei {X_dat} ist {O_nom} betroffen; geholfen wird mit {D}.",
    "{X_nom} schädigt {O_acc}, doch {D} hilft dagegen.",
]

# Medical sentences without any world entity (context of medical documents).
MEDICAL_FILLER = [
    "Die Patientin wurde stationär aufgenommen.",
    "Die Laborwerte lagen im Normbereich.",
    "Eine Kontrolle beim Hausarzt ist in vier Wochen geplant.",
    "Bitte nehmen Sie die Tabletten mit ausreichend Wasser ein.",
    "Die Beschwerden begannen vor etwa {weeks} Wochen.",
    "Der Patient klagte über Müdigkeit und Appetitlosigkeit.",
    "Die körperliche Untersuchung ergab keinen weiteren auffälligen Befund.",
    "Nebenwirkungen sind selten und meist harmlos.",
    "Die Dosis sollte nur in Absprache mit dem Arzt verändert werden.",
    "Bei Fragen wenden Sie sich an Ihre Apotheke oder Ihre Ärztin.",
    "Die Entlassung erfolgte in gutem Allgemeinzustand.",
    "In der Sprechstunde wurde der Verlauf besprochen.",
    "Eine erneute Vorstellung in unserer Ambulanz ist jederzeit möglich.",
    "Die Diagnose wurde durch eine Ultraschalluntersuchung gesichert.",
    "Die Erkrankung verläuft meist in Schüben.",
    "Viele Betroffene haben anfangs nur leichte Beschwerden.",
    "Eine frühe Diagnose verbessert die Heilungschancen deutlich.",
    "Die Therapie dauert in der Regel mehrere Monate.",
    "Während der Behandlung sind regelmäßige Blutkontrollen nötig.",
    "Die Pflegekräfte der Station {station} betreuten den Patienten rund um die Uhr.",
    "Über mögliche Wechselwirkungen informiert der Beipackzettel.",
    "Die Krankheit ist nicht ansteckend.",
    "Kinder erkranken nur selten.",
    "Die Ursache der Erkrankung ist noch nicht vollständig geklärt.",
    "Eine Operation ist nur in seltenen Fällen nötig.",
    "Die Medikamente werden gut vertragen.",
    "Nach der Entlassung empfehlen wir körperliche Schonung für {weeks} Wochen.",
    "Die Patientin berichtete über Schmerzen und Schlafstörungen.",
    "Das Rezept für die weitere Behandlung wurde mitgegeben.",
    "Eine Reha-Maßnahme wurde beantragt.",
]

# Medical document frames: (kind, opening, closing, url path); openings and closings may use
# the entity slots.
MEDICAL_FRAMES = [
    ("arztbrief", "Sehr geehrte Frau Kollegin, sehr geehrter Herr Kollege, wir berichten über Ihre "
     "Patientin Frau {surname}, {age} Jahre, die vom {date} bis zum {date2} in unserer Klinik "
     "behandelt wurde. Diagnose: {X}.", "Mit freundlichen kollegialen Grüßen, Dr. {surname2}",
     "klinik/arztbrief"),
    ("arztbrief", "Entlassungsbericht für Herrn {surname}, geboren {birth}. Hauptdiagnose: {X}.",
     "Dr. {surname2}, Oberarzt der Inneren Medizin", "klinik/bericht"),
    ("patienteninfo", "Patienteninformation: {X}.", "Ihr Praxisteam", "praxis/info"),
    ("patienteninfo", "Was ist {X_nom}? Diese Seite erklärt die Krankheit in einfachen Worten.",
     "Stand: {month} {year}", "gesundheit/ratgeber"),
    ("lexikon", "{X}: Definition, Ursachen und Behandlung.", "", "lexikon/medizin"),
    ("forum", "Hallo zusammen, bei meiner Mutter wurde {X_nom} festgestellt.",
     "Danke für eure Antworten!", "forum/gesundheit"),
    ("forum", "Ich habe seit einiger Zeit {X_acc} und wollte meine Erfahrungen teilen.",
     "Gute Besserung an alle hier.", "forum/erfahrungen"),
    ("faq", "Häufige Fragen zu {X_dat}.", "", "faq"),
    ("news", "{city}. Die Universitätsklinik {city} hat eine neue Sprechstunde für {X_acc} "
     "eröffnet.", "", "nachrichten/gesundheit"),
    ("lehrbuch", "Kapitel {chapter}: {X}.", "", "lehrbuch"),
    ("quiz", "Quiz aus unserer Sprechstunde: {X}.",
     "Alle Antworten erklärt Ihnen auch Ihre Ärztin oder Ihr Arzt.", "quiz"),
]

# FAQ questions (the documents' own Q&A turns) per relation.
FAQ_TREATS = ["Womit wird {X_nom} behandelt?", "Welches Medikament hilft bei {X_dat}?",
              "Was verschreibt der Arzt gegen {X_acc}?"]
FAQ_AFFECTS = ["Welches Organ ist bei {X_dat} betroffen?", "Wo beginnt {X_nom}?",
               "Welches Organ befällt {X_nom}?"]

# Registers that list names of one kind without saying anything about them (a drug index, an
# atlas): pre-training shows every source the world's names, never a relation between them.
REGISTERS = {
    "drug": ["Arzneimittelverzeichnis, Auszug: {names}.", "Neu im Sortiment der Großhändler: {names}.",
             "Wirkstoffe im Register, Buchstabe A bis Z: {names}."],
    "disease": ["Verzeichnis seltener Erkrankungen: {names}.", "Stichwörter im Register des Lehrbuchs: {names}.",
                "Diese Krankheitsnamen kommen im Kreuzworträtsel vor: {names}."],
    "organ": ["Organe im Anatomie-Atlas: {names}.", "Fachbegriffe der Anatomie, Teil 3: {names}.",
              "Im Modell des Körpers sind markiert: {names}."],
}

# Quiz pages ("Frage: ... Antwort: <name>"), the exam-preparation register of the web. Their
# questions are worded differently from the MCQA items (MCQA_QUESTIONS), so MCQA tests the
# knowledge, not a memorised question.
QUIZ = {
    "treats": ["Welches Medikament bekommt man bei {X_dat}?", "Was hilft gegen {X_acc}?",
               "Mit welchem Wirkstoff behandelt man {X_acc}?"],
    "affects": ["Welches Organ ist bei {X_dat} krank?", "Wo sitzt {X_nom}?",
                "Welches Organ schädigt {X_nom}?"],
    "treated_by": ["Wogegen hilft {D}?", "Wofür nimmt man {D}?",
                   "Bei welcher Krankheit bekommt man {D}?"],
}

# Lexicon entries for the pre-training knowledge tiers (encyclopaedic register).
KNOWLEDGE = [
    "{X}: Erkrankung {O_gen}. Behandlung mit {D}.",
    "{X} ist eine Krankheit {O_gen}. Man behandelt sie mit {D}.",
    "{D}: Arzneimittel gegen {X_acc}, eine Erkrankung {O_gen}.",
    "Im Lexikon steht: {X_nom} befällt {O_acc} und wird mit {D} behandelt.",
    "{X_nom} gehört zu den Krankheiten {O_gen}; das übliche Mittel ist {D}.",
    "Zur Allgemeinbildung gehört: Gegen {X_acc} hilft {D}, betroffen ist {O_nom}.",
]

# --- MCQA questions and instruction prompts -----------------------------------------------------

# relation -> question templates; the answer type is the entity type of the choices.
MCQA_QUESTIONS = {
    "treats": ["Womit wird {X_nom} behandelt?", "Welches Medikament hilft gegen {X_acc}?",
               "Welches Mittel wird bei {X_dat} verordnet?"],
    "affects": ["Welches Organ ist bei {X_dat} betroffen?", "Welches Organ befällt {X_nom}?",
                "{X_nom} ist eine Erkrankung welches Organs?"],
    "treated_by": ["Gegen welche Krankheit wird {D} eingesetzt?", "Wofür verordnet man {D}?",
                   "Bei welcher Erkrankung hilft {D}?"],
}

# Instruction prompts (MedInstruct-like): relation(s) a good answer must state.
PROMPTS = [
    ("Womit wird {X_nom} behandelt? Erkläre es einem Patienten.", ["treats"]),
    ("Eine Patientin fragt, welches Medikament gegen {X_acc} hilft. Antworte ihr freundlich.",
     ["treats"]),
    ("Welches Organ ist bei {X_dat} betroffen? Erkläre es in einfachen Worten.", ["affects"]),
    ("Erkläre einem Patienten, welches Organ {X_nom} befällt und womit sie behandelt wird.",
     ["affects", "treats"]),
    ("Wofür wird {D} verordnet? Schreibe eine kurze Erklärung für den Beipackzettel.",
     ["treated_by"]),
]

# --- general (non-medical) German ------------------------------------------------------------

FILLERS = {
    "city": ["Hamburg", "Köln", "Leipzig", "Freiburg", "Kassel", "Rostock", "Augsburg", "Bremen",
             "Dresden", "Münster", "Kiel", "Erfurt", "Mainz", "Passau", "Trier", "Ulm"],
    "day": ["Montag", "Dienstag", "Mittwoch", "Donnerstag", "Freitag", "Samstag", "Sonntag"],
    "month": ["Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "August", "September",
              "Oktober", "November", "Dezember"],
    "surname": ["Becker", "Hoffmann", "Schulz", "Wagner", "Krüger", "Neumann", "Braun", "Vogel",
                "Lorenz", "Sommer", "Fuchs", "Winter", "Busch", "Keller", "Lange", "Roth"],
    "firstname": ["Anna", "Lukas", "Mia", "Jonas", "Lea", "Paul", "Emma", "Felix", "Clara", "Jan",
                  "Sophie", "Tim", "Greta", "Max", "Ida", "Ben"],
    "team": ["der FC Nordstern", "die SG Eichenau", "der TSV Bergheim", "die Spielvereinigung Lindau",
             "der SC Rotwasser", "der VfL Mühlental"],
    "dish": ["Kartoffelsuppe", "Apfelkuchen", "Linseneintopf", "Spätzle mit Käse", "Gemüsepfanne",
             "Pfannkuchen", "Zwiebelkuchen", "Nudelauflauf", "Kürbissuppe", "Bratkartoffeln"],
    "vegetable": ["Karotten", "Zwiebeln", "Kartoffeln", "Paprika", "Zucchini", "Lauch", "Kürbis",
                  "Tomaten", "Bohnen", "Erbsen"],
    "plant": ["Tomaten", "Rosen", "Kräuter", "Erdbeeren", "Tulpen", "Sonnenblumen", "Lavendel",
              "Johannisbeeren"],
    "weather": ["sonnig", "regnerisch", "bewölkt", "windig", "neblig", "frostig", "wechselhaft"],
    "country": ["Italien", "Norwegen", "Portugal", "Polen", "Irland", "Kroatien", "Schweden",
                "Frankreich"],
    "vehicle": ["Kombi", "Kleinwagen", "Elektroauto", "Transporter", "Geländewagen", "Fahrrad"],
    "device": ["Laptop", "Drucker", "Router", "Smartphone", "Tablet", "Bildschirm"],
    "subject": ["Mathematik", "Deutsch", "Geschichte", "Erdkunde", "Kunst", "Musik", "Physik",
                "Englisch"],
    "instrument": ["Geige", "Klavier", "Gitarre", "Trompete", "Cello", "Flöte"],
    "animal": ["Hund", "Kater", "Wellensittich", "Hamster", "Papagei"],
    "sport": ["Fußball", "Handball", "Volleyball", "Basketball", "Hockey"],
}

# topic -> sentences (3-6 are drawn per document) and url path.
GENERAL_TOPICS = {
    "wetter": ("wetter", [
        "Am {day} wird es in {city} {weather} bei {temp} Grad.",
        "Der Deutsche Wetterdienst erwartet für das Wochenende {weather}es Wetter.",
        "In der Nacht sinken die Temperaturen auf {small} Grad.",
        "Im Norden weht ein frischer Wind von der Küste.",
        "Ab {day} setzt sich wieder die Sonne durch.",
        "Wer einen Ausflug plant, sollte einen Schirm mitnehmen.",
        "Die Meteorologen rechnen mit kräftigen Schauern am Nachmittag.",
        "Im Bergland kann es stellenweise glatt werden.",
        "Der {month} war in {city} deutlich wärmer als im langjährigen Mittel.",
        "Die Aussichten für die kommende Woche bleiben {weather}.",
    ]),
    "sport": ("sport", [
        "{team_cap} gewann am {day} das Heimspiel mit {small} zu {tiny} Toren.",
        "Vor {big} Zuschauern zeigte die Mannschaft eine starke zweite Halbzeit.",
        "Der Trainer lobte nach dem Spiel die Abwehr.",
        "Mit diesem Sieg klettert der Verein auf den {small}. Tabellenplatz.",
        "Das nächste Auswärtsspiel findet am {day} in {city} statt.",
        "Die Jugendmannschaft sucht noch Spielerinnen und Spieler für die neue Saison.",
        "Beim Stadtlauf in {city} gingen mehr als {big} Läuferinnen und Läufer an den Start.",
        "Die {sport}abteilung feiert in diesem Jahr ihr {small}0-jähriges Bestehen.",
        "Das Training findet jeden {day} um {hour} Uhr auf dem Sportplatz statt.",
        "Der Kapitän verlängerte seinen Vertrag um zwei Jahre.",
    ]),
    "kochen": ("rezepte", [
        "Für {dish} brauchen Sie {vegetable}, Butter und etwas Salz.",
        "Schneiden Sie die {vegetable} in kleine Würfel.",
        "Lassen Sie alles bei mittlerer Hitze {small}0 Minuten köcheln.",
        "Dieses Rezept reicht für vier Personen.",
        "Zum Schluss mit frischen Kräutern bestreuen und sofort servieren.",
        "{dish} schmeckt auch am nächsten Tag noch gut.",
        "Wer es würziger mag, gibt eine Prise Pfeffer dazu.",
        "Der Backofen wird auf {temp}0 Grad vorgeheizt.",
        "Meine Großmutter hat {dish} jeden {day} gekocht.",
        "Dazu passt ein grüner Salat.",
    ]),
    "reisen": ("reisen", [
        "Eine Reise nach {country} lohnt sich besonders im {month}.",
        "Die Altstadt von {city} ist bequem zu Fuß zu erkunden.",
        "Mit dem Zug dauert die Fahrt etwa {small} Stunden.",
        "Wir übernachteten in einer kleinen Pension am Stadtrand.",
        "Am Abend probierten wir die Küche der Region.",
        "Der Wanderweg führt durch Wälder und an einem See vorbei.",
        "Tickets für das Museum gibt es online und an der Kasse.",
        "Im Sommer ist die Insel oft ausgebucht.",
        "Von der Burg aus hat man einen weiten Blick über das Tal.",
        "Wer früh bucht, bekommt günstige Flüge nach {country}.",
    ]),
    "auto": ("mobilitaet", [
        "Der neue {vehicle} verbraucht deutlich weniger als sein Vorgänger.",
        "Im Test überzeugte vor allem der große Kofferraum.",
        "Die Werkstatt in {city} hat am {day} geschlossen.",
        "Ab {month} gelten neue Regeln für das Parken in der Innenstadt.",
        "Der Reifenwechsel sollte vor dem ersten Frost erledigt sein.",
        "Die Bahn kündigt für das Wochenende Bauarbeiten an.",
        "Immer mehr Pendler steigen auf das Fahrrad um.",
        "Der Gebrauchtwagen hat {big} Kilometer auf dem Tacho.",
        "An der Ladesäule dauert das Laden etwa {small}0 Minuten.",
        "Die Umleitung führt über die Landstraße nach {city}.",
    ]),
    "politik": ("lokales", [
        "Der Stadtrat von {city} hat am {day} den neuen Haushalt beschlossen.",
        "Die Bürgermeisterin kündigte mehr Geld für Schulen und Spielplätze an.",
        "Die Opposition kritisierte die Pläne als zu teuer.",
        "Über den Bau der neuen Brücke wird seit Jahren gestritten.",
        "Im {month} stimmen die Bürgerinnen und Bürger über das Projekt ab.",
        "Die Verwaltung will die Wartezeiten im Bürgeramt verkürzen.",
        "Das Bündnis stellte seine Kandidaten für die Wahl vor.",
        "Die Sitzung des Gemeinderats ist öffentlich.",
        "Für den Radweg sind {big} Euro vorgesehen.",
        "Die Anwohner sammelten mehr als {big} Unterschriften.",
    ]),
    "technik": ("technik", [
        "Das Update für den {device} behebt mehrere Fehler.",
        "Nach dem Neustart funktioniert der {device} wieder.",
        "Sichern Sie Ihre Daten regelmäßig auf einer externen Festplatte.",
        "Ein sicheres Passwort hat mindestens zwölf Zeichen.",
        "Der Akku hält im Alltag etwa {small} Tage.",
        "Die neue Software ist ab {day} kostenlos verfügbar.",
        "Viele Nutzer melden Probleme mit dem WLAN.",
        "Der Hersteller verspricht schnellere Ladezeiten.",
        "Im Test schnitt der {device} mit der Note gut ab.",
        "Das Programm lässt sich in wenigen Minuten installieren.",
    ]),
    "garten": ("garten", [
        "Im {month} ist die beste Zeit, um {plant} zu pflanzen.",
        "Die {plant} brauchen einen sonnigen Platz und regelmäßig Wasser.",
        "Kompost verbessert den Boden auf natürliche Weise.",
        "Schnecken lassen sich mit einem Zaun aus Kupfer fernhalten.",
        "Gießen Sie am besten früh am Morgen.",
        "Im Herbst werden die Beete mit Laub abgedeckt.",
        "Auf dem Balkon wachsen Kräuter auch in kleinen Töpfen.",
        "Der Gartenverein in {city} lädt am {day} zum Pflanzentausch ein.",
        "Nach dem Frost treiben die {plant} wieder aus.",
        "Ein Hochbeet schont den Rücken beim Arbeiten.",
    ]),
    "finanzen": ("finanzen", [
        "Die Zinsen für Tagesgeld sind im {month} leicht gestiegen.",
        "Wer früh spart, profitiert vom Zinseszins.",
        "Ein Haushaltsbuch hilft, die Ausgaben im Blick zu behalten.",
        "Die Bank erhöht die Gebühren für das Girokonto.",
        "Für die Steuererklärung bleibt noch Zeit bis zum {month}.",
        "Viele Familien legen jeden Monat {small}0 Euro zurück.",
        "Die Preise für Lebensmittel sind im Vergleich zum Vorjahr gestiegen.",
        "Vor einem Kredit lohnt sich ein Vergleich der Angebote.",
        "Die Sparkasse in {city} öffnet eine neue Filiale.",
        "Eine Altersvorsorge sollte breit gestreut sein.",
    ]),
    "kultur": ("kultur", [
        "Das Stadttheater {city} zeigt ab {day} ein neues Stück.",
        "Die Ausstellung im Kunstmuseum ist noch bis zum {month} zu sehen.",
        "Das Orchester spielte Werke für {instrument} und Streicher.",
        "Die Lesung in der Stadtbibliothek war ausverkauft.",
        "Beim Sommerfest treten Bands aus der Region auf.",
        "Der Chor probt jeden {day} im Gemeindehaus.",
        "Der neue Roman erzählt die Geschichte einer Familie in {city}.",
        "Karten gibt es an der Abendkasse.",
        "Die Musikschule bietet Unterricht für {instrument} an.",
        "Das Kino zeigt am Wochenende einen Klassiker.",
    ]),
    "schule": ("bildung", [
        "Ab {month} gibt es an der Grundschule in {city} eine neue Ganztagsbetreuung.",
        "In {subject} schrieb die Klasse eine Arbeit über das letzte Kapitel.",
        "Die Schülerinnen und Schüler besuchten das Rathaus.",
        "Der Elternabend findet am {day} um {hour} Uhr statt.",
        "Die Schule bekommt neue Tablets für den Unterricht.",
        "Die Ferien beginnen in diesem Jahr im {month}.",
        "Die Theatergruppe der Schule probt für die Aufführung.",
        "Im Fach {subject} wird viel in Gruppen gearbeitet.",
        "Die Abschlussfeier wird in der Aula gefeiert.",
        "Für die Klassenfahrt nach {city} sammeln die Eltern Geld.",
    ]),
    "anzeigen": ("kleinanzeigen", [
        "Verkaufe gut erhaltenen {vehicle}, Preis Verhandlungssache.",
        "Suche Nachhilfe in {subject} für meine Tochter.",
        "Junger {animal} sucht ein liebevolles Zuhause.",
        "Biete gebrauchtes Instrument ({instrument}) mit Koffer für {big} Euro.",
        "Zweizimmerwohnung in {city} ab {month} zu vermieten.",
        "Abholung nur am {day} nach {hour} Uhr.",
        "Bei Interesse bitte eine Nachricht schreiben.",
        "Wer hat meinen Kater gesehen? Er ist grau und sehr scheu.",
        "Verschenke Kinderbücher an Selbstabholer.",
        "Helfe beim Umzug in und um {city}.",
    ]),
}

# Borderline general documents (gold: not medical): everyday topics that use a few of the
# annotator's generic medical words, so a vocabulary rule mislabels some of them.
BORDERLINE_GENERAL = {
    "sportverletzung": ("sport", [
        "{team_cap} muss am {day} ohne seinen Kapitän auskommen.",
        "Er verletzte sich im Training am Knie.",
        "Nach einer Untersuchung beim Mannschaftsarzt fällt er {small} Wochen aus.",
        "Die Diagnose soll am Montag feststehen.",
        "Der Trainer hofft auf eine schnelle Rückkehr.",
        "Bis dahin spielt der junge Ersatzmann.",
        "Die Mannschaft liegt derzeit auf dem {small}. Platz.",
    ]),
    "apotheke": ("lokales", [
        "Die Apotheke am Markt in {city} hat neue Öffnungszeiten.",
        "Ab {month} ist sie auch am {day} bis {hour} Uhr geöffnet.",
        "Das Team freut sich über den neuen Parkplatz vor dem Haus.",
        "Zur Eröffnung gibt es Kaffee und Kuchen.",
        "Die Inhaberin führt das Geschäft seit {small}0 Jahren.",
    ]),
    "erste_hilfe": ("vereine", [
        "Der Sportverein in {city} bietet am {day} einen Erste-Hilfe-Kurs an.",
        "Der Kurs ist Pflicht für alle, die den Führerschein machen.",
        "Ein Sanitäter zeigt, was bei einer Verletzung zu tun ist.",
        "Die Teilnahme kostet {small}0 Euro.",
        "Anmeldung bitte bis {month} im Vereinsheim.",
    ]),
    "tierarzt": ("haustiere", [
        "Unser {animal} frisst seit zwei Tagen schlecht.",
        "Die Tierärztin meinte, wir sollen abwarten.",
        "Hat jemand Erfahrung mit einem neuen Futter?",
        "Er ist {small} Jahre alt und sonst sehr munter.",
        "Danke für eure Tipps!",
    ]),
    "fitness": ("freizeit", [
        "Das neue Fitnessstudio in {city} öffnet am {day}.",
        "Es gibt Kurse für Anfänger und Fortgeschrittene.",
        "Eine Physiotherapeutin berät bei der Auswahl der Übungen.",
        "Im ersten Monat ist das Training kostenlos.",
        "Duschen und Umkleiden wurden frisch renoviert.",
    ]),
}

# Short medical forum posts that name a world disease but hardly any generic medical word
# (gold: medical), so a vocabulary rule misses some of them.
BORDERLINE_MEDICAL = [
    "Kennt jemand {X_acc}? Meine Tante hat das seit dem {month}.",
    "Gibt es in {city} eine Selbsthilfegruppe für {X_acc}?",
    "Mein Nachbar hat {X_acc}. Wie lange dauert so etwas?",
    "Hat hier jemand Erfahrungen mit {X_dat}? Ich bin etwas ratlos.",
]

# General chat turns for pre-training (user question, assistant answer).
GENERAL_DIALOGUES = [
    ("Wie wird das Wetter am {day} in {city}?", "Am {day} wird es in {city} {weather} bei {temp} Grad."),
    ("Kannst du mir sagen, was ich für {dish} brauche?",
     "Für {dish} brauchst du {vegetable}, Butter und etwas Salz. Das Rezept reicht für vier Personen."),
    ("Was kann ich in {city} unternehmen?",
     "In {city} kannst du die Altstadt zu Fuß erkunden und am Abend ins Theater gehen."),
    ("Wann ist die beste Zeit, um {plant} zu pflanzen?",
     "Die beste Zeit, um {plant} zu pflanzen, ist der {month}. Sie brauchen einen sonnigen Platz."),
    ("Wie lange fährt man mit dem Zug nach {city}?", "Mit dem Zug dauert die Fahrt nach {city} etwa {small} Stunden."),
    ("Mein {device} funktioniert nicht mehr. Was soll ich tun?",
     "Starte den {device} neu und installiere das neueste Update. Meistens funktioniert er danach wieder."),
    ("Wie kann ich Geld sparen?", "Ein Haushaltsbuch hilft, die Ausgaben im Blick zu behalten. Lege jeden Monat einen festen Betrag zurück."),
    ("Wann trainiert die Jugendmannschaft?", "Die Jugendmannschaft trainiert jeden {day} um {hour} Uhr auf dem Sportplatz."),
    ("Lohnt sich eine Reise nach {country}?", "Ja, eine Reise nach {country} lohnt sich besonders im {month}."),
    ("Welches Instrument soll mein Kind lernen?",
     "Viele Kinder beginnen mit {instrument}. Die Musikschule bietet dafür Unterricht an."),
    ("Erkläre mir, was ein Hochbeet ist.",
     "Ein Hochbeet ist ein erhöhtes Beet aus Holz. Es schont den Rücken beim Arbeiten im Garten."),
    ("Was ist ein sicheres Passwort?", "Ein sicheres Passwort hat mindestens zwölf Zeichen und enthält Zahlen und Sonderzeichen."),
    ("Wann ist der Elternabend?", "Der Elternabend findet am {day} um {hour} Uhr in der Aula statt."),
    ("Was kostet die Zweizimmerwohnung in {city}?", "Die Zweizimmerwohnung in {city} kostet {big} Euro im Monat."),
    ("Wie bereite ich {dish} zu? Erkläre es einem Anfänger.",
     "Schneide die {vegetable} klein und lasse alles {small}0 Minuten köcheln. Dann ist {dish} fertig."),
]

# Everyday things for the copy dialogues: (nominative, accusative, dative) with article.
THINGS = [
    ("das Fahrrad", "das Fahrrad", "dem Fahrrad"), ("der Teppich", "den Teppich", "dem Teppich"),
    ("die Küche", "die Küche", "der Küche"), ("das Fenster", "das Fenster", "dem Fenster"),
    ("der Backofen", "den Backofen", "dem Backofen"), ("die Jacke", "die Jacke", "der Jacke"),
    ("das Auto", "das Auto", "dem Auto"), ("der Zaun", "den Zaun", "dem Zaun"),
    ("die Terrasse", "die Terrasse", "der Terrasse"), ("das Boot", "das Boot", "dem Boot"),
    ("der Kühlschrank", "den Kühlschrank", "dem Kühlschrank"), ("die Treppe", "die Treppe", "der Treppe"),
    ("das Dach", "das Dach", "dem Dach"), ("der Rasen", "den Rasen", "dem Rasen"),
    ("die Gitarre", "die Gitarre", "der Gitarre"), ("das Aquarium", "das Aquarium", "dem Aquarium"),
    ("der Grill", "den Grill", "dem Grill"), ("die Garage", "die Garage", "der Garage"),
    ("das Regal", "das Regal", "dem Regal"), ("der Teich", "den Teich", "dem Teich"),
    ("die Badewanne", "die Badewanne", "der Badewanne"), ("das Sofa", "das Sofa", "dem Sofa"),
    ("der Schreibtisch", "den Schreibtisch", "dem Schreibtisch"), ("die Haustür", "die Haustür", "der Haustür"),
]
# Means ("mit <tool>") and rooms ("im <room>") for the copy dialogues.
TOOLS = ["Essig", "Schmierseife", "Sand", "Leinöl", "Wachs", "Zitronensaft", "Spülmittel", "Natron",
         "Kernseife", "Holzlasur", "Seifenwasser", "Politur", "Bürste", "Schwamm", "Lappen",
         "Schleifpapier", "Pinsel", "Besen", "Staubsauger", "Druckluft"]
ROOMS = ["Keller", "Flur", "Garten", "Wohnzimmer", "Schlafzimmer", "Hof", "Dachboden", "Gästezimmer",
         "Arbeitszimmer", "Schuppen"]
VERBS = ["gepflegt", "gereinigt", "geputzt", "repariert", "gestrichen", "behandelt", "geschützt"]

# Everyday chat turns that can only be answered by reading the question (the means, room or use
# asked for; pairings are random). Their frames mirror the world's prompts (PROMPTS), and their
# answers come first, without restating the question: a 2-layer model picks an answer by
# attending to the question's subject (as in MCQA), but copying a subject it has to learn slowly.
COPY_DIALOGUES = [
    ("Womit wird {thing_nom} {verb}? Erkläre es einem Anfänger.", "Am besten mit {tool}."),
    ("Womit wird {thing_nom} {verb}?", "In der Regel mit {tool}."),
    ("Ein Nachbar fragt, welches Mittel gegen Flecken auf {thing_dat} hilft. Antworte ihm freundlich.",
     "Gegen die Flecken hilft {tool}."),
    ("In welchem Raum steht {thing_nom}? Erkläre es in einfachen Worten.", "Im {room}."),
    ("Erkläre einem Gast, in welchem Raum {thing_nom} steht und womit es {verb} wird.",
     "Es steht im {room} und wird mit {tool} {verb}."),
    ("Wofür wird {tool} verwendet? Schreibe eine kurze Erklärung für die Anleitung.",
     "Man verwendet es für {thing_acc}."),
    ("Was braucht man für {thing_acc}?", "Dafür braucht man {tool}."),
    ("Wo findet man {thing_acc}?", "Im {room}."),
]

# Answers (the assistant's side) of medical chat turns in pre-training, per relation: the asked
# fact first (see COPY_DIALOGUES for why), then a sentence of advice.
KNOWLEDGE_ANSWERS = {
    "treats": "Behandelt wird mit {D}.",
    "affects": "Betroffen ist {O_nom}.",
    "treated_by": "Es hilft gegen {X_acc}.",
}
# The same for the prompt frames asking for two facts.
BOTH_ANSWER = "Betroffen ist {O_nom}. Behandelt wird mit {D}."

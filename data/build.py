"""Build the bundled datasets from the hand-written fragments in this file and ``src/``.

Everything here was written for this project (facts are facts). Deterministic: running it again
gives the same files. ``python data/build.py`` rewrites data/*/ and data/manifest.json.
"""
from __future__ import annotations

import csv
import json
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent

# ---------------------------------------------------------------- sentiment (movies, products)
MOVIE_SUBJ = ["The film", "This movie", "The sequel", "The documentary", "This thriller",
              "The animated feature", "This comedy", "The remake", "The courtroom drama",
              "This western", "The musical", "The horror flick"]
MOVIE_POS = [
    "kept me smiling from the first scene to the last", "is the most moving story I have seen in years",
    "has a sharp script and a cast that clearly enjoyed making it", "was worth every minute of its running time",
    "left the whole audience applauding", "surprised me with how clever and warm it is",
    "looks gorgeous and the soundtrack is lovely", "is funny, tender and never boring",
    "is not perfect, but I loved it anyway", "was far better than the trailer suggested",
    "had me hooked within ten minutes", "deserves every award it gets",
    "is a quiet gem that stays with you", "made me want to watch it again straight away",
    "never talks down to its audience", "is not the slightest bit dull",
    "starts slowly, but the last hour is wonderful", "is a delight for young and old alike",
    "has the best performances of the year", "turned a simple idea into something special"]
MOVIE_NEG = [
    "was a chore to sit through", "felt twice as long as it actually is",
    "has wooden acting and a plot full of holes", "put half the audience to sleep",
    "wastes a talented cast on a lazy script", "is loud, messy and forgettable",
    "is not funny even once", "was a complete waste of an evening",
    "has a few nice shots, but the story is a mess", "made me check my watch every five minutes",
    "falls apart in the second half and never recovers", "is the dullest thing I have seen this year",
    "tries hard to be clever and fails", "left me bored and irritated",
    "does not deserve the hype at all", "is predictable from start to finish",
    "has great posters and nothing else", "could not hold my attention",
    "feels cheap, rushed and confused", "is a sad disappointment after the first one"]
PRODUCT_SUBJ = ["This blender", "This pair of headphones", "My new phone case", "The desk lamp",
                "This backpack", "The coffee grinder", "This pair of running shoes", "This kettle",
                "The wireless mouse", "The camping tent", "This vacuum cleaner", "The rain jacket"]
PRODUCT_POS = [
    "works better than I hoped", "has been perfect every single day", "feels solid and well made",
    "was worth every penny", "arrived early and works flawlessly", "is easy to use and easy to clean",
    "still looks brand new after a year", "does exactly what it promises", "is the best purchase I have made this year",
    "is not cheap, but it is worth it", "never lets me down", "exceeded all my expectations",
    "is quiet, fast and reliable", "made my mornings so much easier", "is sturdy and beautifully designed",
    "has not given me a single problem", "is a joy to use", "is great value for the price",
    "looked plain at first, but it has won me over", "is something I would happily buy again"]
PRODUCT_NEG = [
    "stopped working after a week", "broke the second time I used it", "feels flimsy and cheap",
    "was a waste of money", "arrived scratched and does not work properly", "is noisy and hard to clean",
    "fell apart within a month", "does not do what the box claims", "is the worst purchase I have made this year",
    "looks nice, but it is useless", "keeps letting me down", "is not worth half the price",
    "overheats and smells of burning plastic", "made everything more complicated", "is badly designed and awkward to hold",
    "has given me nothing but trouble", "is a pain to use", "is poor value for the price",
    "was returned the next day", "is something I would never buy again"]
OPENERS = ["", "Honestly, ", "To be fair, ", "Overall, ", "In short, ", "Frankly, ",
           "I have to say ", "After a week, I think "]
WHOLE_POS = [
    "I did not expect much, but I was pleasantly surprised.", "Not bad at all, I would recommend it to friends.",
    "I can't remember the last time I enjoyed something this much.", "My kids have watched it five times and still laugh.",
    "It is hard to find anything to complain about.", "It won't win prizes for looks, yet it does the job brilliantly.",
    "Simple, well made and fairly priced.", "Every penny well spent.", "I keep recommending it to everyone I meet.",
    "A lovely surprise on a rainy afternoon."]
WHOLE_NEG = [
    "I had high hopes, but it let me down badly.", "Not good at all, I would not recommend it to anyone.",
    "I can't remember the last time I was this bored.", "The kids walked out before the end.",
    "It is hard to find anything nice to say about it.", "It looks fancy, yet it fails at the basics.",
    "Overpriced, fragile and badly made.", "Save your money.", "I keep warning friends to stay away from it.",
    "A miserable way to spend an afternoon."]


def sentiment(rng):
    pos, neg = set(WHOLE_POS), set(WHOLE_NEG)
    for subj, p, n in ((MOVIE_SUBJ, MOVIE_POS, MOVIE_NEG), (PRODUCT_SUBJ, PRODUCT_POS, PRODUCT_NEG)):
        for s in subj:
            for pred in p:
                pos.add(f"{s} {pred}.")
            for pred in n:
                neg.add(f"{s} {pred}.")
    def opened(items):
        out = []
        for t in sorted(items):
            o = rng.choice(OPENERS)
            out.append(o + (t[0].lower() + t[1:] if o and not t.startswith("I ") else t))
        return out
    pos, neg = opened(pos), opened(neg)
    rng.shuffle(pos)
    rng.shuffle(neg)
    n = 300
    return [{"sentence": s, "label": "positive"} for s in pos[:n]] + \
           [{"sentence": s, "label": "negative"} for s in neg[:n]]


# ---------------------------------------------------------------- topics (headlines)
COUNTRIES = ["Norway", "Chile", "Kenya", "Vietnam", "Canada", "Egypt", "Peru", "Poland",
             "Japan", "Ghana", "Portugal", "Mongolia", "Brazil", "Finland", "India", "Morocco"]
TEAMS = ["Riverside Rovers", "Northgate United", "Harbor City Hawks", "Valley Wolves",
         "Eastbrook Eagles", "Summit FC", "Lakeside Lions", "Ironbridge Athletic",
         "Westfield Wanderers", "Coastline Comets"]
SPORTS_PEOPLE = ["veteran striker", "young goalkeeper", "star sprinter", "tennis champion",
                 "team captain", "rookie pitcher", "marathon runner", "world number one"]
COMPANIES = ["Brightline Foods", "Kestrel Motors", "Northwind Bank", "Orchard Retail",
             "Pioneer Steel", "Bluewater Shipping", "Crestview Insurance", "Meadow Dairy Group",
             "Granite Airlines", "Silverleaf Hotels"]
WORLD = ["{c} and {d} agree to reopen border talks", "Floods force thousands from their homes in {c}",
         "{c} holds snap election after coalition collapses", "Peace envoy arrives in {c} for ceasefire talks",
         "{c} recalls ambassador from {d} over spy row", "Protesters fill the streets of {c} for a third night",
         "{c} president pardons jailed opposition leader", "Earthquake shakes northern {c}, rescue teams deployed",
         "{c} signs refugee agreement with {d}", "Foreign ministers of {c} and {d} meet at the summit",
         "{c} parliament votes to change the constitution", "Aid convoy reaches besieged town in {c}"]
SPORTS = ["{t} edge past {u} in late comeback", "{t} sack coach after fifth straight defeat",
          "{p} signs three-year deal with {t}", "{t} win the cup final on penalties",
          "Injury rules {p} out of the season opener", "{t} stay top after goalless draw with {u}",
          "{p} breaks national record at indoor championships", "{t} fans celebrate first title in decades",
          "{u} thrash {t} to reach the semi-finals", "{p} announces retirement after twenty years",
          "{t} complete a perfect unbeaten season", "Referee row overshadows {t} win over {u}"]
BUSINESS = ["{m} shares climb after quarterly profit beats forecasts", "{m} to cut 2,000 jobs in restructuring",
            "{m} agrees takeover of {n} in billion-dollar deal", "Inflation eases as fuel prices fall in {c}",
            "{m} chief executive steps down after sales slump", "Central bank of {c} raises interest rates again",
            "{m} reports record revenue despite supply problems", "Investors sell off {m} stock after profit warning",
            "{m} opens 50 new stores across {c}", "Unemployment in {c} falls to lowest level in a decade",
            "{m} and {n} announce merger talks", "Tax changes in {c} hit small businesses"]
SCITECH = ["Researchers unveil a battery that charges in five minutes", "New telescope images reveal a distant planet's clouds",
           "Scientists sequence the genome of an ancient wheat", "Startup launches a phone that repairs its own screen",
           "Study finds sleep helps the brain clear out waste", "Engineers build a robot that can climb walls",
           "Space agency of {c} launches its first lunar probe", "Software flaw exposes millions of passwords",
           "Physicists measure the neutron's lifetime more precisely", "New vaccine shows strong results in early trials",
           "Chip makers race to build smaller transistors", "Ocean sensors track warming currents in real time",
           "Researchers teach an AI model to read old handwriting", "Solar farm in {c} sets an efficiency record",
           "Biologists discover a new species of deep-sea fish", "Quantum computer solves a chemistry problem in minutes",
           "Doctors test a smart patch that monitors blood sugar", "Satellite network brings internet to remote {c}",
           "Archaeologists use lasers to map a buried city", "Electric plane completes its first long flight",
           "Hospitals in {c} trial an AI tool that reads X-rays", "Engineers in {c} test a driverless tram",
           "Volcano sensors in {c} warn of eruption days ahead", "Universities in {c} open a new supercomputer",
           "Lab in {c} grows replacement skin from stem cells", "Rocket startup from {c} reaches orbit on second try",
           "Researchers in {c} turn plastic waste into jet fuel", "Wind turbine prototype in {c} breaks output record",
           "Glacier study in {c} shows ice melting faster than predicted", "Fossil found in {c} rewrites bird evolution"]


def topics(rng):
    out = {"world": set(), "sports": set(), "business": set(), "scitech": set()}
    for _ in range(4000):
        c, d = rng.sample(COUNTRIES, 2)
        t, u = rng.sample(TEAMS, 2)
        m, n = rng.sample(COMPANIES, 2)
        p = rng.choice(SPORTS_PEOPLE)
        fill = dict(c=c, d=d, t=t, u=u, m=m, n=n, p=p)
        out["world"].add(rng.choice(WORLD).format(**fill))
        s = rng.choice(SPORTS).format(**fill)
        out["sports"].add(s[0].upper() + s[1:])
        out["business"].add(rng.choice(BUSINESS).format(**fill))
        out["scitech"].add(rng.choice(SCITECH).format(**fill))
    rows = []
    for lab, items in out.items():
        items = sorted(items)
        rng.shuffle(items)
        rows += [{"sentence": s, "label": lab} for s in items[:120]]
    return rows


# ---------------------------------------------------------------- pairs (premise / hypothesis)
NAMES = ["Maria", "Tom", "Aisha", "Kenji", "Lena", "Omar", "Priya", "Jonas", "Sofia", "Diego",
         "Hana", "Ibrahim", "Chloe", "Mateo", "Nadia", "Felix"]
# (verb past, verb base, item phrase, category, unrelated category, place)
EVENTS = [
    ("bought", "buy", "three apples and a melon", "fruit", "furniture", "at the market"),
    ("bought", "buy", "a wooden chair", "furniture", "fruit", "at a flea market"),
    ("adopted", "adopt", "a grey kitten", "a cat", "a dog", "from the shelter"),
    ("adopted", "adopt", "an old beagle", "a dog", "a cat", "from a neighbour"),
    ("cooked", "cook", "a pot of lentil soup", "a meal", "a cake", "for the family"),
    ("baked", "bake", "a chocolate cake", "a dessert", "bread", "for the party"),
    ("read", "read", "a novel about sailors", "a book", "a newspaper", "on the train"),
    ("painted", "paint", "the garden fence", "something in the garden", "the kitchen", "on Sunday"),
    ("planted", "plant", "two young oak trees", "trees", "flowers", "behind the school"),
    ("repaired", "repair", "a broken bicycle", "a bike", "a car", "in the garage"),
    ("visited", "visit", "an aunt in the hospital", "a relative", "a museum", "on Friday"),
    ("wrote", "write", "a letter to the mayor", "a letter", "a poem", "last night"),
    ("sold", "sell", "an old piano", "a musical instrument", "a bicycle", "to a teacher"),
    ("caught", "catch", "a large trout", "a fish", "a bird", "in the river"),
    ("lost", "lose", "a set of house keys", "some keys", "a wallet", "at the station"),
    ("won", "win", "a chess tournament", "a competition", "a lottery", "in the city"),
]


def pairs(rng):
    rows, seen = [], set()
    for name in NAMES:
        for past, base, item, cat, other, place in EVENTS:
            prem = f"{name} {past} {item} {place}."
            a_cat = cat if cat.startswith(("a ", "an ", "some", "something")) or cat.endswith("s") \
                or cat in ("fruit", "furniture", "bread") else "a " + cat
            a_oth = other if other.startswith(("a ", "an ", "some", "the ")) or other.endswith("s") \
                or other in ("fruit", "furniture", "bread") else "a " + other
            yes = [f"{name} {past} {a_cat}.", f"Someone {past} {item}.",
                   f"{name} {past} something {place}."]
            no = [f"{name} did not {base} anything.", f"{name} {past} {a_oth} instead.",
                  f"Nobody {past} {item}."]
            rows.append({"premise": prem, "hypothesis": rng.choice(yes), "label": "yes"})
            rows.append({"premise": prem, "hypothesis": rng.choice(no), "label": "no"})
    rng.shuffle(rows)
    out = []
    for r in rows:
        key = (r["premise"], r["hypothesis"])
        if key not in seen:
            seen.add(key)
            out.append(r)
    return out


# ---------------------------------------------------------------- facts
def read_psv(name):
    rows = []
    for line in (HERE / "src" / name).read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            rows.append(line.split("|"))
    return rows


def facts():
    countries = read_psv("countries.psv")
    rel = {"capital": [], "language": [], "continent": [], "currency": [], "city-country": []}
    for c, cap, lang, cont, cur in countries:
        if cap != "-" and cap != c:
            rel["capital"].append({"subject": c, "object": cap})
        rel["language"].append({"subject": c, "object": lang})
        rel["continent"].append({"subject": c, "object": cont})
        rel["currency"].append({"subject": c, "object": cur})
    for city, country in read_psv("cities.psv"):
        rel["city-country"].append({"subject": city, "object": country})
    return rel


# ---------------------------------------------------------------- writing
def split(rows, key, n_dev, n_test, rng, group=None):
    """Stratified split by ``key`` (None: not stratified); texts never repeat across splits.
    ``group`` (a field) keeps all rows sharing it in one split (pairs share premises)."""
    rows = rows[:]
    rng.shuffle(rows)
    if group:
        groups = {}
        for r in rows:
            groups.setdefault(r[group], []).append(r)
        keys = sorted(groups)
        rng.shuffle(keys)
        test, dev, train = [], [], []
        for k in keys:
            tgt = test if len(test) < n_test else dev if len(dev) < n_dev else train
            tgt += groups[k]
        return train, dev, test
    if key is None:
        return rows[n_dev + n_test:], rows[:n_dev], rows[n_dev:n_dev + n_test]
    by = {}
    for r in rows:
        by.setdefault(r[key], []).append(r)
    tr, dv, te = [], [], []
    k = len(by)
    for lab in sorted(by):
        items = by[lab]
        dv += items[:n_dev // k]
        te += items[n_dev // k:n_dev // k + n_test // k]
        tr += items[n_dev // k + n_test // k:]
    for part in (tr, dv, te):
        rng.shuffle(part)
    return tr, dv, te


def write_jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def write_csv(path, rows, cols):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)


FACT_TEMPLATES = {
    "capital": ("The capital of {subject} is [MASK]", "knowledge probe: country -> capital city"),
    "language": ("The official language of {subject} is [MASK]",
                 "knowledge probe: country -> official language"),
    "continent": ("{subject} is a country in [MASK]",
                  "knowledge probe: country -> continent (the Americas are 'America')"),
    "currency": ("The currency of {subject} is the [MASK]", "knowledge probe: country -> currency"),
    "city-country": ("{subject} is a city in [MASK]", "knowledge probe: city -> country"),
}


def main():
    rng = random.Random(20261127)
    man = {}
    s = sentiment(rng)
    tr, dv, te = split(s, "label", 80, 200, rng)
    for nm, part in (("train", tr), ("dev", dv), ("test", te)):
        write_csv(HERE / "sentiment" / f"{nm}.csv", part, ["sentence", "label"])
    man["sentiment"] = {
        "task": "classification", "fields": ["sentence"], "label_field": "label",
        "label_space": "classes", "classes": ["negative", "positive"],
        "verbalizer": {"negative": ["terrible"], "positive": ["great"]},
        "templates": {"causal": "{sentence} It was [MASK]", "masked": "{sentence} It was [MASK] ."},
        "ptuning_templates": {"causal": "{sentence} [P*4] It was [MASK]",
                              "masked": "{sentence} [P*4] It was [MASK] ."},
        "description": "Short movie and product reviews: is the writer pleased or not?",
        "files": {"train": "sentiment/train.csv", "dev": "sentiment/dev.csv",
                  "test": "sentiment/test.csv"}}
    t = topics(rng)
    tr, dv, te = split(t, "label", 80, 160, rng)
    for nm, part in (("train", tr), ("dev", dv), ("test", te)):
        write_csv(HERE / "topics" / f"{nm}.csv", part, ["sentence", "label"])
    man["topics"] = {
        "task": "classification", "fields": ["sentence"], "label_field": "label",
        "label_space": "classes", "classes": ["business", "scitech", "sports", "world"],
        "verbalizer": {"world": ["World"], "sports": ["Sports"], "business": ["Business"],
                       "scitech": ["Science"]},
        "templates": {"causal": "{sentence} This news story is about [MASK]",
                      "masked": "[MASK] news : {sentence}"},
        "ptuning_templates": {"causal": "{sentence} [P*4] This news story is about [MASK]",
                              "masked": "[P*2] [MASK] [P*2] news : {sentence}"},
        "description": "One-line news headlines in four sections: world, sports, business, "
                       "science and technology.",
        "files": {"train": "topics/train.csv", "dev": "topics/dev.csv", "test": "topics/test.csv"}}
    p = pairs(rng)
    # This call's result is not used (the split below replaces it), but it advances `rng`;
    # it stays so that the committed files, and the figures measured on them, reproduce.
    split(p, None, 0, 0, rng, group="premise")
    # group split by premise: about 60 / 10 / 30
    prem = sorted({r["premise"] for r in p})
    rng.shuffle(prem)
    n = len(prem)
    te_p, dv_p = set(prem[:int(n * .3)]), set(prem[int(n * .3):int(n * .4)])
    te = [r for r in p if r["premise"] in te_p]
    dv = [r for r in p if r["premise"] in dv_p]
    tr = [r for r in p if r["premise"] not in te_p and r["premise"] not in dv_p]
    for nm, part in (("train", tr), ("dev", dv), ("test", te)):
        write_jsonl(HERE / "pairs" / f"{nm}.jsonl", part)
    man["pairs"] = {
        "task": "classification", "fields": ["premise", "hypothesis"], "label_field": "label",
        "label_space": "classes", "classes": ["no", "yes"],
        "verbalizer": {"yes": ["Yes"], "no": ["No"]},
        "templates": {"causal": "{premise} Question: {hypothesis} [A:True or false?] Answer: [MASK]",
                      "masked": "{premise} [A:?] [MASK] , {hypothesis}"},
        "ptuning_templates": {"causal": "{premise} [P*2] {hypothesis} [A:?] [P*2] Answer: [MASK]",
                              "masked": "{premise} [A:?] [MASK] [P*3] , {hypothesis}"},
        "description": "Does the second sentence follow from the first? (yes / no)",
        "files": {"train": "pairs/train.jsonl", "dev": "pairs/dev.jsonl",
                  "test": "pairs/test.jsonl"}}
    for relname, rows in facts().items():
        tpl, desc = FACT_TEMPLATES[relname]
        rows = sorted(rows, key=lambda r: r["subject"])
        r2 = random.Random(f"facts-{relname}")
        r2.shuffle(rows)
        n = len(rows)
        tr, dv, te = rows[: n * 2 // 5], rows[n * 2 // 5: n // 2], rows[n // 2:]
        name = f"facts-{relname}"
        for nm, part in (("train", tr), ("dev", dv), ("test", te)):
            write_jsonl(HERE / "facts" / relname / f"{nm}.jsonl", part)
        man[name] = {
            "task": "probe", "fields": ["subject"], "label_field": "object",
            "label_space": "vocab", "classes": None, "verbalizer": None,
            "templates": {"causal": tpl, "masked": tpl + " ."},
            "ptuning_templates": {"causal": "[P*3] " + tpl.replace("[MASK]", "[P*3] [MASK]"),
                                  "masked": "[P*3] " + tpl.replace("[MASK]", "[P*3] [MASK]") + " ."},
            "description": desc,
            "files": {"train": f"facts/{relname}/train.jsonl", "dev": f"facts/{relname}/dev.jsonl",
                      "test": f"facts/{relname}/test.jsonl"}}
    with open(HERE / "manifest.json", "w", encoding="utf-8") as f:
        json.dump({"version": 1, "datasets": man}, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()

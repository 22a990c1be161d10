"""Build the bundled second task: WordNet 3.0 noun definitions -> their lexicographer category.

Reads Debian's `wordnet-base` (/usr/share/wordnet/data.noun), keeps the 24 noun categories with at least
300 synsets (drops noun.Tops and noun.motive), samples 200 synsets per category with a fixed seed, and
writes src/silobridge/data/bundled/wordnet_nouns.csv (columns: text = the definition without its usage
examples, label = the category without "noun.", split = train | test: 42 per category held out, 1,008 in all) and
WordNet's licence beside it. The file in the repo was made by this script:

    apt-get install wordnet-base && python3 scripts/make_wordnet_nouns.py
"""
from __future__ import annotations

import csv
import random
import re
import shutil
from collections import defaultdict
from pathlib import Path

WORDNET = Path("/usr/share/wordnet")
OUT = Path(__file__).resolve().parents[1] / "src" / "silobridge" / "data" / "bundled"
LEXNAMES = ("adj.all adj.pert adv.all noun.Tops noun.act noun.animal noun.artifact noun.attribute noun.body "
            "noun.cognition noun.communication noun.event noun.feeling noun.food noun.group noun.location "
            "noun.motive noun.object noun.person noun.phenomenon noun.plant noun.possession noun.process "
            "noun.quantity noun.relation noun.shape noun.state noun.substance noun.time").split()
PER_CLASS, TEST_PER_CLASS, MIN_SYNSETS, SEED = 200, 42, 300, 20261201


def definition(gloss: str) -> str:
    """The gloss up to its first quoted usage example (examples often contain the word itself)."""
    text = re.split(r';\s*"', gloss, maxsplit=1)[0]
    return " ".join(text.strip().strip(";").split())


def main() -> None:
    by_class: dict[str, list[str]] = defaultdict(list)
    for line in (WORDNET / "data.noun").read_text(encoding="latin-1").splitlines():
        if line.startswith("  ") or "|" not in line:  # the licence header
            continue
        fields, gloss = line.split("|", 1)
        text = definition(gloss)
        if len(text.split()) >= 3:
            by_class[LEXNAMES[int(fields.split()[1])].removeprefix("noun.")].append(text)
    rng = random.Random(SEED)
    rows = []
    for label in sorted(c for c, texts in by_class.items() if len(texts) >= MIN_SYNSETS):
        texts = sorted(set(by_class[label]))
        picked = rng.sample(texts, PER_CLASS)
        rows += [(t, label, "test" if i < TEST_PER_CLASS else "train") for i, t in enumerate(picked)]
    rng.shuffle(rows)
    OUT.mkdir(parents=True, exist_ok=True)
    with open(OUT / "wordnet_nouns.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["text", "label", "split"])
        w.writerows(rows)
    shutil.copy("/usr/share/doc/wordnet-base/copyright", OUT / "WORDNET-LICENSE")
    print(f"{len(rows)} rows, {len({r[1] for r in rows})} classes -> {OUT / 'wordnet_nouns.csv'}")


if __name__ == "__main__":
    main()

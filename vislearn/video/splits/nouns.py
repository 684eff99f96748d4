"""Noun canonicalisation: SSv2 placeholders are free text; splits need one name per object.

The rule is deterministic and needs no dictionary. Per raw placeholder (`canonical_form`):

1. Unicode NFKC, lower case; a possessive "'s" is removed, other apostrophes are deleted
   ("man's sandals" -> "man sandals", "jack o'lantern" -> "jack olantern").
2. Every run of characters other than a-z and 0-9 becomes one space ("nail-brush" ->
   "nail brush", "rim/handle" -> "rim handle"); leading/trailing spaces go.
3. Leading filler words are dropped while more than one word remains: articles, determiners,
   possessives, numbers and quantity words (`LEADING_WORDS`: a, an, the, some, my, this, two,
   another, ...), stray leading prepositions left by annotators ("of", "into", "onto", ...), and
   a quantity noun followed by "of" (`QUANTITY_NOUNS`: "pair of", "piece of", "bunch of", ...).
   "the ice chest" -> "ice chest", "2 toy blocks" -> "toy blocks", "pair of flip flop" -> "flip flop".
4. Leading size/colour/state adjectives (`ADJECTIVES`: small, big, white, red, empty, old, ...)
   are dropped while more than one word remains: "small box" -> "box", "yellow onion" -> "onion".
5. The last word (the head of an English compound) is singularised with suffix rules
   (-ies -> -y, -sses/-xes/-ches/-shes/-zzes -> drop "es", otherwise drop a final "s" unless the
   word ends in ss/us/is or is 3 letters or fewer), with explicit exceptions (`IRREGULAR`,
   `INVARIANT`): "boxes" -> "box", "batteries" -> "battery", "knives" -> "knife",
   "scissors" -> "scissor", "clothes" stays.

Then, over the whole collection of nouns (`build_noun_map`), two data-dependent merges:

6. Spelling variants that differ only by spaces ("match box" / "matchbox", "note book" /
   "notebook") are merged into the most frequent spelling (ties: fewer spaces, then alphabetical).
7. Optional (`merge_heads=N`, off by default, as in the official split where "water bottle" and
   "bottle" are distinct objects): a multi-word noun whose last word is itself a canonical noun
   with at least N videos is mapped to that last word ("plastic bottle" -> "bottle").

Typos ("lipstik", "patato") are not corrected: there is no dictionary to correct them against.
A placeholder that is empty after step 2 has no canonical form ("" is returned) and the video is
dropped by the callers, who report it.
"""
from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache

LEADING_WORDS = frozenset("""
a an the some any my your his her its our their this that these those
one two three four five six seven eight nine ten eleven twelve
another other others few several many much more all both each every half
of into onto in on to from with at over
""".split())

QUANTITY_NOUNS = frozenset("""
pair pairs piece pieces bit bits bunch bunches couple lot lots number numbers handful
set sets kind type sort
""".split())

ADJECTIVES = frozenset("""
small big large little tiny huge mini medium
white black red green blue yellow pink purple brown grey gray
empty full old new clean dirty used
""".split())

IRREGULAR = {
    "men": "man", "women": "woman", "children": "child", "feet": "foot", "teeth": "tooth",
    "geese": "goose", "mice": "mouse", "people": "person", "knives": "knife", "leaves": "leaf",
    "shelves": "shelf", "halves": "half", "loaves": "loaf", "wolves": "wolf", "scarves": "scarf",
    "wives": "wife", "lives": "life", "calves": "calf", "thieves": "thief",
    "potatoes": "potato", "tomatoes": "tomato", "mangoes": "mango", "heroes": "hero",
    "echoes": "echo", "dominoes": "domino", "volcanoes": "volcano", "mosquitoes": "mosquito",
    "cookies": "cookie", "movies": "movie", "brownies": "brownie", "zombies": "zombie",
    "selfies": "selfie", "smoothies": "smoothie", "pies": "pie", "ties": "tie", "lies": "lie",
    "quizzes": "quiz", "buses": "bus", "gases": "gas", "lenses": "lens", "axes": "axe",
    "cactuses": "cactus", "octopuses": "octopus", "cds": "cd", "dvds": "dvd",
}

INVARIANT = frozenset("""
news chess clothes pants jeans shorts trousers pajamas pyjamas tongs series species
lens bus gas canvas atlas christmas physics mathematics dice corps
""".split())

_POSSESSIVE = re.compile(r"['\u2019]s\b")
_APOSTROPHE = re.compile(r"['\u2019`]")
_NON_ALNUM = re.compile(r"[^a-z0-9]+")


def singular(word: str) -> str:
    """Singular of one lower-case word by the suffix rules above (unchanged if unsure)."""
    if word in IRREGULAR:
        return IRREGULAR[word]
    if word in INVARIANT or len(word) <= 3 or not word.isalpha() or not word.endswith("s"):
        return word
    if word.endswith(("ss", "us", "is")):
        return word
    if word.endswith("ies"):
        return word[:-3] + "y"
    if word.endswith(("sses", "xes", "ches", "shes", "zzes")):
        return word[:-2]
    return word[:-1]


def _is_filler(word: str) -> bool:
    return word in LEADING_WORDS or word.isdigit()


@lru_cache(maxsize=1 << 18)
def canonical_form(raw: str) -> str:
    """Steps 1-5 of the module rule for one placeholder ('' when nothing is left)."""
    text = unicodedata.normalize("NFKC", raw).lower()
    text = _APOSTROPHE.sub("", _POSSESSIVE.sub("", text))
    words = _NON_ALNUM.sub(" ", text).split()
    if not words:
        return ""
    changed = True
    while changed and len(words) > 1:
        changed = False
        if _is_filler(words[0]):
            words = words[1:]
            changed = True
        elif len(words) > 2 and words[0] in QUANTITY_NOUNS and words[1] == "of":
            words = words[2:]
            changed = True
    while len(words) > 1 and words[0] in ADJECTIVES:
        words = words[1:]
    words[-1] = singular(words[-1])
    return " ".join(words)


@dataclass
class NounMap:
    """raw placeholder -> canonical noun, with what was merged (for the report)."""

    mapping: dict[str, str]
    counts: Counter  # raw form -> number of occurrences
    space_merges: dict[str, list[str]] = field(default_factory=dict)  # kept spelling -> merged spellings
    head_merges: dict[str, list[str]] = field(default_factory=dict)  # head noun -> merged compounds

    def __getitem__(self, raw: str) -> str:
        value = self.mapping.get(raw)
        return canonical_form(raw) if value is None else value

    def merges(self) -> dict[str, dict[str, int]]:
        """canonical -> {raw form: occurrences} for every canonical noun with more than one raw form,
        or whose single raw form differs from it. Ordered by canonical noun."""
        groups: dict[str, dict[str, int]] = {}
        for raw, canon in self.mapping.items():
            groups.setdefault(canon, {})[raw] = self.counts.get(raw, 0)
        out = {}
        for canon in sorted(groups):
            forms = groups[canon]
            if len(forms) > 1 or next(iter(forms)) != canon:
                out[canon] = dict(sorted(forms.items(), key=lambda kv: (-kv[1], kv[0])))
        return out

    def summary(self) -> dict:
        merges = self.merges()
        return {
            "rule": "nouns.canonical_form (lower case, punctuation, leading fillers/adjectives, singular head)"
                    " + space-variant merge" + (" + head merge" if self.head_merges else ""),
            "raw_forms": len(self.mapping),
            "canonical_forms": len(set(self.mapping.values())),
            "raw_forms_changed_or_merged": sum(len(v) for v in merges.values()),
            "space_variant_merges": self.space_merges,
            "head_merges": self.head_merges,
            "merges": merges,
        }


def build_noun_map(raw_counts: Counter, merge_heads: int = 0) -> NounMap:
    """Canonicalise every raw form (steps 1-5), then merge space variants (6) and optionally heads (7).

    `raw_counts`: raw placeholder -> number of videos (or occurrences) it appears in; the counts
    decide which spelling wins a space-variant merge and which heads are frequent.
    """
    mapping = {raw: canonical_form(raw) for raw in sorted(raw_counts)}
    canon_counts: Counter = Counter()
    for raw, n in raw_counts.items():
        canon_counts[mapping[raw]] += n
    canon_counts.pop("", None)

    # 6. space variants
    by_key: dict[str, list[str]] = {}
    for canon in canon_counts:
        by_key.setdefault(canon.replace(" ", ""), []).append(canon)
    redirect: dict[str, str] = {}
    space_merges: dict[str, list[str]] = {}
    for variants in by_key.values():
        if len(variants) < 2:
            continue
        variants.sort(key=lambda c: (-canon_counts[c], c.count(" "), c))
        keep = variants[0]
        space_merges[keep] = sorted(variants[1:])
        for other in variants[1:]:
            redirect[other] = keep
    merged_counts: Counter = Counter()
    for canon, n in canon_counts.items():
        merged_counts[redirect.get(canon, canon)] += n

    # 7. head nouns (optional)
    head_merges: dict[str, list[str]] = {}
    if merge_heads > 0:
        for canon in sorted(merged_counts):
            if " " not in canon:
                continue
            head = canon.rsplit(" ", 1)[1]
            if head != canon and merged_counts.get(head, 0) >= merge_heads:
                redirect_target = head
                for src, dst in list(redirect.items()):
                    if dst == canon:
                        redirect[src] = redirect_target
                redirect[canon] = redirect_target
                head_merges.setdefault(head, []).append(canon)
    final = {raw: redirect.get(c, c) for raw, c in mapping.items()}
    return NounMap(mapping=final, counts=Counter(raw_counts), space_merges=dict(sorted(space_merges.items())),
                   head_merges=dict(sorted(head_merges.items())))

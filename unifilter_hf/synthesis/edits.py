"""Controlled text edits for the rule-based backend, each recorded as a structured :class:`Edit`.

Property edits change one fact of a text: a color, a count, a spatial relation, a size or an object.
Writing edits damage the form: a typo, a doubled word, a wrong homophone, a lowercase sentence start.
Every edit is a single contiguous span replacement (an article before a changed word is part of the span
when it must change too, "an orange" -> "a blue"), so "exactly one property error" is checkable: apply the
record to the positive and get the negative; diff the two and find one changed span.

Example:
    >>> import random
    >>> text = "A red cup on the left of two spoons."
    >>> sorted({c.type for c in property_candidates(text)})
    ['color', 'count', 'object', 'spatial']
    >>> e = choose_edits(text, 1, random.Random(0))[0]
    >>> apply_edits(text, [e]) != text
    True
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass

_COLORS = ["red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white", "gray",
           "silver", "golden", "beige"]
_COLOR_ALIASES = {"grey": "gray", "gold": "golden"}
_NUMBERS = ["two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve"]
_SPATIAL_PAIRS = [("left", "right"), ("above", "below"), ("top", "bottom"), ("upper", "lower"),
                  ("in front of", "behind"), ("inside", "outside"), ("north", "south"), ("east", "west")]
_SIZE_PAIRS = [("small", "large"), ("big", "tiny"), ("tall", "short"), ("long", "short"), ("wide", "narrow"),
               ("thin", "thick")]
# Object swaps keep the grammatical number, so the edited sentence stays well formed.
_OBJECTS = {
    "cat": "dog", "dog": "cat", "cup": "bowl", "saucer": "plate", "spoon": "fork", "table": "bench",
    "bench": "chair", "rocket": "airplane", "towers": "chimneys", "tower": "lighthouse", "flag": "banner",
    "helmet": "hat", "shuttle": "helicopter", "coins": "buttons", "coin": "button", "motorcycle": "bicycle",
    "shelves": "cabinets", "boxes": "bags", "crate": "bucket", "man": "woman", "woman": "man",
    "tripod": "ladder", "camera": "telescope", "trees": "bushes", "lake": "river", "island": "boat",
    "dahlia": "rose", "petals": "feathers", "bricks": "tiles", "stones": "shells", "gravel": "sand",
    "clover": "moss", "galaxies": "clouds", "star": "planet", "craters": "boulders", "crater": "boulder",
    "cell": "bubble", "nuclei": "crystals", "vessels": "roots", "eyes": "ears", "nose": "mouth",
    "whiskers": "feathers", "paper": "cloth", "clock": "mirror", "columns": "ropes", "glands": "hairs",
    "espresso": "tea", "seat": "basket", "engine": "battery", "buildings": "tents", "field": "beach",
    "sky": "wall", "suit": "dress", "patch": "button", "disc": "square", "code": "poetry", "coat": "shirt",
    "gloves": "rings", "leaves": "stones", "lawn": "desert", "pavement": "carpet", "retina": "tongue",
    "ink": "paint", "equations": "doodles", "notes": "drawings", "galaxy": "cloud",
}
_HOMOPHONES = {"their": "there", "there": "their", "its": "it's", "to": "too", "than": "then", "then": "than",
               "your": "you're", "whose": "who's", "were": "where"}
_VOWEL_START = re.compile(r"^[aeiou]", re.I)

PROPERTY_TYPES = ("color", "count", "spatial", "size", "object")


@dataclass(frozen=True)
class Edit:
    """Replace ``text[start:end]`` (which reads ``before``) by ``after``; offsets refer to the input text."""

    type: str
    start: int
    end: int
    before: str
    after: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Candidate:
    """A place where a property edit can happen and the values it may take."""

    type: str
    start: int
    end: int
    before: str
    options: tuple[str, ...]


def _word_re(words: Sequence[str]) -> re.Pattern:
    alts = sorted(words, key=len, reverse=True)
    return re.compile(r"(?<![\w-])(" + "|".join(re.escape(w) for w in alts) + r")(?![\w-])", re.I)


_COLOR_RE = _word_re(_COLORS + list(_COLOR_ALIASES))
_NUMBER_RE = re.compile(r"(?<![\w.,-])(" + "|".join(_NUMBERS) + r"|[2-9]|[1-9][0-9])(?![\w.,-])", re.I)
_SPATIAL_RE = _word_re([w for pair in _SPATIAL_PAIRS for w in pair])
_SIZE_RE = _word_re([w for pair in _SIZE_PAIRS for w in pair])
_OBJECT_RE = _word_re(list(_OBJECTS))


def _match_case(word: str, like: str) -> str:
    if like.isupper() and len(like) > 1:
        return word.upper()
    return word[:1].upper() + word[1:] if like[:1].isupper() else word


def property_candidates(text: str) -> list[Candidate]:
    """All spans of ``text`` where one property edit is possible, in text order."""
    out: list[Candidate] = []
    for m in _COLOR_RE.finditer(text):
        base = _COLOR_ALIASES.get(m.group(1).lower(), m.group(1).lower())
        out.append(Candidate("color", m.start(), m.end(), m.group(1), tuple(c for c in _COLORS if c != base)))
    for m in _NUMBER_RE.finditer(text):
        word = m.group(1).lower()
        if word.isdigit():
            n = int(word)
            opts = tuple(str(v) for v in (n - 2, n - 1, n + 1, n + 2, n * 2) if v >= 2 and v != n)
        else:
            opts = tuple(w for w in _NUMBERS if w != word)
        out.append(Candidate("count", m.start(), m.end(), m.group(1), opts))
    for regex, pairs, kind in ((_SPATIAL_RE, _SPATIAL_PAIRS, "spatial"), (_SIZE_RE, _SIZE_PAIRS, "size")):
        for m in regex.finditer(text):
            word = m.group(1).lower()
            opts = tuple(b if a == word else a for a, b in pairs if word in (a, b))
            out.append(Candidate(kind, m.start(), m.end(), m.group(1), opts))
    for m in _OBJECT_RE.finditer(text):
        out.append(Candidate("object", m.start(), m.end(), m.group(1), (_OBJECTS[m.group(1).lower()],)))
    out.sort(key=lambda c: (c.start, c.type))
    return _drop_overlaps(out)


def _drop_overlaps(cands: list[Candidate]) -> list[Candidate]:
    kept: list[Candidate] = []
    for c in cands:
        if kept and c.start < kept[-1].end:
            continue
        kept.append(c)
    return kept


def _realize(text: str, cand: Candidate, value: str) -> Edit:
    """The edit for ``cand`` -> ``value``, widened to a preceding article when "a"/"an" must change."""
    after = _match_case(value, cand.before)
    start = cand.start
    art = re.search(r"(?<![\w-])(an?)\s+$", text[: cand.start], re.I)
    if art:
        needs_an = bool(_VOWEL_START.match(after))
        has_an = art.group(1).lower() == "an"
        if needs_an != has_an:
            new_art = _match_case("an" if needs_an else "a", art.group(1))
            start = art.start(1)
            return Edit(cand.type, start, cand.end, text[start : cand.end],
                        new_art + text[art.end(1) : cand.start] + after)
    return Edit(cand.type, start, cand.end, cand.before, after)


def choose_edits(text: str, n: int, rng: random.Random, types: Sequence[str] = PROPERTY_TYPES) -> list[Edit]:
    """Pick ``n`` non-overlapping property edits of ``text`` (fewer if fewer places exist), spreading over
    different edit types first. Edits are returned in text order."""
    cands = [c for c in property_candidates(text) if c.type in types and c.options]
    rng.shuffle(cands)
    picked: list[Candidate] = []
    used_types: set[str] = set()
    for pass_ in (0, 1):  # first one per type, then anything left
        for c in cands:
            if len(picked) >= n:
                break
            if c in picked or (pass_ == 0 and c.type in used_types):
                continue
            if any(c.start < p.end + 1 and p.start < c.end + 1 for p in picked):
                continue  # keep edits apart so each stays its own span (and articles are not shared)
            picked.append(c)
            used_types.add(c.type)
    picked.sort(key=lambda c: c.start)
    return [_realize(text, c, rng.choice(c.options)) for c in picked]


def apply_edits(text: str, edits: Sequence[Edit]) -> str:
    """Apply non-overlapping edits (offsets relative to ``text``)."""
    out = text
    for e in sorted(edits, key=lambda e: e.start, reverse=True):
        if out[e.start : e.end] != e.before:
            raise ValueError(f"edit {e} does not match the text")
        out = out[: e.start] + e.after + out[e.end :]
    return out


def writing_edits(
    text: str, n: int, rng: random.Random, avoid: Sequence[Edit] = ()
) -> list[Edit]:
    """Pick ``n`` non-overlapping writing errors (typos, doubled words, homophones, lost capitals), away from
    the spans of ``avoid`` (edits already chosen for the same text)."""
    words = [m for m in re.finditer(r"[A-Za-z']+", text)]
    rng.shuffle(words)
    edits: list[Edit] = []
    taken: list[tuple[int, int]] = [(e.start, e.end) for e in avoid]
    for m in words:
        if len(edits) >= n:
            break
        if any(m.start() < b + 1 and a < m.end() + 1 for a, b in taken):
            continue
        edit = _writing_edit(text, m, rng)
        if edit is not None:
            edits.append(edit)
            taken.append((m.start(), m.end()))
    return sorted(edits, key=lambda e: e.start)


def _writing_edit(text: str, m: re.Match, rng: random.Random) -> Edit | None:
    word = m.group(0)
    low = word.lower()
    if low in _HOMOPHONES:
        return Edit("homophone", m.start(), m.end(), word, _match_case(_HOMOPHONES[low], word))
    sentence_start = m.start() == 0 or re.search(r"[.!?]\s+$", text[: m.start()]) is not None
    if sentence_start and word[:1].isupper() and len(word) > 1 and rng.random() < 0.5:
        return Edit("capitalization", m.start(), m.end(), word, word[:1].lower() + word[1:])
    if len(word) >= 5 and word.isalpha():
        i = rng.randrange(1, len(word) - 2)
        op = rng.choice(("swap", "drop", "double"))
        if op == "swap" and word[i] != word[i + 1]:
            typo = word[:i] + word[i + 1] + word[i] + word[i + 2 :]
        elif op == "drop":
            typo = word[:i] + word[i + 1 :]
        else:
            typo = word[: i + 1] + word[i] + word[i + 1 :]
        if typo != word:
            return Edit("typo", m.start(), m.end(), word, typo)
    if len(word) >= 3 and word.isalpha():
        return Edit("repeated_word", m.start(), m.end(), word, f"{word} {word.lower()}")
    return None

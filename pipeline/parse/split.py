"""Pure title/author splitter for the glued second line of a listing record.

The listing prints the title and the first author with no separator
(``...Early experiments with GPT-4Sébastien Bubeck, ...``). The boundary lies inside one
space-separated token: the last word of the title glued to the first word of the first author.

Rules, in order:

1. Affiliation slugs (`` · openai, uw``) and `` et al.`` are taken off the end; ``et al.`` means
   exactly three authors are shown.
2. Reading with 3, 2 or 1 shown authors: the last entries after ", " are the 2nd and 3rd authors,
   the entry before them holds the boundary. Each reading pays one point for every glued token
   (``EvaluationMahdi``) it leaves in the title or in the 2nd/3rd author (a compound family name
   such as ``Pedram MohajerAnsari`` is none), and for English stopwords in those authors; the
   cheapest reading wins, ties going to more authors. An entry of one punctuation mark (``:``,
   left where an author list was cut at a colon) is an entry of its own.
3. Within the glued entry, every token right of the boundary must read as part of a name (a
   grammar of name words, initials, particles, hyphens, apostrophes, known inner-capital prefixes
   such as Mc/De/Le, romanised East-Asian compounds such as HongSheng, a tie ``~`` or a stray space
   after a hyphen or apostrophe, a quoted nickname). An organisation may open the author when an
   organisation word (Team, AI, Lab, Seed, Collaboration, ...) follows it or is glued on
   (``Gemma Team``, ``OpenAI``, ``DeepSeek-AI``, ``KimiTeam``), when it is all capitals glued to a
   lower-case title end (``LearningNVIDIA``), or when the organisation registry starts a name with
   it (``MiniMax``); beside an organisation word, words no person's name holds may stand in it
   (``SAM 3D Team``, ``Team Hunyuan3D``, ``HyperCLOVA X Team``). Glued to a lower-case title end, a
   block of initials (``MSVPJ``) opens a name, and so does, after a plain word end, a given name
   with a stray second capital whose folded form the lexicon holds (``PIerre``). The **earliest**
   valid boundary wins (the longest first author): a title word glued to a name is almost never
   itself a name word, so it blocks every boundary left of it.
4. Compound name words (two capitalised parts: ``TehraniNasab``, ``JuneHyoung``) may move the
   boundary earlier when that leaves fewer glued tokens: into the token before, when the earliest
   boundary cuts a compound and leaves its second part alone as the name (``GenerationZahra
   TehraniNasab``); within the token, when another shown author writes a given name as a compound
   (``BiasJuneHyoung Kwon, MiHyeon Kim``), never after a plural or capitals (``OmniModels``,
   ``VLMs``), or when the given-name lexicon holds both halves (``DatabasesAmirHossein``), unless
   the title word before them is a given name too (``TianQin``). A title may end in a compound too
   (``AdaptNet``), hence the evidence asked for.
5. The split is flagged ``ambiguous`` when a later boundary in the same token would leave an
   equally plausible title ending (``MRIKM Khalid``: ``MRI`` + ``KM`` or ``MR`` + ``IKM``).
   When no reading exists at all, the line is a ``no_author_split`` failure, never a guess.

Vocabularies only, no names: particles, stopwords, organisation words, abbreviated given names
(``MD.``), the first words of the organisation registry's names
(``pipeline/refdata/organizations.csv``) and the given-name lexicon
(``pipeline/refdata/given_names.csv``), package data read once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache, lru_cache

from pipeline.parse.reference import load_reference
from schemas.rules import RejectRule

# Python's `re` has no \p{Lu}: build upper/lower classes once from Latin, Greek and Cyrillic.
_CHARS = [chr(c) for c in range(0x0250)] + [chr(c) for c in range(0x0370, 0x0530)]
_CHARS += [chr(c) for c in range(0x1E00, 0x1F00)]
_UP = "".join(re.escape(c) for c in _CHARS if c.isupper())
_LO = "".join(re.escape(c) for c in _CHARS if c.islower())
U = f"[{_UP}]"
L = f"[{_LO}]"
APOS = "'’"

PARTICLES = frozenset(
    "van von der den de del della dela di da das dos do du le la les lo ten ter te zu af av "
    "y e bin ibn al el dei degli des ap ".split()
)
# Lower-case English words that never stand inside an author name: they mark a title fragment.
STOPWORDS = frozenset(
    "a an and are as at by for from in into is of on or over the to towards under using via "
    "with without vs versus its their our ".split()
)
# Given names abbreviated in capitals, as South Asian author lists write them (MD. for Muhammad,
# MOHD., SK. for Sheikh, MST. for Mosammat): they open a name as initials do.
NAME_ABBREVIATIONS = frozenset("MD. MOHD. SK. MST.".split())
ORG_WORDS = frozenset(
    "Collaboration Consortium Team Group Project Collective Initiative Inc. Lab Labs Survey "
    "Collaborations Teams Authors Contributors AI Seed Research ".split()
)
_INNER_CAP = (
    "Mc|Mac|De|Di|Da|Du|Le|La|Lo|Van|Vande|Vanden|Vander|Von|St|Fitz|Del|Della|Dal|Des|"
    "Al|El|Abdul|Abdus|Abu|Ben|Bin|Ibn|Dela"
)
# A romanised Chinese/Korean syllable (Hong, Sheng, Gyeong, Jae, An): compounds like HongSheng.
_ONSET = r"(?:Zh|Ch|Sh|Kk|Tt|Pp|Ss|Jj|Gy|Ky|Hy|[BCDFGHJKLMNPQRSTWXYZ])"
_CODA = r"(?:ng|n|m|k|l|p|r)?"
_SYL = rf"(?:{_ONSET}[aeiouy]{{0,2}}[aeiou][aeiouy]{{0,2}}{_CODA})"
_SYL_NEXT = rf"(?:(?:{_ONSET}[aeiouy]{{1,3}}|[AEOU][aeiouy]{{0,3}}){_CODA})"
_PART = rf"(?:(?:{_INNER_CAP}){U}{L}+|{U}{L}*)"
_APOS_PART = rf"(?:(?:{L}{{1,3}}|{U}{L}{{0,3}})[{APOS}]{_PART}|{_PART}(?:[{APOS}]{L}+)?)"
_HYPH = rf"(?:{_APOS_PART}|{L}+)"
_WORD = rf"(?:(?:{L}{{1,3}}|{U}{{2,3}})-|de|van|von|di|da|du|le|la)?{_APOS_PART}(?:(?:--?|\. -){_HYPH})*\.?"
_CAMEL = rf"(?:{_SYL}(?:{_SYL_NEXT})(?:{_SYL_NEXT})?(?:-{_HYPH})?)"
_INITIALS = rf"(?:-?{U}{L}{{0,2}}\.(?:-?{U}{L}{{0,2}}\.)*(?:-?{_WORD})?)"
_ALLCAPS = rf"(?:{U}{{2,}}(?:-{U}+)*)"

_word_head = re.compile(rf"{_WORD}\Z").match
_first_token = re.compile(rf"(?:{_WORD}|{_CAMEL}|{_INITIALS}|{U}{{2,3}})\Z").match
# Typography seen in listed names: a hyphen or apostrophe before a space (Rahat-uz- Zaman,
# O' Neill) and a quoted nickname (Zhaoqin "Richie" Li).
_TYPOGRAPHY = rf"(?:{_WORD}-|{U}{L}{{0,2}}[{APOS}]|[\"“]{_WORD}[\"”])"
_next_token = re.compile(
    rf"(?:{_WORD}|{_CAMEL}|{_INITIALS}|{_ALLCAPS}|{_TYPOGRAPHY}|{U}|{L}+|Jr\.?|Sr\.?|[IVX]+\.?)\Z"
).match
# Two capitals with a full stop inside a name (Martin JJ. Bucher; three would read a title end
# glued to an initial, AIJ., as one); to open one, only the abbreviations of
# NAME_ABBREVIATIONS do (after a title, ZnO + H. reads as ZnOH.).
_caps_dot = re.compile(rf"{U}{{2}}\.\Z").match
# A particle glued to the family name without its apostrophe (Claudia dAmato).
_bare_particle = re.compile(rf"[dl]{U}{L}{{2,}}\Z").match
# An organisation written as the first author, allowed when an organisation word follows.
_org_token = re.compile(rf"(?:(?:{U}{L}{{2,}})+{U}*|{U}[{_UP}0-9]+)(?:-(?:{U}[{_UP}0-9]*|{U}{L}+))*\Z").match
# One opening in two letters (InSpatio): read so only after a lower-case title end (QSOs + Euclid
# is no OsEuclid).
_org_token_short = re.compile(rf"{U}{L}(?:{U}{L}{{2,}})+{U}*\Z").match
# A word of an organisation's name that no person's name holds: a short number in it (3D,
# Hunyuan3D) or one capital (HyperCLOVA X); read as part of the author only beside an
# organisation word (a title's end may be a number: ...Detection 2025PAN Team).
_org_part = re.compile(rf"(?:[0-9]{{1,2}}{U}{{1,2}}|{U}{L}+[0-9]{{1,2}}{U}?|{U})\Z").match
# Initials as one block of capitals (MSVPJ Sathvik), or a given name with a stray second capital
# (CHengtang, PIerre): read so only glued to a lower-case title end, with more of the name after.
_caps_block = re.compile(rf"{U}{{4,5}}\Z").match
_stray_capital = re.compile(rf"{U}{U}{L}{{2,}}\Z").match
# The capitalised word that ends a text, glued to a lower-case letter before it (...sAmir).
_last_capitalised = re.compile(rf"(?<={L}){U}{L}+\Z").search
# A name word of two capitalised parts, as romanised and compound names are often written
# (JuneHyoung, TehraniNasab, HaCohen, DElia, SeraJ; in organisations: LongCat, DeepResearch).
_compound = re.compile(rf"(?:{U}{L}*{U}{L}{{2,}}|{U}{L}{{2,}}{U})\Z").match
# An organisation whose last part is an organisation word glued on (OpenAI, DeepSeek-AI, KimiTeam).
_org_suffixed = re.compile(rf"\S*[{_LO}0-9-](?:{'|'.join(map(re.escape, sorted(ORG_WORDS)))})\Z").match
# An entry of one punctuation mark, as arXiv's author lists hold after "Team: Name, ..." is cut
# at commas and colons (``ByteDance Seed, :, Yufeng Yuan``): an entry of its own, which the
# normaliser then rejects (`invalid_author`), rather than no split at all.
_stray_mark = re.compile(r"[:;&\-–—]\Z").match
_name_chars = re.compile(r"[^,:;?!()\[\]{}$=<>/\\|@#%^&*+]+\Z").match

AFFILIATION_TAIL = re.compile(r" · ([a-z0-9][a-z0-9._-]*(?:, [a-z0-9][a-z0-9._-]*)*)\Z")
ET_AL = " et al."


@dataclass(frozen=True, slots=True)
class Split:
    """One reading of a title/author line."""

    title: str
    authors: tuple[str, ...]
    authors_truncated: bool
    affiliations: tuple[str, ...]
    ambiguous: bool


@dataclass(frozen=True, slots=True)
class SplitFailure:
    """No plausible reading: the rule code and a sentence for the rejects table."""

    rule: str
    reason: str


@lru_cache(maxsize=1 << 16)
def is_name_token(token: str) -> bool:
    """True when `token` can stand inside an author name after its first word."""
    named = _next_token(token) or _caps_dot(token) or _bare_particle(token)
    return (bool(named) and token not in STOPWORDS) or token in ORG_WORDS


@lru_cache(maxsize=1 << 16)
def is_first_name_token(token: str) -> bool:
    """True when `token` can open an author name (a name word, initials, a short acronym)."""
    return bool(_first_token(token)) or token in NAME_ABBREVIATIONS


@lru_cache(maxsize=1 << 16)
def looks_like_author(name: str) -> bool:
    """True when a comma-separated entry reads as an author (used for the 2nd and 3rd)."""
    if _stray_mark(name):
        return True
    # A LaTeX line break left at the end of a name (Aakur\\\\) is no title text.
    name = name.rstrip("\\")
    tokens = name.split(" ")
    if not 1 <= len(tokens) <= 8 or not all(tokens) or not _name_chars(name):
        return False
    return any(ch.isalpha() for ch in name)


def _glued_count(text: str) -> int:
    return sum(1 for t in text.replace(",", " ").split() if _is_glued(t))


@cache
def given_names() -> frozenset[str]:
    """Words seen as given names in real author lists, none of them a title word (the lexicon of
    ``pipeline/refdata/given_names.csv``)."""
    return load_reference().given_names


@cache
def signing_names() -> frozenset[str]:
    """First words of the organisation registry's names (MiniMax, NVIDIA, DeepSeek-AI): an
    organisation that signs a paper may start with one without an organisation word after it."""
    return frozenset(org.name.split(" ")[0] for org in load_reference().organizations.values())


def _org_opens(head: str) -> bool:
    """True when `head` ends in an organisation word of its own or starts a registry name."""
    return bool(_org_suffixed(head)) or head in signing_names()


def is_org_word(token: str) -> bool:
    """An organisation word, as listed, in lower case (GigaChat team) or in capitals (FANAR TEAM)."""
    return token in ORG_WORDS or ((token.islower() or token.isupper()) and token.capitalize() in ORG_WORDS)


@lru_cache(maxsize=1 << 16)
def _author_cost(name: str) -> int:
    """Points against reading `name` as an author: glued tokens (a compound family name such as
    Pedram MohajerAnsari is none: a glued title end never comes last), English stopwords, no capital."""
    tokens = name.split(" ")
    cost = sum(1 for t in tokens if _is_glued(t)) + sum(1 for t in tokens if t in STOPWORDS)
    if len(tokens) > 1 and _compound(tokens[-1]) and _is_glued(tokens[-1]):
        cost -= 1
    return cost + (0 if any(t[:1].isupper() for t in tokens) else 1)


@lru_cache(maxsize=1 << 16)
def _is_glued(token: str) -> bool:
    """True for a token that is no name word but hides a name start (``IIYufan``, ``modelsJohn``)."""
    if is_name_token(token):
        return False
    return any(token[p].isupper() and _word_head(token[p:]) for p in range(1, len(token)))


def _boundaries(segment: str, compounds: bool = False) -> list[int]:
    """Every offset in `segment` where a first author can start, earliest first (`compounds`:
    compound name words such as JuneHyoung or TehraniNasab may stand in the name too)."""
    # A tie (~, LaTeX's unbreakable space: Nikin~Matharaarachchi) parts name words as a space
    # does; one character for one, so that offsets still point into `segment`.
    tokens = segment.replace("~", " ").split(" ")
    # The longest run of tokens at the right that can all belong to the author name.
    k = len(tokens)
    while k > 1 and (
        not tokens[k - 1]
        or is_name_token(tokens[k - 1])
        or (compounds and _compound(tokens[k - 1]))
        or _is_org_part(tokens, k - 1)
    ):
        k -= 1
    has_org_word = any(is_org_word(t) for t in tokens[k:])
    found: list[int] = []
    offset = sum(len(t) + 1 for t in tokens[: k - 1])
    for j in range(k - 1, len(tokens)):
        token = tokens[j]
        for p in range(1, len(token)):
            # A title ending in "-" is rarer than a hyphenated title word (Box-Kites).
            if not token[p].isupper() or (token[p - 1] == "-" and token[p - 2 : p - 1].isalnum()):
                continue
            head = token[p:]
            # An organisation (NVIDIA, MiniCPM Team) needs an organisation word after it, or one
            # glued on (OpenAI, DeepSeek-AI, KimiTeam), or a registry name that starts so
            # (MiniMax), or must be a whole all-caps author glued to a lower-case title end
            # (LearningNVIDIA).
            caps_glued = j == len(tokens) - 1 and token[p - 1].islower() and head.isupper()
            if (
                is_first_name_token(head)
                or (compounds and _compound(head))
                or (_org_token(head) and (has_org_word or _org_opens(head) or caps_glued))
                or (has_org_word and _plain_word_end(token[:p]) and _org_token_short(head))
                or (j < len(tokens) - 1 and token[p - 1].islower() and _glued_name_start(token[:p], head))
            ):
                found.append(offset + p)
        offset += len(token) + 1
    return found


def _is_org_part(tokens: list[str], i: int) -> bool:
    """True when `tokens[i]` is a word of an organisation's name that no person's holds (SAM 3D
    Team, NAVER HyperCLOVA X Team, Team Hunyuan3D): one of `_org_part` shapes, before an
    organisation word or last after one glued to the title end."""
    if not _org_part(tokens[i]):
        return False
    if i + 1 < len(tokens):
        return is_org_word(tokens[i + 1])
    return i > 0 and bool(_org_suffixed(tokens[i - 1]))


def _glued_name_start(title_end: str, head: str) -> bool:
    """True when `head`, glued to a title word ending in `title_end` (in a lower-case letter),
    opens a name only there: a block of initials (MSVPJ), and, after a plain lower-case word end,
    a given name with a stray second capital whose folded form the lexicon holds (PIerre)."""
    if _caps_block(head):
        return True
    return bool(_stray_capital(head)) and _plain_word_end(title_end) and head[0] + head[1:].lower() in given_names()


def _plain_word_end(title_end: str) -> bool:
    """True when a title word ends in three lower-case letters: no acronym such as MoE or DiT,
    which a capital glued on may belong to (DiTsKimi Team is DiTs + Kimi Team)."""
    return title_end[-3:].isalpha() and title_end[-3:].islower()


def _local_cost(segment: str, window: int, boundary: int) -> int:
    """Points against splitting `segment` at `boundary`: glued tokens of the title part from
    offset `window` on (BiasJune), and glued tokens of the author part that are no compound
    name words."""
    title = segment[window:boundary].split()
    author = segment[boundary:].split(" ")
    return sum(1 for t in title if _is_glued(t)) + sum(1 for t in author if _is_glued(t) and not _compound(t))


def _token_start(segment: str, offset: int) -> int:
    return segment.rfind(" ", 0, offset) + 1


def _chosen_boundary(segment: str, found: list[int], others: tuple[str, ...]) -> int:
    """The boundary of `segment`: the earliest of `found`, unless a compound name word gives an
    earlier one that leaves fewer glued tokens. Two shapes qualify:

    - the earliest boundary cuts a compound word and leaves its second part alone as the
      author's name (``GenerationZahra TehraniNasab`` read as ``…Zahra Tehrani`` by ``Nasab``;
      an organisation word may follow: ``ReportMeituan LongCat Team``): the boundary may move
      into the token before it, so that the compound is the family name;
    - it cuts a compound given name in its own token (``BiasJuneHyoung Kwon``): only when
      another shown author writes a given name so (``MiHyeon Kim``), as a title may end in a
      compound word too (``AdaptNet``), and never after a plural (``OmniModels``).
    """
    strict = found[0]
    start = _token_start(segment, strict)
    end = segment.find(" ", strict)
    end = len(segment) if end < 0 else end
    token = segment[start:end]
    given = _given_compound_start(segment, start, strict, end)
    if given is not None:
        return given
    window = strict
    if start < strict and any(_compound(a.split(" ")[0]) for a in others):
        window = start
    rest = segment[strict:].split(" ")[1:]
    if 0 < start < strict and _compound(token) and all(is_org_word(t) for t in rest):
        window = _token_start(segment, start - 1)
    if window == strict:
        return strict
    best, best_cost = strict, _local_cost(segment, window, strict)
    for boundary in _boundaries(segment, compounds=True):
        if not window <= boundary < strict:
            continue
        # Glued where a lower-case title end meets the name (a title may end in capitals: VLMs).
        if not segment[boundary - 1].islower():
            continue
        if boundary >= start and segment[boundary:strict].endswith("s"):
            continue
        cost = _local_cost(segment, window, boundary)
        if cost < best_cost:
            best, best_cost = boundary, cost
    return best


def _given_compound_start(segment: str, start: int, strict: int, end: int) -> int | None:
    """Where a compound given name starts when the boundary `strict` cuts it (``DatabasesAmir``
    + ``Hossein``): the lexicon holds both halves, the first glued to a lower-case title end."""
    names = given_names()
    if not segment[strict - 1].islower() or segment[strict:end] not in names:
        return None
    first = _last_capitalised(segment, start + 1, strict)
    if first is None or first.group() not in names:
        return None
    # A title word that is itself a name (TianQin + Yuzhou) is no evidence.
    return first.start() if segment[start : first.start()] not in names else None


def _is_real_alternative(segment: str, chosen: int, other: int) -> bool:
    """True when a later boundary in the same token leaves a plausible title ending.

    ``MRIKM Khalid``: giving ``I`` to the title is as plausible as giving it to the author, so
    the split is ambiguous. ``McDowell`` → ``Dowell`` or ``J.P.Hague`` → ``P.Hague`` would leave
    the title ending in ``Mc`` or ``J.``, which no title does.
    """
    moved = segment[chosen:other]
    return " " not in moved and all(ch.isupper() or ch.isdigit() for ch in moved)


def split_title_authors(line: str) -> Split | SplitFailure:
    """Split a listing's second line into title, shown authors, et-al flag and affiliation slugs.

    Tries 3, 2 then 1 shown authors (only 3 with ``et al.``): the last entries after ", " must
    read as authors, and the entry before them holds the glued title/first-author boundary. The
    earliest valid boundary over all counts wins (see the module docstring).
    """
    body = line.strip()
    affiliations: tuple[str, ...] = ()
    m = AFFILIATION_TAIL.search(body)
    if m:
        affiliations = tuple(m.group(1).split(", "))
        body = body[: m.start()]
    truncated = body.endswith(ET_AL)
    if truncated:
        body = body[: -len(ET_AL)].rstrip()
    parts = body.split(", ")
    # Each count of shown authors gives one reading; a reading pays one point for every glued
    # token (``EvaluationMahdi``) it leaves in the title or in the 2nd/3rd author. The cheapest
    # wins; on a tie, more authors (the earlier boundary).
    best: tuple[int, int, list[int]] | None = None
    for count in (3,) if truncated else (3, 2, 1):
        glued_index = len(parts) - count
        if glued_index < 0:
            continue
        tail = parts[glued_index + 1 :]
        if not all(looks_like_author(a) for a in tail):
            continue
        found = _boundaries(parts[glued_index])
        if not found:
            continue
        title = ", ".join([*parts[:glued_index], parts[glued_index][: found[0]]])
        cost = _glued_count(title) + sum(_author_cost(a) for a in tail)
        if best is None or cost < best[0]:
            best = (cost, count, found)
    if best is None:
        detail = " and three authors" if truncated else " and an author list"
        return SplitFailure(
            RejectRule.NO_AUTHOR_SPLIT,
            f"no boundary between the title{detail} reads as a name (the text after it must look like author names)",
        )
    _, count, found = best
    glued_index = len(parts) - count
    segment = parts[glued_index]
    boundary = _chosen_boundary(segment, found, tuple(parts[glued_index + 1 :]))
    ambiguous = any(_is_real_alternative(segment, boundary, b) for b in found if b > boundary)
    head = ", ".join(parts[:glued_index])
    title = (head + ", " if head else "") + segment[:boundary]
    authors = (segment[boundary:], *parts[glued_index + 1 :])
    return Split(title, authors, truncated, affiliations, ambiguous)

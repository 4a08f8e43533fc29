"""Narrations -> noun phrases, offline and pluggable.

Every loader fills ``dataset_dict["noun_phrases"]``: lower-case noun phrases, de-duplicated in order of first
appearance (``docs/ARCHITECTURE.md``). Where they come from:

* **EPIC-KITCHENS-100** already lists the nouns of each narration in its ``all_nouns`` column (a Python-list
  string, read with ``ast.literal_eval``). Noun keys use the colon form, most specific word last:
  ``"pan:frying"`` reads ``"frying pan"``, ``"board:chopping"`` reads ``"chopping board"``
  (:func:`epic_noun_to_phrase`: split on ``:``, reverse, join with spaces; ``_`` becomes a space).
* **Free text** (Ego4D ``narration_text``, COCO+narrations strings) goes through a *noun-phrase extractor*: any
  callable ``text -> [phrase]``. Extractors live in a small registry so that users can swap the built-in
  rule-based parser for spaCy or their own:

  .. code-block:: python

      from wish_d2.data.narrations import register_noun_phrase_extractor

      @register_noun_phrase_extractor("my_parser")
      def my_parser(text: str) -> list: ...

  and pass ``noun_phrase_extractor="my_parser"`` (or the callable itself) to a loader. Built in:

  - ``"rule"`` (default, no dependencies): :func:`rule_based_noun_phrases`, described below.
  - ``"spacy"``: spaCy ``noun_chunks`` with determiners and pronouns stripped. Needs ``pip install spacy`` and a
    local model; the model name comes from ``$WISH_SPACY_MODEL`` (default ``en_core_web_sm``). Loaded on first use.

* An optional **synonym map** ``{phrase: canonical phrase}`` (a dict, or a JSON file through
  :func:`load_synonyms`) is applied after extraction, e.g. ``{"mug": "cup", "skillet": "frying pan"}``.

Rule-based parser (:func:`rule_based_noun_phrases`), in order:

1. Ego4D clean-up (:func:`clean_ego4d_narration`): tokens starting with ``#`` are dropped (``#C`` camera wearer,
   ``#O`` other person, tags such as ``#unsure``, ``#summary``); the person letters ``C``, ``O``, ``X``, ``Y``, ``Z``
   (upper case, optionally with ``'s``) are dropped as subjects, and the word right after a dropped subject is
   taken to be its verb (Ego4D's "C picks ...", "X hands ...").
2. Tokens are lower-cased words; punctuation is a phrase boundary.
3. A noun phrase is a maximal run of words containing no verb (a lexicon of ~200 kitchen/manipulation verbs and
   their inflections), preposition, conjunction, pronoun, auxiliary, adverb (a list, plus words ending in
   ``-ly``), or person word (``man``, ``woman``, ``lady``...). A determiner, possessive or number (``the``, ``a``,
   ``his``, ``two``...) ends the previous phrase and is itself dropped. A lexicon verb is read as a verb only at
   the start or after a noun, adverb, auxiliary or conjunction; after a determiner, verb or preposition it is a
   noun or modifier ("the cut", "take frying pan", "turn on tap"), except an ``-ing`` form after an aspect verb
   ("continue cutting onion"). An Ego4D subject's verb may follow adverbs/auxiliaries ("C carefully places").
4. Partitives are unwrapped: "a piece of dough" gives "dough" (``piece``, ``slice``, ``bit``, ``handful``...
   followed by ``of``).
5. Phrases whose last word is a body part (``hand``, ``finger``...) are dropped: they are not objects.

Body parts are dropped on every noun path, not only by this parser: :func:`normalise_noun_phrases` (EPIC
``all_nouns``, given COCO phrases, any extractor's output) and the taxonomy (``taxonomy.py``) use the one list
:data:`BODY_PARTS` through :func:`is_body_part`.

It is deliberately small: it is right on the short imperative EPIC narrations and the formulaic Ego4D ones, and
anything smarter belongs in a swapped-in extractor.
"""
import ast
import json
import os
import re
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Union

from .common import DataFormatError, dedup
from .narration_lexicon import (ADVERBS, ASPECT_VERBS, AUXILIARIES, BODY_PARTS, BOUNDARIES, DETERMINERS, LY_NOUNS,
                                PARTITIVES, PREPOSITIONS, VERBS, is_body_part)

__all__ = [
    "epic_noun_to_phrase",
    "parse_epic_all_nouns",
    "clean_ego4d_narration",
    "rule_based_noun_phrases",
    "register_noun_phrase_extractor",
    "get_noun_phrase_extractor",
    "available_noun_phrase_extractors",
    "extract_noun_phrases",
    "apply_synonyms",
    "load_synonyms",
    "BODY_PARTS",
    "is_body_part",
    "normalise_noun_phrases",
]

NounPhraseExtractor = Callable[[str], List[str]]
ExtractorSpec = Union[str, NounPhraseExtractor, None]
SynonymSpec = Union[str, Dict[str, str], None]

# ---------------------------------------------------------------------------------------------- EPIC nouns


def epic_noun_to_phrase(key: str) -> str:
    """EPIC noun key -> phrase: ``"pan:frying"`` -> ``"frying pan"``; ``"top:counter"`` -> ``"counter top"``."""
    parts = [p.strip().replace("_", " ") for p in str(key).strip().lower().split(":")]
    return " ".join(p for p in reversed(parts) if p)


def parse_epic_all_nouns(value, where: str = "") -> List[str]:
    """The ``all_nouns`` cell (``"['pan:frying', 'oil']"``) -> list of keys. Raises ``DataFormatError`` naming
    ``where`` if the cell is not a Python list of strings. An empty cell gives ``[]``."""
    if isinstance(value, (list, tuple)):
        items = value
    else:
        text = (value or "").strip()
        if not text:
            return []
        try:
            items = ast.literal_eval(text)
        except (ValueError, SyntaxError, RecursionError, MemoryError) as e:
            raise DataFormatError(f"{where}: all_nouns is not a Python list literal: {text!r} ({e})") from e
        if isinstance(items, str):
            items = [items]
    if not isinstance(items, (list, tuple)) or not all(isinstance(x, str) for x in items):
        raise DataFormatError(f"{where}: all_nouns must be a list of strings, got {value!r}")
    return list(items)


# ---------------------------------------------------------------------------------------------- parser
_SUBJECT_RE = re.compile(r"^[COXYZ](?:'s|’s)?$")
_TOKEN_RE = re.compile(r"#\S+|[A-Za-z][A-Za-z'’\-]*|\d+(?:\.\d+)?|[^\sA-Za-z\d]")


def clean_ego4d_narration(text: str) -> str:
    """Drop Ego4D markers: ``#``-tags (``#C``, ``#O``, ``#unsure``...) and the person letters C/O/X/Y/Z.

    ``"#C C picks the knife from the table #unsure"`` -> ``"picks the knife from the table"``."""
    toks = [t for t in _TOKEN_RE.findall(text or "") if not t.startswith("#") and not _SUBJECT_RE.match(t)]
    return " ".join(toks)


def rule_based_noun_phrases(text: str) -> List[str]:
    """The built-in offline noun-phrase parser (rules in the module docstring)."""
    raw = _TOKEN_RE.findall(text or "")
    # (word, forced_verb): a word right after a dropped Ego4D subject is its verb.
    tokens = []
    after_subject = False
    for t in raw:
        if t.startswith("#"):
            continue
        if _SUBJECT_RE.match(t):
            after_subject = True
            continue
        tokens.append((t.lower().replace("’", "'"), after_subject))
        after_subject = False

    phrases: List[List[str]] = []
    cur: List[str] = []
    # kind of the previous token: start | det | verb | prep | word | other. A lexicon verb is read as a verb only
    # after start/word/other: after a determiner, verb or preposition it is a noun or modifier
    # ("the cut", "take frying pan", "turn on tap").
    prev = "start"
    last_verb = ""

    def close():
        nonlocal cur
        if cur:
            phrases.append(cur)
        cur = []

    carry = False  # an Ego4D subject's verb may come after an adverb/auxiliary ("C carefully places")
    for w, forced_verb in tokens:
        forced_verb = forced_verb or carry
        carry = False
        if not w[0].isalpha():
            close()
            prev = "det" if w[0].isdigit() else "other"  # numbers act as determiners ("two knives")
            continue
        if w.endswith("'s"):
            w = w[:-2]
        if w in DETERMINERS:
            close()
            prev = "det"
            continue
        is_adverb = w in ADVERBS or (w.endswith("ly") and w not in LY_NOUNS and len(w) > 4)
        if w in AUXILIARIES or is_adverb:
            close()
            carry = forced_verb
            prev = "other"
            continue
        aspect = prev == "verb" and w.endswith("ing") and w in VERBS and last_verb in ASPECT_VERBS
        if forced_verb or aspect or (w in VERBS and prev in ("start", "word", "other")):
            last_verb = w
            close()
            prev = "verb"
            continue
        if w in PREPOSITIONS:
            if w == "of" and cur and cur[-1] in PARTITIVES:  # "[a piece] of [dough]" -> drop "piece"
                cur = []
            close()
            prev = "prep"
            continue
        if w in BOUNDARIES:
            close()
            prev = "other"
            continue
        cur.append(w)
        prev = "word"
    close()

    out = []
    for p in phrases:
        if is_body_part(p[-1]) or p[-1] in PARTITIVES:
            continue
        out.append(" ".join(p))
    return dedup(out)


# ---------------------------------------------------------------------------------------------- registry

_EXTRACTORS: Dict[str, NounPhraseExtractor] = {}


def register_noun_phrase_extractor(name: str, fn: Optional[NounPhraseExtractor] = None):
    """Register ``fn(text) -> [phrase]`` under ``name``; usable as a decorator. Re-registering replaces."""

    def deco(f):
        _EXTRACTORS[name] = f
        return f

    return deco(fn) if fn is not None else deco


def available_noun_phrase_extractors() -> List[str]:
    return sorted(_EXTRACTORS)


def get_noun_phrase_extractor(spec: ExtractorSpec = "rule") -> NounPhraseExtractor:
    """A registered name, or a callable (returned as is). ``None`` means ``"rule"``."""
    if spec is None:
        spec = "rule"
    if callable(spec):
        return spec
    if spec not in _EXTRACTORS:
        raise KeyError(f"Unknown noun-phrase extractor {spec!r}; registered: {available_noun_phrase_extractors()}")
    return _EXTRACTORS[spec]


register_noun_phrase_extractor("rule", rule_based_noun_phrases)


class _SpacyExtractor:
    """spaCy ``noun_chunks`` with leading determiners/pronouns stripped; the model is loaded on first call."""

    def __init__(self):
        self._nlp = None

    def __call__(self, text: str) -> List[str]:
        if self._nlp is None:
            try:
                import spacy
            except ImportError as e:
                raise ImportError(
                    "The 'spacy' noun-phrase extractor needs `pip install spacy` and a local model "
                    "(set $WISH_SPACY_MODEL, default en_core_web_sm); or use the built-in 'rule' extractor."
                ) from e
            self._nlp = spacy.load(os.getenv("WISH_SPACY_MODEL", "en_core_web_sm"))
        out = []
        for chunk in self._nlp(clean_ego4d_narration(text)).noun_chunks:
            words = [t.text.lower() for t in chunk if t.pos_ not in ("DET", "PRON", "NUM")]
            if words and not is_body_part(words[-1]):
                out.append(" ".join(words))
        return dedup(out)


register_noun_phrase_extractor("spacy", _SpacyExtractor())


# ---------------------------------------------------------------------------------------------- synonyms


def load_synonyms(spec: SynonymSpec) -> Dict[str, str]:
    """A dict, a JSON file holding one (``{phrase: canonical}``), or ``None`` -> a lower-cased dict."""
    if spec is None:
        return {}
    src = "synonym map"
    if isinstance(spec, (str, os.PathLike)):
        src = os.fspath(spec)
        try:
            with open(src, encoding="utf-8") as f:
                spec = json.load(f)
        except OSError as e:
            raise DataFormatError(f"{src}: synonym map cannot be read ({e.strerror or e})") from None
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
            raise DataFormatError(f"{src}: synonym map is not valid JSON ({e})") from e
    if not isinstance(spec, dict):
        raise DataFormatError(f"{src}: a synonym map must be an object {{phrase: canonical}}")
    out: Dict[str, str] = {}
    for k, v in spec.items():
        if not isinstance(v, str):
            raise DataFormatError(f"{src}: the canonical phrase of {k!r} must be a string, got {type(v).__name__}")
        key, value = str(k).strip().lower(), v.strip().lower()
        if not key or not value:  # "" would erase the phrase, or match nothing
            raise DataFormatError(f"{src}: synonym {k!r} -> {v!r} has an empty phrase; remove the entry")
        if out.get(key, value) != value:
            raise DataFormatError(f"{src}: {key!r} is mapped twice (to {out[key]!r} and {value!r}, keys compared "
                                  "lower-cased)")
        out[key] = value
    return out


def apply_synonyms(phrases: Iterable[str], synonyms: Optional[Dict[str, str]]) -> List[str]:
    """Map each phrase through the synonym dict (unknown phrases unchanged) and de-duplicate."""
    if not synonyms:
        return dedup(phrases)
    return dedup(synonyms.get(p, p) for p in phrases)


def normalise_noun_phrases(phrases: Iterable[str], synonyms: Optional[Dict[str, str]] = None) -> List[str]:
    """The last step of every noun path: lower-case, map through the synonyms, drop body parts (after the map, so
    that a synonym naming a body part is dropped too) and empty phrases, de-duplicate."""
    cleaned = (p.strip().lower() for p in phrases if p and p.strip())
    return [p for p in apply_synonyms(cleaned, synonyms) if not is_body_part(p)]


def extract_noun_phrases(
    texts: Sequence[str], extractor: ExtractorSpec = "rule", synonyms: Optional[Dict[str, str]] = None
) -> List[str]:
    """Noun phrases of several narration texts: extracted (any extractor, a user's own included), then
    :func:`normalise_noun_phrases`."""
    fn = get_noun_phrase_extractor(extractor)
    phrases = []
    for t in texts:
        phrases.extend(fn(t))
    return normalise_noun_phrases(phrases, synonyms)

"""The 13-noun kitchen taxonomy of the synthetic benchmark: names, EPIC noun keys, synonyms, verbs, sizes and the
priors that decide which objects get held, held with both hands or rested on (see docs/SYNTHETIC.md)."""
from dataclasses import dataclass
from typing import Dict, List, Tuple

from ..narrations import epic_noun_to_phrase

__all__ = ["Category", "CATEGORIES", "NOUNS", "SYNONYM_KEYS", "KEY_TO_CLASS", "VERBS", "EMPTY_VERBS", "PREPS",
           "synonym_map"]


@dataclass(frozen=True)
class Category:
    name: str  # phrase used in the taxonomy / metadata
    key: str  # EPIC noun key written in CSV and VISOR names
    synonyms: Tuple[str, ...]  # EPIC keys of synonyms (narration noise)
    verbs: Tuple[str, ...]
    length: Tuple[float, float]  # long side, fraction of S
    hold: float  # relative weight to be the object one hand holds
    both: float  # relative weight to be the object held by both hands
    surface: float  # relative weight to be the large object a hand rests on
    scene: float  # relative frequency as a free-standing object
    grip: str  # handle | edge | body


CATEGORIES: List[Category] = [
    Category("knife", "knife", ("blade",), ("cut", "take", "hold", "wash", "put down"), (0.26, 0.34), 1.0, 0, 0, 1.0,
             "handle"),
    Category("spoon", "spoon", ("teaspoon",), ("stir", "take", "scoop", "wash", "hold"), (0.22, 0.30), 0.9, 0, 0,
             0.8, "handle"),
    Category("cup", "cup", ("mug",), ("take", "drink from", "fill", "wash", "hold"), (0.15, 0.19), 1.0, 0, 0, 1.0,
             "body"),
    Category("bowl", "bowl", ("dish",), ("take", "hold", "wash", "move", "pour"), (0.20, 0.25), 0.6, 1.0, 0.1, 0.8,
             "edge"),
    Category("plate", "plate", ("dish:flat",), ("take", "hold", "wash", "move", "put down"), (0.24, 0.30), 0.4, 1.0,
             0.5, 0.8, "edge"),
    Category("chopping board", "board:chopping", ("board:cutting",), ("lift", "move", "wash", "hold", "put down"),
             (0.40, 0.50), 0.04, 0.3, 1.0, 0.6, "edge"),
    Category("frying pan", "pan:frying", ("skillet",), ("lift", "move", "hold", "wash", "shake"), (0.38, 0.48), 0.12,
             0.5, 0.6, 0.6, "handle"),
    Category("bottle", "bottle", ("flask",), ("open", "pour", "take", "shake", "hold"), (0.22, 0.28), 0.8, 0, 0,
             0.8, "handle"),
    Category("tomato", "tomato", ("tomato:cherry",), ("take", "wash", "cut", "hold", "put down"), (0.08, 0.10), 0.8,
             0, 0, 0.9, "body"),
    Category("onion", "onion", ("onion:red",), ("take", "peel", "cut", "hold", "put down"), (0.09, 0.12), 0.8, 0, 0,
             0.8, "body"),
    Category("sponge", "sponge", ("scrubber",), ("take", "squeeze", "wipe with", "rinse", "hold"), (0.12, 0.15), 0.9,
             0, 0, 0.7, "handle"),
    Category("jar", "jar", ("container:glass",), ("open", "close", "take", "shake", "hold"), (0.14, 0.18), 0.7, 0,
             0, 0.7, "handle"),
    Category("carrot", "carrot", ("carrot:baby",), ("take", "peel", "cut", "wash", "hold"), (0.20, 0.26), 0.8, 0, 0,
             0.8, "handle"),
]
NOUNS = [c.name for c in CATEGORIES]
SYNONYM_KEYS = {c.key: c.synonyms for c in CATEGORIES}
# EPIC noun key (own or synonym) -> taxonomy index
KEY_TO_CLASS = {**{c.key: i for i, c in enumerate(CATEGORIES)},
                **{s: i for i, c in enumerate(CATEGORIES) for s in c.synonyms}}
# verb classes of the EPIC CSV (index = verb_class); EMPTY_VERBS name a visible object nobody holds
VERBS = sorted({v for c in CATEGORIES for v in c.verbs} | {"look at", "reach for", "look around", "point at"})
EMPTY_VERBS = ("look at", "reach for", "point at")
PREPS = ("on", "with", "into", "next to", "from")


def synonym_map() -> Dict[str, str]:
    """Synonym phrase -> taxonomy phrase (e.g. ``"mug"`` -> ``"cup"``), usable as a loader ``synonyms=``."""
    return {epic_noun_to_phrase(s): c.name for c in CATEGORIES for s in c.synonyms}

"""Narrations of the synthetic frames: the clean EPIC-100 narration of what the hands hold, then the noise a real
narrator adds (omissions, distractor mentions, synonyms; the neighbour swap happens at split level). The rates
are the benchmark's rules (docs/SYNTHETIC.md)."""
from typing import Dict, List

from ..narrations import epic_noun_to_phrase
from .taxonomy import CATEGORIES, EMPTY_VERBS, KEY_TO_CLASS, PREPS

__all__ = ["P_NEIGHBOUR", "frame_narration"]

P_OMIT = 0.1  # frames with a held object: one held noun is dropped
P_DISTRACTOR = 0.2  # a visible non-held object of another category is added
P_SYNONYM = 0.1  # per noun: replaced by a synonym key
P_NEIGHBOUR = 0.1  # the frame gets the narration of the previous frame of the split
P_MENTION_WHEN_EMPTY = 0.7  # frames without a held object name a visible object


def frame_narration(rng, held_cats: List[int], other_cats: List[int]) -> Dict:
    """Noisy narration of one frame (before the neighbour swap): keys, text, verb, events."""
    events = {"omitted": False, "distractor": False, "synonyms": 0, "no_held": not held_cats}
    keys_cats = list(dict.fromkeys(held_cats))
    others = [c for c in dict.fromkeys(other_cats) if c not in keys_cats]
    verb = None
    if not keys_cats:
        if others and rng.random() < P_MENTION_WHEN_EMPTY:
            keys_cats = [others.pop(int(rng.integers(len(others))))]
            verb = EMPTY_VERBS[int(rng.integers(len(EMPTY_VERBS)))]
    elif rng.random() < P_OMIT:
        events["omitted"] = True
        keys_cats.pop(int(rng.integers(len(keys_cats))))
        if not keys_cats and others:
            keys_cats = [others.pop(int(rng.integers(len(others))))]
    if others and rng.random() < P_DISTRACTOR:
        events["distractor"] = True
        keys_cats.append(others[int(rng.integers(len(others)))])
    keys = []
    for c in keys_cats:
        cat = CATEGORIES[c]
        if rng.random() < P_SYNONYM:
            keys.append(cat.synonyms[int(rng.integers(len(cat.synonyms)))])
            events["synonyms"] += 1
        else:
            keys.append(cat.key)
    if not keys:
        verb, text = "look around", "look around"
    else:
        if verb is None:
            vs = CATEGORIES[keys_cats[0]].verbs
            verb = vs[int(rng.integers(len(vs)))]
        phrases = [epic_noun_to_phrase(k) for k in keys]
        text = f"{verb} {phrases[0]}"
        for p in phrases[1:]:
            text += f" {PREPS[int(rng.integers(len(PREPS)))]} {p}"
    return {"keys": keys, "classes": [KEY_TO_CLASS[k] for k in keys], "text": text, "verb": verb,
            "events": events, "mentioned_held": [c for c in keys_cats if c in held_cats]}

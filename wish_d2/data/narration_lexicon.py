"""The word lists of the rule-based noun-phrase parser (:func:`wish_d2.data.narrations.rule_based_noun_phrases`):
verbs (with their inflections), the words that end a phrase, determiners, partitives and body parts. Plain data,
kept apart from the parser so that either can be read (and extended) on its own."""
from typing import List

__all__ = ["VERBS", "BOUNDARIES", "DETERMINERS", "PARTITIVES", "PREPOSITIONS", "ADVERBS", "AUXILIARIES",
           "ASPECT_VERBS", "LY_NOUNS", "BODY_PARTS", "is_body_part"]

_VERB_BASES = """
take pick put place hold grab lift raise lower drop move carry bring pass give get fetch remove insert
cut chop slice dice mince peel grate crush mash squeeze press spread scrape scoop stir mix whisk beat knead
roll fold flip turn rotate twist shake rub wipe wash rinse dry clean scrub soak pour fill empty drain
sprinkle season add open close shut unscrew screw cover uncover unwrap wrap tear break crack cook fry boil
bake heat warm cool microwave serve eat drink taste sip bite chew smell look check inspect watch read search
find adjust arrange set align sort stack push pull slide drag throw toss hang attach detach plug unplug switch
start stop use try measure weigh count mark write draw paint hammer drill saw sand glue tie untie knot sew
fix repair install operate play touch point wave walk stand sit kneel bend lean reach step climb enter exit
leave return keep collect gather pack unpack load unload dip spray apply brush comb shave dust sweep mop fan
blow hit kick catch cast plant dig water feed grill roast steam marinate defrost freeze refrigerate store
continue begin finish transfer swap change replace separate combine divide split level smooth flatten shape form
tuck straighten
unfold crumple squash scatter sieve sift strain filter toast grind blend juice core deseed hull trim fillet
debone skin scale shell husk sharpen hone unlock lock label tidy organise organize rearrange examine
""".split()

_IRREGULAR_VERBS = """
took taken put cut held threw thrown brought gave given got gotten ate eaten drank drunk bitten tore torn
broke broken hung shook shaken swept spread set split read found kept stood sat laid dug fed
stuck struck wore worn wrote written drew drawn made making make does did done goes went gone sees seen
""".split()

_PREPOSITIONS = """
in on at from to into onto with without of for by under over inside outside off up down out through across
around near beside behind between towards toward above below using about against along within upon via per
beneath underneath among amongst atop throughout
""".split()
_CONJUNCTIONS = "and or but then while as so if nor yet before after until when".split()
_PRONOUNS = """
it them they he she him i me we us you itself himself herself themselves something anything everything
nothing someone somebody anyone everyone this_ that_ which who whom whose what where how
""".split()
_AUXILIARIES = """
is are was were be been being am has have had do does did will would can could should may might must
""".split()
_ADVERBS = """
again also still just then back away together here there now not very too only even already yet almost
slightly gently properly carefully quickly slowly continuously repeatedly partially fully further once twice
upside forward forwards backwards aside apart around somewhere
""".split()
_PERSON_WORDS = "man woman lady gentleman person people boy girl child kid guy someone somebody c".split()
_DETERMINERS = """
the a an some any this that these those his her their its my your our another other each every all both
either neither few several many much more most no one two three four five six seven eight nine ten
first second third last next same such
""".split()
_PARTITIVES = """
piece pieces bit bits slice slices handful pinch part parts half halves lump lumps chunk chunks drop drops
portion portions amount quantity pair pairs bunch strip strips sheet sheets
""".split()
_BODY_PARTS = "hand hands finger fingers thumb thumbs palm palms arm arms wrist wrists fist fists".split()
LY_NOUNS = {"jelly", "belly", "lily", "fly", "ply", "doily", "trolly", "family", "assembly", "supply", "rally"}


def _inflections(base: str) -> List[str]:
    forms = {base, base + "s", base + "es", base + "ed", base + "d", base + "ing"}
    if base.endswith("e"):
        forms.add(base[:-1] + "ing")
    if base.endswith("y") and len(base) > 2 and base[-2] not in "aeiou":
        forms.update({base[:-1] + "ies", base[:-1] + "ied"})
    if len(base) >= 3 and base[-1] not in "aeiouwxy" and base[-2] in "aeiou" and base[-3] not in "aeiou":
        forms.update({base + base[-1] + "ing", base + base[-1] + "ed"})
    return sorted(forms)


VERBS = frozenset(f for b in _VERB_BASES for f in _inflections(b)) | frozenset(_IRREGULAR_VERBS)
BOUNDARIES = frozenset(_PREPOSITIONS + _CONJUNCTIONS + _PRONOUNS + _AUXILIARIES + _ADVERBS + _PERSON_WORDS)
DETERMINERS = frozenset(_DETERMINERS)
PARTITIVES = frozenset(_PARTITIVES)
PREPOSITIONS = frozenset(_PREPOSITIONS)
ADVERBS = frozenset(_ADVERBS)
AUXILIARIES = frozenset(_AUXILIARIES)
# "continue cutting onion": an -ing form right after one of these is a verb, not a modifier ("take frying pan")
ASPECT_VERBS = frozenset(f for b in "continue begin start stop finish keep try".split() for f in _inflections(b)) | {
    "kept", "began", "begun"}
#: The body-part words: a phrase ending in one names the person, not an object (the only list of them).
BODY_PARTS = frozenset(_BODY_PARTS)


def is_body_part(phrase: str) -> bool:
    """True for a phrase whose last word is a body part ("hand", "left hand", "fingers"), never an object."""
    words = str(phrase).strip().lower().split()
    return bool(words) and words[-1] in BODY_PARTS

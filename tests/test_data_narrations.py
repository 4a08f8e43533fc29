"""Narration parsing: EPIC noun keys, Ego4D free text, the pluggable extractor registry, synonyms."""
import json

import pytest

from wish_d2.data.common import DataFormatError
from wish_d2.data.narrations import (
    apply_synonyms,
    available_noun_phrase_extractors,
    clean_ego4d_narration,
    epic_noun_to_phrase,
    is_body_part,
    extract_noun_phrases,
    get_noun_phrase_extractor,
    load_synonyms,
    normalise_noun_phrases,
    parse_epic_all_nouns,
    register_noun_phrase_extractor,
    rule_based_noun_phrases,
)


def test_epic_noun_keys():
    assert epic_noun_to_phrase("pan:frying") == "frying pan"
    assert epic_noun_to_phrase("board:chopping") == "chopping board"
    assert epic_noun_to_phrase("Knife") == "knife"
    assert epic_noun_to_phrase("top:counter") == "counter top"
    assert epic_noun_to_phrase("oil_olive") == "oil olive"


def test_parse_all_nouns():
    assert parse_epic_all_nouns("['pan:frying', 'oil']") == ["pan:frying", "oil"]
    assert parse_epic_all_nouns("") == []
    assert parse_epic_all_nouns("'knife'") == ["knife"]
    with pytest.raises(DataFormatError, match="f.csv:3"):
        parse_epic_all_nouns("['knife'", "f.csv:3")
    with pytest.raises(DataFormatError, match="list of strings"):
        parse_epic_all_nouns("[1, 2]", "x")


EGO4D = [
    ("#C C picks the knife from the table #unsure", ["knife", "table"]),
    ("#C C cuts a piece of dough with the knife in his right hand", ["dough", "knife"]),
    ("#O man X hands a plate to C", ["plate"]),
    ("#C C holds the hammer with his left hand", ["hammer"]),
    ("#C C opens the fridge door and takes two eggs", ["fridge door", "eggs"]),
    ("#C C stirs the soup in the pot with a wooden spoon.", ["soup", "pot", "wooden spoon"]),
    ("#C C carefully places the cutting board on the counter", ["cutting board", "counter"]),
    ("#C C is slicing the bread", ["bread"]),
    ("#summary C was cooking in the kitchen", ["kitchen"]),
    ("#C C looks around", []),
]
EPIC_STYLE = [
    ("take frying pan", ["frying pan"]),
    ("turn on tap", ["tap"]),
    ("put knife on board", ["knife", "board"]),
    ("continue cutting onion", ["onion"]),
    ("wash hands", []),
]


@pytest.mark.parametrize("text,expected", EGO4D + EPIC_STYLE)
def test_rule_based_parser(text, expected):
    assert rule_based_noun_phrases(text) == expected


def test_clean_ego4d():
    assert clean_ego4d_narration("#C C picks the knife from the table #unsure") == "picks the knife from the table"
    assert clean_ego4d_narration("#O person Y gives C's cup to X") == "person gives cup to"


def test_registry_swap_and_synonyms():
    assert {"rule", "spacy"} <= set(available_noun_phrase_extractors())
    texts = ["#C C takes the mug", "#C C drops a mug and the skillet"]
    assert extract_noun_phrases(texts) == ["mug", "skillet"]
    assert extract_noun_phrases(texts, synonyms={"mug": "cup"}) == ["cup", "skillet"]

    @register_noun_phrase_extractor("test_upper_words")
    def upper(text):
        return [w for w in text.split() if w.isupper()]

    assert get_noun_phrase_extractor("test_upper_words") is upper
    assert extract_noun_phrases(["take KNIFE and BOARD"], "test_upper_words") == ["knife", "board"]
    assert extract_noun_phrases(["a b"], lambda t: ["X Y"]) == ["x y"]  # a plain callable works too
    with pytest.raises(KeyError, match="Unknown noun-phrase extractor"):
        get_noun_phrase_extractor("nope")


def test_synonym_file(tmp_path):
    p = tmp_path / "syn.json"
    p.write_text(json.dumps({"Mug": "Cup"}))
    assert load_synonyms(str(p)) == {"mug": "cup"}
    assert apply_synonyms(["mug", "cup", "pan"], load_synonyms(str(p))) == ["cup", "pan"]
    p.write_text("{bad")
    with pytest.raises(DataFormatError, match="syn.json"):
        load_synonyms(str(p))
    assert load_synonyms(None) == {}


def test_spacy_extractor_is_lazy():
    fn = get_noun_phrase_extractor("spacy")
    try:
        import spacy  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="rule"):
            fn("C takes the knife")
    else:  # pragma: no cover - only where spaCy and a model are installed
        pytest.skip("spaCy installed; the model may be absent")


@pytest.mark.parametrize("content,match", [
    (b'{"mug": 5}', "canonical phrase of 'mug' must be a string, got int"),
    (b'{"mug": null}', "canonical phrase of 'mug' must be a string"),
    (b'["mug"]', "must be an object"),
    (b'{"mug": "\xff"}', "not valid JSON"),
    (b"[" * 200000, "not valid JSON"),
])
def test_bad_synonym_file_names_it(tmp_path, content, match):
    p = tmp_path / "syn.json"
    p.write_bytes(content)
    with pytest.raises(DataFormatError, match=match) as e:
        load_synonyms(str(p))
    assert "syn.json" in str(e.value)


@pytest.mark.parametrize("cell", ["[" * 100000, "[[['a']]]", "{'a': 1}", "9" * 5000])
def test_bad_all_nouns_cell_raises_data_format_error(cell):
    with pytest.raises(DataFormatError, match="row 3"):
        parse_epic_all_nouns(cell, "row 3")


@pytest.mark.parametrize("phrase, body_part", [
    ("hand", True), ("left hand", True), ("fingers", True), ("index finger", True), ("Arm", True),
    ("handle", False), ("hand towel", False), ("palm oil", False), ("armchair", False), ("", False),
])
def test_body_parts_are_phrases_ending_in_a_body_part_word(phrase, body_part):
    assert is_body_part(phrase) is body_part


def _epic_csv(path, all_nouns):
    import csv

    from wish_d2.data.epic_narrations import EPIC_CSV_COLUMNS

    row = {c: "" for c in EPIC_CSV_COLUMNS}
    row.update(video_id="P01_01", start_frame="1", stop_frame="9", narration="x", all_nouns=all_nouns)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, EPIC_CSV_COLUMNS)
        w.writeheader()
        w.writerow(row)
    return str(path)


def _custom_extractor(text):
    return ["hand", "Knife", "the left hand"]


@pytest.mark.parametrize("path", ["epic all_nouns", "free text, a user's extractor", "given phrases + synonyms"])
def test_body_parts_are_dropped_on_every_noun_path(tmp_path, path):
    if path == "epic all_nouns":  # ['hand'] must not become the phrase "hand"
        from wish_d2.data.epic_narrations import load_epic_narrations

        table = load_epic_narrations(_epic_csv(tmp_path / "n.csv", "['hand', 'knife', 'finger:index']"))
        phrases = table["P01_01"].at(5, 0)[0].nouns
    elif path == "free text, a user's extractor":
        phrases = extract_noun_phrases(["anything"], extractor=_custom_extractor)
    else:  # a synonym that names a body part is dropped too
        phrases = normalise_noun_phrases(["Knife", "mitt", " palm "], {"mitt": "hand"})
    assert phrases == ["knife"]

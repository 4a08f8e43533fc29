"""The config's taxonomy: which source wins, the taxonomy file formats, body parts, and every bad taxonomy file."""
import os

import pytest
from detectron2.config import get_cfg
from detectron2.data import DatasetCatalog, MetadataCatalog

from wish_d2 import add_wish_config
from wish_d2.config_validation import ConfigError, validate_wish_config
from wish_d2.data.synthetic import NOUNS as SYNTH_NOUNS
from wish_d2.data.taxonomy import TaxonomyError, config_taxonomy, dataset_taxonomy, load_taxonomy_file, \
    taxonomy_for_config

CLASSES_HEADER = "id,key,instances,category\n"


def write(path, text, encoding="utf-8"):
    with open(path, "w", encoding=encoding, newline="") as f:
        f.write(text)
    return str(path)


@pytest.fixture
def datasets():
    """A training split without a registered taxonomy (narration nouns + annotation nouns), one with its own."""
    names = {"tax_train": None, "tax_named": ["Cup", "hand", "pan:frying"]}
    dicts = [{"image_id": "a", "noun_phrases": ["knife", "left hand"], "annotations": [{"noun": "secret jar"}]},
             {"image_id": "b", "noun_phrases": ["board", "knife"], "annotations": []}]
    for name, nouns in names.items():
        DatasetCatalog.register(name, lambda: [dict(d) for d in dicts])
        MetadataCatalog.get(name)
        if nouns is not None:
            MetadataCatalog.get(name).set(nouns=nouns)
    yield
    for name in names:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)


def test_a_training_split_gives_its_narration_nouns_never_its_annotation_nouns(datasets):
    assert dataset_taxonomy("tax_train") == ["board", "knife"]  # sorted; "left hand" and "secret jar" left out
    assert MetadataCatalog.get("tax_train").nouns == ["board", "knife"]  # kept: the split is read once


def test_a_registered_taxonomy_is_read_as_phrases_without_body_parts(datasets):
    assert dataset_taxonomy("tax_named") == ["cup", "frying pan"]


def test_the_config_taxonomy_is_the_union_of_the_training_datasets(datasets):
    assert config_taxonomy(("tax_named", "tax_train")) == ["cup", "frying pan", "board", "knife"]


def test_a_taxonomy_file_wins_over_the_datasets(datasets, tmp_path):
    path = write(tmp_path / "nouns.txt", "# kitchen\nspatula\n\nwhisk\n")
    assert config_taxonomy(("tax_train",), path) == ["spatula", "whisk"]


def test_the_synthetic_benchmark_keeps_its_13_nouns_in_order():
    cfg = get_cfg()
    add_wish_config(cfg)
    cfg.DATASETS.TRAIN = ("wish_synth_train",)
    assert taxonomy_for_config(cfg) == list(SYNTH_NOUNS) and len(SYNTH_NOUNS) == 13


def test_the_epic_noun_classes_file_beside_the_narrations_is_an_epic_training_split_taxonomy(tmp_path):
    csv = write(tmp_path / "EPIC_100_noun_classes.csv", CLASSES_HEADER
                + "0,tap,\"['tap', 'tap:water']\",appliances\n"
                + "1,hand,\"['hand', 'hand:left', 'finger']\",body parts\n"
                + "2,pan,\"['pan:frying', 'pan']\",cookware\n")
    from wish_d2.data.visor import register_epic_visor

    register_epic_visor("tax_epic", str(tmp_path / "missing"), str(tmp_path), str(tmp_path / "EPIC_100_train.csv"))
    try:  # read from the file: the split itself (whose annotations do not even exist) is never loaded
        assert dataset_taxonomy("tax_epic") == ["tap", "water tap", "pan", "frying pan"]
        os.remove(csv)
        with pytest.raises(FileNotFoundError):  # no file: the narrations, so the split is loaded
            dataset_taxonomy("tax_epic")
    finally:
        DatasetCatalog.remove("tax_epic")
        MetadataCatalog.remove("tax_epic")


@pytest.mark.parametrize("name, text, message", [
    ("nouns.txt", "", "holds no noun"),
    ("nouns.txt", "# only a comment\n\n", "holds no noun"),
    ("nouns.txt", "hand\nfingers\n", "holds no noun"),
    ("nouns.txt", "cup\n12345\n", "must be a noun"),
    ("nouns.txt", "cup\nkni\x07fe\n", "must be a noun"),
    ("nouns.csv", "id,key,category\n0,tap,appliances\n", "missing instances"),
    ("nouns.csv", CLASSES_HEADER + "0,tap,\"['tap'\",appliances\n", r"nouns.csv:2: instances is not a Python list"),
    ("nouns.csv", CLASSES_HEADER + "0,tap,\"[1, 2]\",appliances\n", r"nouns.csv:2: instances must be a list"),
    ("nouns.csv", CLASSES_HEADER + "0,,\"['tap']\",appliances\n", r"nouns.csv:2: empty noun class key"),
    ("nouns.csv", CLASSES_HEADER + "0,tap,\"['tap']\"\n", r"nouns.csv:2: row has a wrong number of fields"),
    ("nouns.csv", CLASSES_HEADER, "holds no noun"),
])
def test_a_bad_taxonomy_file_is_one_error_naming_it(tmp_path, name, text, message):
    path = write(tmp_path / name, text)
    with pytest.raises(TaxonomyError, match=message) as e:
        load_taxonomy_file(path)
    assert str(e.value).startswith(path)


def test_a_missing_or_binary_taxonomy_file_is_one_error_naming_it(tmp_path):
    with pytest.raises(TaxonomyError, match="taxonomy file not found") as e:
        load_taxonomy_file(str(tmp_path / "nope.txt"))
    assert str(tmp_path / "nope.txt") in str(e.value)
    path = tmp_path / "latin1.txt"
    path.write_bytes("caf\xe9\n".encode("latin-1"))
    with pytest.raises(TaxonomyError, match="not UTF-8"):
        load_taxonomy_file(str(path))


def test_the_config_check_reads_a_named_taxonomy_file_before_any_work(tmp_path):
    cfg = get_cfg()
    add_wish_config(cfg)
    cfg.MODEL.WISH.TAXONOMY.FILE = write(tmp_path / "empty.txt", "\n")
    with pytest.raises(ConfigError, match="MODEL.WISH.TAXONOMY.FILE=.*empty.txt.*holds no noun"):
        validate_wish_config(cfg)
    cfg.MODEL.WISH.TAXONOMY.FILE = write(tmp_path / "ok.txt", "cup\n")
    validate_wish_config(cfg)


def test_no_taxonomy_says_how_to_give_one():
    with pytest.raises(TaxonomyError, match="MODEL.WISH.TAXONOMY.FILE"):
        config_taxonomy(())
    with pytest.raises(TaxonomyError, match="'never_registered' is not registered"):
        config_taxonomy(("never_registered",))

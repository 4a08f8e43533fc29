"""The noun taxonomy of a config: the one noun list every inference input uses, fixed before evaluation.

At inference nothing of the evaluated split may reach the model (the task, NS-iHOS, has no narrations at test
time). So the consumers of a noun list at inference (GSAM's Grounding DINO prompt, the ``open_vocab`` baseline's
vocabulary) ask :func:`taxonomy_for_config` (or :func:`config_taxonomy`, its two inputs spelled out) and never read
the metadata of the split they run on. The taxonomy is, first that applies:

1. ``MODEL.WISH.TAXONOMY.FILE``, a file the user names (a user-given taxonomy wins): one noun per line (blank lines
   and ``#`` comments ignored), or an EPIC-100 noun classes CSV (a ``.csv`` with columns ``id,key,instances,category``,
   ``instances`` a Python-list string of colon keys such as ``pan:frying``).
2. Else the union, in ``DATASETS.TRAIN`` order, of each training dataset's taxonomy (:func:`dataset_taxonomy`):
   a. its metadata ``nouns``, given at registration (the synthetic benchmark's 13 nouns) or memoised by (c);
   b. its metadata ``noun_classes_file`` when that file exists (the EPIC splits point at
      ``EPIC_100_noun_classes.csv`` beside the narration CSVs);
   c. the noun phrases of its narrations, sorted. Never its annotations: the ground-truth object names are not
      something a weakly supervised model may be told, even for training frames.

Every source gives phrases (colon keys read as in ``narrations.epic_noun_to_phrase``), without body parts
(``hand``, ``finger``...: ``narrations.is_body_part``). A taxonomy file that is missing, empty, or malformed raises
:class:`TaxonomyError` naming the file (and the line).
"""
import ast
import csv
import os
from typing import Dict, Iterable, List, Sequence

from detectron2.data import DatasetCatalog, MetadataCatalog

from .common import DataFormatError, dedup
from .narrations import epic_noun_to_phrase, is_body_part

__all__ = ["TaxonomyError", "EPIC_NOUN_CLASSES_FILE", "EPIC_NOUN_CLASSES_COLUMNS", "load_taxonomy_file",
           "dataset_taxonomy", "config_taxonomy", "taxonomy_for_config"]

#: The EPIC-100 noun classes file, looked for beside the narration CSVs.
EPIC_NOUN_CLASSES_FILE = "EPIC_100_noun_classes.csv"
EPIC_NOUN_CLASSES_COLUMNS = ("id", "key", "instances", "category")


class TaxonomyError(DataFormatError):
    """A taxonomy file is missing, empty or malformed, or no taxonomy can be found; the message says which."""


def _finish(phrases: Iterable[str]) -> List[str]:
    """Phrases (an EPIC colon key ``pan:frying`` reads "frying pan"), lower-cased, body parts and empties dropped,
    de-duplicated in order."""
    words = (" ".join(epic_noun_to_phrase(p).split()) for p in phrases)
    return [p for p in dedup(words) if p and not is_body_part(p)]


def _read_text(path: str) -> str:
    if not os.path.isfile(path):
        raise TaxonomyError(f"{path}: taxonomy file not found")
    try:
        with open(path, encoding="utf-8-sig") as f:
            return f.read()
    except UnicodeDecodeError as e:
        raise TaxonomyError(f"{path}: taxonomy file is not UTF-8 text ({e})") from e


def _epic_noun_classes(path: str, text: str) -> List[str]:
    """Class keys and their instances, in file order, as phrases (``pan:frying`` -> ``frying pan``)."""
    reader = csv.DictReader(text.splitlines())
    header = [(c or "").strip() for c in (reader.fieldnames or [])]
    missing = [c for c in EPIC_NOUN_CLASSES_COLUMNS if c not in header]
    if missing:
        raise TaxonomyError(f"{path}: not an EPIC-100 noun classes CSV: expected columns "
                            f"{','.join(EPIC_NOUN_CLASSES_COLUMNS)}, missing {','.join(missing)}")
    reader.fieldnames = header
    phrases: List[str] = []
    for row in reader:
        where = f"{path}:{reader.line_num}"
        if None in row or any(row.get(c) is None for c in EPIC_NOUN_CLASSES_COLUMNS):
            raise TaxonomyError(f"{where}: row has a wrong number of fields")
        key = row["key"].strip()
        if not key:
            raise TaxonomyError(f"{where}: empty noun class key")
        try:
            instances = ast.literal_eval(row["instances"].strip() or "[]")
        except (ValueError, SyntaxError, RecursionError, MemoryError) as e:
            raise TaxonomyError(f"{where}: instances is not a Python list literal: {row['instances']!r} ({e})") \
                from None
        if not isinstance(instances, (list, tuple)) or not all(isinstance(x, str) for x in instances):
            raise TaxonomyError(f"{where}: instances must be a list of noun keys, got {row['instances']!r}")
        phrases += [key, *instances]
    return phrases


def load_taxonomy_file(path: str) -> List[str]:
    """The nouns of a taxonomy file: an EPIC-100 noun classes CSV (``.csv``), else one noun per line."""
    text = _read_text(path)
    if path.lower().endswith(".csv"):
        phrases = _epic_noun_classes(path, text)
    else:
        phrases = []
        for line in text.splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                phrases.append(line)
        bad = [p for p in phrases if not any(ch.isalpha() for ch in p) or any(ord(ch) < 32 for ch in p)]
        if bad:
            raise TaxonomyError(f"{path}: a taxonomy line must be a noun, got {bad[0]!r}")
    nouns = _finish(phrases)
    if not nouns:
        raise TaxonomyError(f"{path}: taxonomy file holds no noun (body parts do not count)")
    return nouns


def dataset_taxonomy(name: str) -> List[str]:
    """The taxonomy of one TRAINING dataset (sources a-c of the module docstring). Loading the split to read its
    narrations happens once: the result is kept as its metadata ``nouns``."""
    meta = MetadataCatalog.get(name)
    nouns = meta.get("nouns", None)
    if nouns:
        return _finish(nouns)
    classes = meta.get("noun_classes_file", None)
    if classes and os.path.isfile(classes):
        return load_taxonomy_file(classes)
    if name not in DatasetCatalog.list():
        raise TaxonomyError(f"no taxonomy: dataset {name!r} is not registered; register it or set "
                            "MODEL.WISH.TAXONOMY.FILE")
    nouns = sorted(_finish(p for d in DatasetCatalog.get(name) for p in d.get("noun_phrases", [])))
    if not nouns:
        raise TaxonomyError(f"no taxonomy: the narrations of training dataset {name!r} hold no noun; register it "
                            "with nouns=[...] or set MODEL.WISH.TAXONOMY.FILE")
    meta.set(nouns=nouns)
    return nouns


_FILE_MEMO: Dict[str, tuple] = {}


def config_taxonomy(train_datasets: Sequence[str], taxonomy_file: str = "") -> List[str]:
    """The taxonomy from a taxonomy file (wins) or the training datasets; never from an evaluated split."""
    if taxonomy_file:
        stamp = os.stat(taxonomy_file).st_mtime_ns if os.path.isfile(taxonomy_file) else None
        memo = _FILE_MEMO.get(taxonomy_file)
        if memo is None or memo[0] != stamp:
            _FILE_MEMO[taxonomy_file] = memo = (stamp, load_taxonomy_file(taxonomy_file))
        return list(memo[1])
    if not train_datasets:
        raise TaxonomyError("no taxonomy: DATASETS.TRAIN is empty and MODEL.WISH.TAXONOMY.FILE is not set")
    return dedup(n for name in train_datasets for n in dataset_taxonomy(name))


def taxonomy_for_config(cfg) -> List[str]:
    """``config_taxonomy(cfg.DATASETS.TRAIN, cfg.MODEL.WISH.TAXONOMY.FILE)``."""
    return config_taxonomy(tuple(cfg.DATASETS.TRAIN), cfg.MODEL.WISH.TAXONOMY.FILE)

"""The synthetic splits are registered with the VISOR loader's keyed dict cache: later loads read the parsed dicts
back, identical to a fresh parse, and the split folders hold exactly the generated files."""
import os

from detectron2.data import DatasetCatalog, MetadataCatalog

from wish_d2.data.builtin import DICTS_CACHE, register_synthetic


def _tree(folder):
    out = {}
    for dirpath, _, names in os.walk(folder):
        for n in names:
            p = os.path.join(dirpath, n)
            with open(p, "rb") as f:
                out[os.path.relpath(p, folder)] = f.read()
    return out


def test_synthetic_registration_caches_dicts_identically(tmp_path):
    root = str(tmp_path)
    kw = dict(seed=5, num_train=4, num_val=1, num_test=1, image_size=(64, 80), root=root)
    names = register_synthetic(prefix="_t_dicts_plain", cache_dicts=False, **kw)
    plain = names["train"]
    fresh = DatasetCatalog.get(plain)
    folder = MetadataCatalog.get(plain).split_dir
    cache_dir = os.path.join(root, DICTS_CACHE)
    assert not os.path.exists(cache_dir)  # opted out: nothing written
    files = _tree(folder)

    names_cached = register_synthetic(prefix="_t_dicts_cached", **kw)
    cached = names_cached["train"]
    assert MetadataCatalog.get(cached).split_dir == folder
    first = DatasetCatalog.get(cached)  # parses and writes the cache
    written = os.listdir(cache_dir)
    assert len(written) == 1 and written[0].endswith(".json")
    again = DatasetCatalog.get(cached)  # read back
    assert fresh == first == again and len(again) == 4
    assert [type(a["bbox_mode"]) for d in again for a in d["annotations"]] == \
        [type(a["bbox_mode"]) for d in fresh for a in d["annotations"]]
    after = _tree(folder)
    assert after == files  # the split's folder holds exactly the generated files
    # a reader never trusts a damaged cache file: it is rebuilt, with the same dicts
    path = os.path.join(cache_dir, written[0])
    with open(path, "w") as f:
        f.write('{"format": "wish-dataset-dicts", "key"')
    assert DatasetCatalog.get(cached) == fresh
    for name in [*names.values(), *names_cached.values()]:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)

"""Nothing of the evaluated split reaches an inference input (issue: NS-iHOS has no narrations at test time).

A test split whose only in-hand object is a "zebrafruit", named in no training narration and no taxonomy, with
narrations unlike training's, and even registered with its own taxonomy (the strongest temptation to read it):
the GSAM prompt, open_vocab's nouns and every text the model encodes at inference stay free of it, and WISH's
predictions do not change when the test narrations and annotations are removed. The one exception, the
``pseudo_labels`` reference row, reads test narrations by design.
"""
import copy

import pytest
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.modeling import build_model

from wish_d2.data.mappers import WISHOnlineMapper
from wish_d2.data.taxonomy import taxonomy_for_config
from wish_d2.engine.data import dataset_dicts
from wish_d2.modeling import proposal_generators
from wish_d2.modeling.roi_heads import HEAD_METHODS
from wish_d2.modeling.segmenters.gsam import taxonomy_prompt

from wish_fixtures import register_tiny_dataset, tiny_cfg

SECRET = ("zebrafruit", "quokka", "peel")  # the test object, a test-only narration noun and verb
TEST_NARRATION = "peel the zebrafruit next to the quokka"


def _reregister(name, dicts, **metadata):
    meta = MetadataCatalog.get(name)
    keep = {k: meta.get(k) for k in ("thing_classes", "evaluator_type", "proposals_file", "image_root")}
    DatasetCatalog.remove(name)
    MetadataCatalog.remove(name)
    DatasetCatalog.register(name, lambda: [copy.deepcopy(d) for d in dicts])
    MetadataCatalog.get(name).set(**keep, **metadata)


@pytest.fixture(scope="module")
def cfg(tmp_path_factory):
    root = tmp_path_factory.mktemp("leak")
    train = register_tiny_dataset(str(root / "train"), name="leak_train", n=4)
    _reregister("leak_train", train)  # no registered taxonomy: it comes from the training narrations
    test = register_tiny_dataset(str(root / "test"), name="leak_test", n=4, seed=1)
    for d in test:
        for a in d["annotations"]:
            a["noun"] = "zebrafruit"
        d["narrations"], d["noun_phrases"] = [TEST_NARRATION], ["zebrafruit", "quokka"]
    assert any(d["annotations"] for d in test)
    _reregister("leak_test", test, nouns=["zebrafruit", "quokka"])
    c = tiny_cfg(root / "out", train="leak_train")
    c.DATASETS.TEST = ("leak_test",)
    yield c
    for name in ("leak_train", "leak_test"):
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)


def _test_inputs():
    mapper = WISHOnlineMapper(is_train=False)
    return [mapper(d) for d in dataset_dicts("leak_test")]


def _leaks(texts):
    return [t for t in texts if any(s in t.lower() for s in SECRET)]


def test_the_taxonomy_is_the_training_narrations_nouns(cfg):
    assert taxonomy_for_config(cfg) == ["cup", "knife"]


def test_the_gsam_prompt_on_test_frames_holds_no_test_noun(cfg, monkeypatch):
    prompts = []

    class Recorder(torch.nn.Module):
        def forward(self, image, nouns=None, **unused):
            prompts.append(taxonomy_prompt(nouns))
            h, w = image.shape[:2]
            return torch.zeros((0, h, w), dtype=torch.bool), torch.zeros(0)

    monkeypatch.setattr(proposal_generators, "build_segmenter", lambda cfg, name: Recorder())
    gen = proposal_generators.GSAMProposals(cfg)
    gen(_test_inputs())  # each dict names its dataset, "leak_test", whose metadata holds the test nouns
    assert prompts and set(prompts) == {"cup . knife ."}


def test_no_text_the_model_encodes_at_inference_holds_a_test_noun_or_narration(cfg):
    model = build_model(cfg).eval()
    encoded = []
    encode_text = model.clip.encode_text
    model.clip.encode_text = lambda texts: (encoded.extend(texts), encode_text(texts))[1]
    xs = _test_inputs()
    with torch.no_grad():
        for method in HEAD_METHODS:
            model(xs, method=method)
    assert encoded and not _leaks(encoded)
    assert model.vocabulary_embeddings()[1] == 2  # open_vocab's nouns: cup, knife

    # the documented exception: the pseudo_labels reference row reads the test narrations
    with torch.no_grad():
        model.pseudo_label(xs)
    assert _leaks(encoded)


def test_predictions_do_not_depend_on_test_narrations_or_annotations(cfg):
    model = build_model(cfg).eval()
    xs = _test_inputs()
    stripped = []
    for x in xs:
        x = dict(x, narrations=[], noun_phrases=[], annotations=[])
        stripped.append(x)
    cached_text = [dict(x, text_embeds=torch.randn(3, 2, model.clip.embed_dim)) for x in xs]
    with torch.no_grad():
        for method in ("wish", "open_vocab"):
            ref = model(xs, method=method)
            for other in (stripped, cached_text):
                out = model(other, method=method)
                for a, b in zip(ref, out):
                    a, b = a["instances"], b["instances"]
                    assert torch.equal(a.scores, b.scores) and torch.equal(a.pred_classes, b.pred_classes)
                    assert torch.equal(a.pred_masks, b.pred_masks)

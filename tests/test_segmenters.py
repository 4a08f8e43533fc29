"""Segmenters: tiny SAM through the real checkpoint loader, SAM automatic masks, tiny Grounded-SAM end to end."""
import numpy as np
import pytest
import torch

from detectron2.config import get_cfg
from detectron2.data import MetadataCatalog
from detectron2.structures import Instances

from wish_d2 import add_wish_config
from wish_d2.modeling.proposal_generators import GSAMProposals
from wish_d2.modeling.segmenters import (
    GSAMSegmenter,
    SAMSegmenter,
    build_sam,
    build_segmenter,
    load_grounding_dino,
    taxonomy_prompt,
)

NOUNS = ["cup", "knife", "pan:frying", "bowl", "jug", "spoon"]


def _image(h=64, w=80, seed=0):
    rng = np.random.default_rng(seed)
    img = np.full((h, w, 3), 40, np.uint8)
    img[8:40, 10:34] = (200, 30, 30)
    img[30:60, 40:76] = (20, 200, 40)
    return img + rng.integers(0, 20, img.shape, dtype=np.uint8)


@pytest.fixture(scope="module")
def tiny_sam():
    return build_sam("tiny")


# ------------------------------------------------------------------------------------------------------------ SAM
def test_tiny_sam_checkpoint_round_trip(tmp_path):
    sam = build_sam("tiny", init_seed=0)
    path = tmp_path / "sam_tiny.pth"
    torch.save(sam.state_dict(), path)
    loaded = build_sam("tiny", str(path), init_seed=1)  # a different random init, then the checkpoint
    other = build_sam("tiny", init_seed=1)
    x = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        ref, out, diff = sam.image_encoder(x), loaded.image_encoder(x), other.image_encoder(x)
    assert torch.allclose(ref, out)
    assert not torch.allclose(ref, diff)
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
    # {"model": state_dict} wrappers are accepted too
    torch.save({"model": sam.state_dict()}, tmp_path / "wrapped.pth")
    wrapped = build_sam("tiny", str(tmp_path / "wrapped.pth"), init_seed=2)
    with torch.no_grad():
        assert torch.allclose(wrapped.image_encoder(x), ref)


def test_sam_checkpoint_errors_name_the_path(tmp_path):
    missing = tmp_path / "nope" / "sam_vit_b_01ec64.pth"
    with pytest.raises(FileNotFoundError) as e:
        build_sam("vit_b", str(missing))
    assert str(missing) in str(e.value) and "sam_vit_b_01ec64.pth" in str(e.value)

    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"\x80\x02this is not a checkpoint")
    with pytest.raises(RuntimeError) as e:
        build_sam("tiny", str(corrupt))
    assert str(corrupt) in str(e.value)

    truncated = tmp_path / "truncated.pth"
    torch.save(build_sam("tiny").state_dict(), truncated)
    truncated.write_bytes(truncated.read_bytes()[:1000])
    with pytest.raises(RuntimeError) as e:
        build_sam("tiny", str(truncated))
    assert str(truncated) in str(e.value)

    wrong = tmp_path / "wrong_size.pth"
    torch.save({"image_encoder.pos_embed": torch.zeros(1)}, wrong)
    with pytest.raises(RuntimeError) as e:
        build_sam("tiny", str(wrong))
    assert str(wrong) in str(e.value)

    with pytest.raises(ValueError):
        build_sam("vit_q")


def test_sam_segmenter_masks(tiny_sam):
    seg = SAMSegmenter(sam=tiny_sam, points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=0.0)
    img = _image()
    masks, scores = seg(img)
    assert masks.dtype == torch.bool and masks.ndim == 3 and masks.shape[1:] == (64, 80)
    assert len(masks) >= 1 and scores.shape == (len(masks),)
    assert torch.all(scores[:-1] >= scores[1:])
    masks2, scores2 = seg(torch.from_numpy(img))  # tensors HWC are accepted, results are deterministic
    assert torch.equal(masks, masks2) and torch.allclose(scores, scores2)
    seg.train()
    assert not seg.training and not seg.sam.training  # frozen models stay in eval mode


def test_sam_segmenter_from_cfg():
    cfg = get_cfg()
    add_wish_config(cfg)
    cfg.MODEL.WISH.SEGMENTER.SAM_TYPE = "tiny"
    cfg.MODEL.WISH.SEGMENTER.POINTS_PER_SIDE = 4
    seg = build_segmenter(cfg)
    assert isinstance(seg, SAMSegmenter) and seg.amg_kwargs["points_per_side"] == 4
    masks, scores = seg(_image())
    assert masks.shape[1:] == (64, 80) and len(scores) == len(masks)


# ----------------------------------------------------------------------------------------------------------- GSAM
def _write_tiny_bert_vocab(path, words):
    """A BERT vocab whose special tokens sit at the ids Grounding DINO hard-codes ([CLS]=101, [SEP]=102,
    '.'=1012, '?'=1029), padded with [unused] entries, plus a few words."""
    toks = ["[PAD]"] + [f"[unused{i}]" for i in range(1, 100)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    toks += [f"[unused{i}]" for i in range(len(toks), 1012)] + ["."]
    toks += [f"[unused{i}]" for i in range(len(toks), 1029)] + ["?"]
    toks += sorted(set(words))
    path.write_text("\n".join(toks) + "\n")
    return len(toks)


@pytest.fixture(scope="module")
def tiny_gdino_dir(tmp_path_factory):
    from transformers import (
        BertConfig,
        BertTokenizer,
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessor,
        GroundingDinoProcessor,
        SwinConfig,
    )

    folder = tmp_path_factory.mktemp("tiny_gdino")
    words = [w for n in NOUNS for w in n.replace(":", " ").split()] + ["a"]
    vocab_size = _write_tiny_bert_vocab(folder / "vocab.txt", words)
    tokenizer = BertTokenizer(str(folder / "vocab.txt"))
    processor = GroundingDinoProcessor(
        image_processor=GroundingDinoImageProcessor(size={"shortest_edge": 64, "longest_edge": 128}),
        tokenizer=tokenizer,
    )
    config = GroundingDinoConfig(
        backbone_config=SwinConfig(image_size=64, patch_size=4, embed_dim=16, depths=[1, 1, 1, 1],
                                   num_heads=[1, 1, 1, 1], window_size=4,
                                   out_features=["stage2", "stage3", "stage4"]),
        text_config=BertConfig(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                               intermediate_size=64, max_position_embeddings=64),
        d_model=32, encoder_layers=1, decoder_layers=2, encoder_ffn_dim=64, decoder_ffn_dim=64,
        encoder_attention_heads=2, decoder_attention_heads=2, num_queries=20, max_text_len=8,
    )
    torch.manual_seed(0)
    GroundingDinoForObjectDetection(config).save_pretrained(str(folder / "model"))
    processor.save_pretrained(str(folder / "model"))
    return str(folder / "model")


def test_taxonomy_prompt():
    assert taxonomy_prompt(["Knife", "pan:frying", "knife", " "]) == "knife . frying pan ."


def test_grounding_dino_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        load_grounding_dino(str(tmp_path / "gdino"))
    assert str(tmp_path / "gdino") in str(e.value)
    with pytest.raises(ValueError):
        load_grounding_dino("")


def test_gsam_tiny_end_to_end(tiny_sam, tiny_gdino_dir):
    gdino, processor = load_grounding_dino(tiny_gdino_dir)
    assert not gdino.training and not any(p.requires_grad for p in gdino.parameters())
    seg = GSAMSegmenter(sam=tiny_sam, grounding_dino=gdino, processor=processor, box_threshold=0.0,
                        text_threshold=0.0)
    # max_text_len=8 cannot hold the whole taxonomy: it is split into chunks of whole phrases
    chunks = seg._chunks(NOUNS)
    assert len(chunks) > 1 and " ".join(chunks) == taxonomy_prompt(NOUNS)
    assert seg._chunks(list(NOUNS)) is chunks  # tokenized once per taxonomy, not per frame
    img = _image()
    det = seg.detect(img, NOUNS)
    assert det["boxes"].shape == (len(det["scores"]), 4) and len(det["phrases"]) == len(det["scores"])
    masks, scores = seg(img, nouns=NOUNS)
    assert masks.dtype == torch.bool and masks.shape[1:] == (64, 80) and scores.shape == (len(masks),)
    assert len(masks) == len(det["scores"]) and len(masks) > 0  # thresholds 0: random boxes get through
    # impossible thresholds: zero proposals, no crash
    strict = GSAMSegmenter(sam=tiny_sam, grounding_dino=gdino, processor=processor, box_threshold=1.0,
                           text_threshold=1.0)
    masks, scores = strict(img, nouns=NOUNS)
    assert masks.shape == (0, 64, 80) and scores.shape == (0,)


def test_gsam_proposals_from_cfg(tiny_gdino_dir):
    cfg = get_cfg()
    add_wish_config(cfg)
    cfg.MODEL.PROPOSAL_GENERATOR.NAME = "GSAMProposals"
    cfg.MODEL.WISH.SEGMENTER.NAME = "GSAM"
    cfg.MODEL.WISH.SEGMENTER.SAM_TYPE = "tiny"
    cfg.MODEL.WISH.SEGMENTER.GDINO_PATH = tiny_gdino_dir
    cfg.MODEL.WISH.SEGMENTER.BOX_THRESHOLD = 0.0
    cfg.MODEL.WISH.SEGMENTER.TEXT_THRESHOLD = 0.0
    cfg.MODEL.WISH.PROPOSALS.MIN_AREA = 0
    cfg.MODEL.WISH.PROPOSALS.MAX_PER_IMAGE = 3
    MetadataCatalog.get("_test_gsam_nouns").set(nouns=NOUNS)
    cfg.DATASETS.TRAIN = ("_test_gsam_nouns",)
    gen = GSAMProposals(cfg)
    img = torch.from_numpy(_image()).permute(2, 0, 1).contiguous()
    (inst,) = gen([{"image": img, "image_id": "x", "height": 64, "width": 80, "dataset_name": "_test_gsam_nouns"}])
    assert gen.nouns == ["cup", "knife", "frying pan", "bowl", "jug", "spoon"]  # the training taxonomy
    assert isinstance(inst, Instances) and inst.image_size == (64, 80)
    n = len(inst)
    assert 0 <= n <= 3
    assert inst.proposal_masks.shape == (n, 64, 80) and inst.proposal_boxes.tensor.shape == (n, 4)
    assert inst.objectness_logits.shape == (n,) and torch.isfinite(inst.objectness_logits).all()
    cfg.DATASETS.TRAIN = ("_test_no_nouns",)
    with pytest.raises(ValueError, match="taxonomy"):
        GSAMProposals(cfg)([{"image": img, "image_id": "x", "height": 64, "width": 80}])

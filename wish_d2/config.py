"""The one config function of the plugin: ``add_wish_config(cfg)``. Every default carries a comment.

Allowed values are checked by :func:`wish_d2.config_validation.validate_wish_config`, where a tool builds its config
(:func:`wish_d2.engine.setup.build_cfg`). The ``@configurable`` modules' keyword defaults are these defaults.
"""
from detectron2.config import CfgNode as CN


def add_wish_config(cfg: CN) -> None:
    """Add the ``MODEL.WISH`` subtree (and the few stock keys WISH relies on) to ``cfg`` in place."""
    cfg.MODEL.WISH = CN()
    W = cfg.MODEL.WISH
    W.STAGE = "all"  # "stage1" alignment, "stage2" contact+matching heads, "all" = both + pseudo-labels + eval
    W.SUPERVISION = "pseudo"  # Stage 2 targets: "pseudo" (WISH) or "gt" (fully supervised upper bound)
    W.METHOD = "wish"  # inference rule, one of modeling.roi_heads.HEAD_METHODS (wish, matching_only, ...)
    W.USE_VISUAL = True  # ablation switch: False zeroes the CLIP embeddings in pair features (geometry only)
    W.USE_GEOMETRY = True  # ablation switch: False drops g(m, H) from pair features (visual only)
    W.USE_CONTACT_REGION = True  # add the CLIP embedding of each pair's contact zone (m ∩ dil H) ∪ (H ∩ dil m)
    W.MAX_OBJECTS_PER_HAND = 1  # objects one hand may hold (pseudo-labels and inference); 1 = the paper's prior

    W.CLIP = CN()
    W.CLIP.ENCODER = "OpenCLIPEncoder"  # CLIP_ENCODER_REGISTRY entry
    W.CLIP.MODEL_NAME = "WISH-Tiny-ViT"  # open_clip architecture; "ViT-B-16" for real data
    W.CLIP.PRETRAINED = ""  # open_clip tag ("openai", "laion2b_s34b_b88k"), URL or file; "" = seeded random init
    W.CLIP.INIT_SEED = 0  # seed of the random init when PRETRAINED is "", so features are reproducible
    W.CLIP.PROMPT = "{noun} in contact with the {side} hand"  # Stage 1 text template per noun phrase and side
    W.CLIP.ZERO_SHOT_PROMPT = "an object held in the {side} hand"  # CLIP zero-shot baseline prompt
    W.CLIP.MASK_SOFT_COVERAGE = True  # attention bias from the fraction of each patch a mask covers (else binary)
    W.CLIP.AUTOCAST = ""  # "bfloat16": image tower under CUDA autocast (faster extraction); "" float32; CPU ignores it
    W.CLIP.PROBE_FRAMES = 200  # synthetic test frames of the encoder's zero-shot category probe in the table; 0 = skip
    W.CLIP.WEB_PRETRAIN = CN()  # tiny CLIP pretrained on the synthetic web split (docs/SYNTHETIC.md)
    W.CLIP.WEB_PRETRAIN.ENABLED = False  # True: built on first use under $DETECTRON2_DATASETS, loaded as PRETRAINED
    W.CLIP.WEB_PRETRAIN.SEED = 0  # seed of the web pairs and of the init (part of the checkpoint's key)
    W.CLIP.WEB_PRETRAIN.STEPS = 400  # optimizer steps of BATCH_SIZE web pairs
    W.CLIP.WEB_PRETRAIN.BATCH_SIZE = 64  # image-caption pairs per ClipLoss batch
    W.CLIP.WEB_PRETRAIN.LR = 2e-3  # AdamW peak learning rate (warm-up, then cosine decay)
    W.CLIP.WEB_PRETRAIN.UNLOCKED_IMAGE_GROUPS = 2  # 2: last block + ln_post + proj train (input cached); -1: all
    W.CLIP.WEB_PRETRAIN.IMAGE_SIZE = 160  # side of the web images (the model's input size)
    W.CLIP.WEB_PRETRAIN.NUM_PAIRS = 1000  # size of the web split, cycled over; 0 = every step draws new pairs
    W.CLIP.WEB_PRETRAIN.OBJECT_SHARE = 0.0  # share of web pairs that are close-ups of one object (product photos)

    W.TAXONOMY = CN()  # the noun list of every inference input (GSAM prompt, open_vocab); wish_d2/data/taxonomy.py
    W.TAXONOMY.FILE = ""  # one noun per line, or EPIC_100_noun_classes.csv; "" = the taxonomy of DATASETS.TRAIN

    W.OPEN_VOCAB = CN()  # the narration-free open_vocab baseline (docs/METHOD.md section 12)
    W.OPEN_VOCAB.NOUNS = []  # its own noun list; [] = the config's taxonomy (MODEL.WISH.TAXONOMY)
    W.OPEN_VOCAB.PROMPT = "a {noun}"  # noun template (the encoder probe's prompt)
    W.OPEN_VOCAB.BACKGROUND = ["a hand", "a kitchen counter"]  # prompts of what is not an object (kitchen data)

    W.SEGMENTER = CN()
    W.SEGMENTER.NAME = "SAM"  # SEGMENTER_REGISTRY entry used by online proposal generators: SAM | GSAM
    W.SEGMENTER.SAM_TYPE = "vit_b"  # vit_b | vit_l | vit_h (segment_anything) or tiny (tests)
    W.SEGMENTER.SAM_CHECKPOINT = ""  # sam_vit_*.pth local path or http(s) URL; "" = random init (tests only)
    W.SEGMENTER.POINTS_PER_SIDE = 32  # SAM automatic mask generator grid density
    W.SEGMENTER.PRED_IOU_THRESH = 0.88  # SAM automatic mask generator quality filter
    W.SEGMENTER.STABILITY_SCORE_THRESH = 0.95  # SAM automatic mask generator stability filter (0 for random SAM)
    W.SEGMENTER.POINTS_PER_BATCH = 64  # SAM prompts decoded per batch (memory vs speed)
    W.SEGMENTER.BOX_NMS_THRESH = 0.7  # class-agnostic NMS between proposals of one image
    W.SEGMENTER.GDINO_PATH = ""  # Grounding DINO: local transformers folder or Hugging Face repo id (GSAM only)
    W.SEGMENTER.BOX_THRESHOLD = 0.25  # Grounding DINO box score threshold (GSAM only)
    W.SEGMENTER.TEXT_THRESHOLD = 0.25  # Grounding DINO phrase threshold (GSAM only)

    W.PROPOSALS = CN()
    W.PROPOSALS.MAX_PER_IMAGE = 32  # keep the top proposals by score
    W.PROPOSALS.MIN_AREA = 16  # drop proposals smaller than this many pixels
    W.PROPOSALS.MAX_HAND_FRACTION = 0.5  # drop proposals whose area is more than this fraction hand

    W.HANDS = CN()
    # HAND_SOURCE_REGISTRY entry: "detector" is the paper's setting (the real-data configs); "dataset" reads the
    # annotated hands, an oracle (upper bound) kept for the synthetic benchmark and ablations; "precomputed" a file
    W.HANDS.SOURCE = "dataset"  # dataset (oracle) | precomputed | detector
    W.HANDS.SIDE_HEURISTIC = True  # side-less hands get a side from the vertical split (centroid x < W/2 = left)
    W.HANDS.PRECOMPUTED_FILE = ""  # json of hand masks for the "precomputed" source
    W.HANDS.DETECTOR_CONFIG = ""  # Detectron2 config of a hand detector for the "detector" source
    W.HANDS.DETECTOR_WEIGHTS = ""  # its weights: local path or http(s) URL (cached by Detectron2's PathManager)
    W.HANDS.DETECTOR_CLASSES = ["hand"]  # classes by index: "left hand"/"right hand" keep a side, "hand" gets one
    W.HANDS.DETECTOR_SCORE_THRESH = 0.5  # detections below this score are not hands
    W.HANDS.DILATION = 0.04  # hand dilation for geometry features, as a fraction of the image diagonal

    W.ADAPTER = CN()
    W.ADAPTER.HIDDEN_DIM = 256  # hidden width of MLPv / MLPt and the Stage 2 heads
    W.ADAPTER.EMBED_DIM = 128  # joint embedding width of Stage 1
    W.ADAPTER.DROPOUT = 0.1  # dropout inside the adapters and heads

    # Per-stage solver: the pipeline derives SOLVER.MAX_ITER, BASE_LR, IMS_PER_BATCH, STEPS (one LR drop at 80 %),
    # WARMUP_ITERS (at most a tenth of the stage) and CHECKPOINT_PERIOD of each stage from these sections and logs
    # them (wish_d2.engine.pipeline.stage_solver); SOLVER.* values of those keys in a config are replaced, with a
    # warning. SOLVER.OPTIMIZER, WEIGHT_DECAY and WARMUP_ITERS (as the cap's upper bound) apply to both stages.
    W.STAGE1 = CN()
    W.STAGE1.TEMPERATURE = 0.07  # tau of s_{i,j,s} = cos(w, p) / tau
    W.STAGE1.MAX_ITER = 2000  # iterations of Stage 1 (SOLVER.MAX_ITER of the stage1 run)
    W.STAGE1.BASE_LR = 1e-3  # AdamW learning rate of Stage 1
    W.STAGE1.IMS_PER_BATCH = 32  # images (= narrations) per InfoNCE batch
    W.STAGE1.PAIR_VISUAL = "contact"  # Stage 1 visual features: "contact" zone only, or "all" (+ object, hand)
    W.STAGE1.TOUCHING_PAIRS_ONLY = False  # Stage 1 loss + pseudo-labels use only pairs with a non-empty contact zone

    W.CALIBRATION = "val_labels"  # thresholds < 0: "val_labels" grid search on val masks, "label_free" Otsu on scores
    W.PSEUDO = CN()
    W.PSEUDO.THRESHOLD = -1.0  # score threshold of a positive; < 0 = calibrate on the validation split
    W.PSEUDO.BOTH_RULE = True  # a hand may accept the object the other hand accepted if it is its own best
    W.PSEUDO.EXTRA_THRESHOLD = -1.0  # score a hand's further objects need (MAX_OBJECTS_PER_HAND > 1); < 0 = calibrate
    W.PSEUDO.FILE = ""  # pseudo-label json to train Stage 2 on; "" = OUTPUT_DIR/pseudo_labels.json

    W.STAGE2 = CN()
    W.STAGE2.MAX_ITER = 1000  # iterations of Stage 2 (SOLVER.MAX_ITER of the stage2 run)
    W.STAGE2.BASE_LR = 3e-3  # AdamW learning rate of Stage 2
    W.STAGE2.IMS_PER_BATCH = 32  # images per Stage 2 batch
    W.STAGE2.MATCH_NULL = True  # matching softmax over objects + "no object"; hands without a target train it too
    W.STAGE2.MATCH_BOTH_HANDS = True  # matching head sees the object against both hands (heads.ContactMatchingHeads)
    W.STAGE2.PAIR_VISUAL = "all"  # Stage 2 visual features: "all" (object, hand, contact zone) or "contact" zone only

    W.INFERENCE = CN()
    W.INFERENCE.CONTACT_THRESHOLD = -1.0  # keep a hand's object if its probability >= this; < 0 = calibrate on val
    W.INFERENCE.EXTRA_CONTACT_THRESHOLD = -1.0  # contactness a further object needs (K > 1 per hand); < 0 = calibrate
    W.INFERENCE.FUSION = "product"  # "product": argmax + threshold on q = sqrt(c*softmax a); "chain": argmax a, then c

    W.LOSS_WEIGHTS = CN()
    W.LOSS_WEIGHTS.ALIGN = 1.0  # Stage 1 symmetric InfoNCE; 0 drops the term
    W.LOSS_WEIGHTS.CONTACT = 1.0  # Stage 2 contactness BCE; 0 drops the term
    W.LOSS_WEIGHTS.MATCH = 1.0  # Stage 2 matching cross-entropy; 0 drops the term

    W.CACHE = CN()
    W.CACHE.DIR = ""  # feature cache root; "" = OUTPUT_DIR/cache
    W.CACHE.SHARD_SIZE = 256  # images per cache shard
    W.CACHE.DTYPE = "float32"  # storage of cached embeddings: "float32" (exact), "float16" or "int8" (smaller)
    W.CACHE.ENABLED = True  # train from cached features; False runs the frozen models online every step

    cfg.SOLVER.OPTIMIZER = "AdamW"  # "AdamW" for the small adapters/heads, or "SGD" (Detectron2's default)
    cfg.INPUT.FORMAT = "RGB"  # what WISH's mappers hand SAM, Grounding DINO and CLIP (Detectron2's default is BGR)
    cfg.INPUT.DATASET_MAPPER_NAME = "wish_cached"  # "wish_cached" (feature cache) or "wish_online" (images)
    cfg.DATASETS.VAL = ()  # split used to calibrate thresholds; never the test split
    cfg.DATASETS.SYNTHETIC = CN()
    cfg.DATASETS.SYNTHETIC.SEED = 0  # seed of the embedded synthetic benchmark
    cfg.DATASETS.SYNTHETIC.NUM_TRAIN = 1500  # frames in wish_synth_train
    cfg.DATASETS.SYNTHETIC.NUM_VAL = 600  # frames in wish_synth_val; the two thresholds are calibrated on it
    cfg.DATASETS.SYNTHETIC.NUM_TEST = 1000  # frames in wish_synth_test
    cfg.DATASETS.SYNTHETIC.IMAGE_SIZE = (160, 160)  # (H, W) of synthetic frames
    cfg.DATASETS.SYNTHETIC.MULTI_GRIP = 0.0  # share of one-hand grips with a second object; 0 = the benchmark's bytes

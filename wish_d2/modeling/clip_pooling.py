"""Mask-guided CLIP pooling: one ViT pass per image, one extra query token per mask in the last block.

``MaskPooledCLIP`` is the only place in WISH that touches open_clip internals. It is written against
open_clip_torch 3.3 (``VisionTransformer`` + ``ResidualAttentionBlock`` with ``nn.MultiheadAttention``,
``pool_type='tok'``) and checks that structure at construction, so a changed pin fails loudly instead of
pooling silently wrong.

How a mask is pooled. Let ``x`` be the token sequence ``[CLS, patch_1..patch_P]`` that enters the LAST transformer
block. Each mask gets a query token initialised from ``x[CLS]``. The query goes through the last block exactly as CLS
would (``ln_1 -> attn -> ls_1`` residual, then the MLP residual), except that its attention is restricted by an additive
bias over the keys: 0 for CLS, ``log(coverage)`` for each patch (coverage = fraction of the patch the mask covers,
clamped at ``NEG_BIAS`` so an uncovered patch is effectively excluded). Its output then goes through ``ln_post`` and
``proj`` like the CLS token. Consequences (tested):

* a mask covering the whole image has bias 0 everywhere, so its token IS the CLS token: ``encode_image`` is reproduced;
* an empty mask attends to CLS only, so it is finite (it degenerates to a CLS-like embedding);
* the original tokens never attend to the mask tokens, so masks do not interact: pooling N masks in one pass equals
  N single-mask passes (``pool_per_mask_reference``), at the cost of one ViT pass plus N queries in one block.

Geometry convention: ``preprocess`` squashes each frame to ``S x S`` (no crop), so a mask at the frame's original
resolution, or at any working resolution of the same aspect (``geometry.to_working_res``), maps onto the patch grid
by area averaging, and no part of any mask is ever cropped away.
"""
import contextlib
from typing import List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["MaskPooledCLIP", "NEG_BIAS"]

#: Additive attention bias for "not attended". Finite (not -inf) so an all-excluded row can never produce NaN;
#: exp(-1e4) underflows to exactly 0 in fp32/fp16, so it is an exact exclusion in practice.
NEG_BIAS = -1.0e4

_MAX_COVERAGE_ELEMS = 1 << 25  # masks are converted to float in chunks of at most this many pixels (memory bound)


class MaskPooledCLIP(nn.Module):
    """Frozen open_clip model + mask-guided pooling. All public methods run without gradients.

    Args:
        clip_model: an open_clip ``CLIP`` / ``CustomTextCLIP`` with a ViT image tower (``pool_type='tok'``).
        tokenizer: callable ``list[str] -> LongTensor [T, context_length]``; default: open_clip's tokenizer for
            ``model_name`` or, without a name, the bundled (offline) BPE ``SimpleTokenizer``.
        model_name: open_clip architecture name (for the tokenizer and for messages).
        soft_coverage: attention bias ``log(coverage)`` (True) or binary 0 / ``NEG_BIAS`` by "any coverage" (False).
        text_batch_size: prompts per text-tower forward in ``encode_text``.
        autocast_dtype: ``torch.bfloat16`` runs the image tower under CUDA autocast (about twice as fast on recent
            GPUs) up to the last block; the mask queries and every output stay float32. Ignored off CUDA, so the CPU
            path is always exact float32.
    """

    def __init__(
        self,
        clip_model: nn.Module,
        tokenizer=None,
        model_name: str = "",
        soft_coverage: bool = True,
        text_batch_size: int = 256,
        autocast_dtype: Optional[torch.dtype] = None,
    ):
        super().__init__()
        self._check_supported(clip_model, model_name)
        self.model = clip_model
        self.model_name = model_name
        self.soft_coverage = bool(soft_coverage)
        self.text_batch_size = int(text_batch_size)
        self.autocast_dtype = autocast_dtype
        if tokenizer is None:
            import open_clip

            if model_name:
                tokenizer = open_clip.get_tokenizer(model_name)
            else:
                tokenizer = open_clip.SimpleTokenizer(context_length=getattr(clip_model, "context_length", 77))
        self.tokenizer = tokenizer

        import open_clip

        pp = open_clip.get_model_preprocess_cfg(clip_model)
        mean = pp.get("mean", open_clip.OPENAI_DATASET_MEAN)
        std = pp.get("std", open_clip.OPENAI_DATASET_STD)
        self.register_buffer("pixel_mean", torch.tensor(mean, dtype=torch.float32).view(3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(std, dtype=torch.float32).view(3, 1, 1), persistent=False)

        self.model.requires_grad_(False)
        self.model.eval()

    # ------------------------------------------------------------------ structure checks (pin-sensitive)
    @staticmethod
    def _check_supported(clip_model: nn.Module, model_name: str) -> None:
        from open_clip.transformer import ResidualAttentionBlock, VisionTransformer

        name = model_name or type(clip_model).__name__
        visual = getattr(clip_model, "visual", None)
        problems = []
        if not isinstance(visual, VisionTransformer):
            problems.append(f"image tower is {type(visual).__name__}, not open_clip's VisionTransformer")
        else:
            if visual.attn_pool is not None:
                problems.append("attentional pooling is not supported")
            if visual.pool_type != "tok":
                problems.append(f"pool_type={visual.pool_type!r}; only 'tok' (CLS pooling) is supported")
            if visual.proj is None:
                problems.append("the image tower has no projection")
            last = visual.transformer.resblocks[-1]
            if not isinstance(last, ResidualAttentionBlock) or hasattr(last, "ln_1_kv"):
                problems.append(f"last block is {type(last).__name__}, not a plain ResidualAttentionBlock")
            elif not isinstance(last.attn, nn.MultiheadAttention) or not last.attn.batch_first:
                problems.append("last block attention is not a batch_first nn.MultiheadAttention")
            if not getattr(visual.transformer, "batch_first", True):
                problems.append("transformer is not batch_first")
        if problems:
            raise NotImplementedError(
                f"Mask-guided pooling does not support CLIP model {name!r}: " + "; ".join(problems)
                + ". It is written for open_clip_torch==3.3.0 ViT models (e.g. ViT-B-16, WISH-Tiny-ViT)."
            )

    def train(self, mode: bool = True):
        """The CLIP model is frozen: it stays in eval mode (no dropout / patch dropout) whatever the parent does."""
        super().train(mode)
        self.model.eval()
        return self

    # ------------------------------------------------------------------ properties
    @property
    def visual(self) -> nn.Module:
        return self.model.visual

    @property
    def embed_dim(self) -> int:
        """Output width D of image, mask and text embeddings."""
        return int(self.visual.proj.shape[1])

    @property
    def image_size(self) -> int:
        """Side S of the square network input."""
        return int(self.visual.image_size[0])

    @property
    def grid_size(self) -> int:
        """Side g of the patch grid (S // patch)."""
        return int(self.visual.grid_size[0])

    @property
    def device(self) -> torch.device:
        return self.visual.proj.device

    def _image_autocast(self):
        """Autocast context of the image tower: ``autocast_dtype`` on CUDA, nothing elsewhere."""
        if self.autocast_dtype is None or self.device.type != "cuda":
            return contextlib.nullcontext()
        return torch.autocast("cuda", dtype=self.autocast_dtype)

    # ------------------------------------------------------------------ inputs
    @torch.no_grad()
    def preprocess(
        self, images: Union[Sequence[torch.Tensor], torch.Tensor], input_format: str = "RGB"
    ) -> torch.Tensor:
        """uint8 ``[3, H, W]`` images (any sizes; a list or a ``[B, 3, H, W]`` tensor) -> ``[B, 3, S, S]``.

        ``input_format`` is the channel order of the inputs ("RGB", or "BGR" as Detectron2's default
        ``INPUT.FORMAT`` produces); CLIP always sees RGB.

        Each frame is squashed to ``S x S`` (bilinear, antialiased) rather than centre-cropped, so masks at the
        original resolution stay aligned with the patch grid and nothing is cut off. CLIP mean/std come from the
        model's preprocess config.
        """
        if input_format not in ("RGB", "BGR"):
            raise ValueError(f"input_format must be 'RGB' or 'BGR', got {input_format!r}")
        S = self.image_size
        if isinstance(images, torch.Tensor) and images.dim() == 3:
            images = [images]
        out = torch.empty((len(images), 3, S, S), dtype=torch.float32, device=self.device)
        for b, img in enumerate(images):  # one resize per image: frames may differ in size
            if img.dim() != 3 or img.shape[0] != 3:
                raise ValueError(f"expected an RGB image [3, H, W], got shape {tuple(img.shape)}")
            x = img.to(self.device, torch.float32).unsqueeze(0)
            if img.dtype == torch.uint8:
                x = x / 255.0
            if tuple(x.shape[-2:]) != (S, S):
                x = F.interpolate(x, size=(S, S), mode="bilinear", align_corners=False, antialias=True)
            out[b] = x[0].flip(0) if input_format == "BGR" else x[0]
        return (out - self.pixel_mean) / self.pixel_std

    def patch_coverage(self, masks: torch.Tensor) -> torch.Tensor:
        """Masks ``[N, H, W]`` (bool or float in [0, 1], original or working resolution) -> coverage ``[N, g, g]``.

        Coverage of a patch = fraction of its footprint (in original pixels, under the squash resize) that the mask
        covers; computed by adaptive average pooling, in chunks so large frames do not blow up memory.
        """
        g = self.grid_size
        if masks.dim() != 3:
            raise ValueError(f"masks must be [N, H, W], got shape {tuple(masks.shape)}")
        N, H, W = masks.shape
        out = torch.zeros((N, g, g), dtype=torch.float32, device=self.device)
        if N == 0 or H == 0 or W == 0:
            return out
        step = max(1, _MAX_COVERAGE_ELEMS // (H * W))
        for k in range(0, N, step):
            m = masks[k:k + step].to(self.device, torch.float32)
            out[k:k + step] = F.adaptive_avg_pool2d(m.unsqueeze(1), (g, g)).squeeze(1)
        return out.clamp_(0.0, 1.0)

    def attention_bias(self, coverage: torch.Tensor) -> torch.Tensor:
        """Coverage ``[N, g, g]`` -> additive key bias ``[N, 1 + g*g]`` (CLS always 0, so every row is finite)."""
        cov = coverage.flatten(1)
        if self.soft_coverage:
            # log(coverage), clamped; an uncovered patch gets exactly NEG_BIAS (excluded)
            patch = torch.where(cov > 0, torch.log(cov.clamp_min(1e-30)).clamp_min(NEG_BIAS), NEG_BIAS)
        else:
            patch = torch.where(cov > 0, torch.zeros_like(cov), torch.full_like(cov, NEG_BIAS))
        return torch.cat([torch.zeros_like(patch[:, :1]), patch], dim=1)

    # ------------------------------------------------------------------ open_clip internals
    def _tokens_before_last_block(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, 3, S, S]`` -> tokens ``[B, 1 + g*g, width]`` entering the last block (mirrors VisionTransformer)."""
        v = self.visual
        x = v._embeds(images.to(self.device, v.proj.dtype))
        for blk in v.transformer.resblocks[:-1]:
            x = blk(x)
        return x

    def _last_block_queries(self, x: torch.Tensor, q: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """Run query tokens ``q [B, Q, width]`` through the last block, attending to ``x`` with ``bias [B, Q, L]``."""
        blk = self.visual.transformer.resblocks[-1]
        heads = blk.attn.num_heads
        kv = blk.ln_1(x)
        attn_mask = bias.to(q.dtype).repeat_interleave(heads, dim=0)  # MHA wants [B * heads, Q, L], batch-major
        h = q + blk.ls_1(blk.attention(q_x=blk.ln_1(q), k_x=kv, v_x=kv, attn_mask=attn_mask))
        return h + blk.ls_2(blk.mlp(blk.ln_2(h)))

    def _project(self, tokens: torch.Tensor) -> torch.Tensor:
        """Last-block output tokens ``[..., width]`` -> embeddings ``[..., D]`` (``ln_post`` then ``proj``)."""
        v = self.visual
        return v.ln_post(tokens) @ v.proj

    # ------------------------------------------------------------------ pooling
    @torch.no_grad()
    def pool(self, images: torch.Tensor, masks: Sequence[torch.Tensor]) -> List[torch.Tensor]:
        """Pool every mask of every image in ONE ViT pass.

        Args:
            images: ``[B, 3, S, S]`` from ``preprocess``.
            masks: B tensors ``[N_b, H_b, W_b]`` (bool or float coverage), at each frame's ORIGINAL resolution.
        Returns:
            B tensors ``[N_b, D]`` (not normalised; a zero-mask image gives ``[0, D]``).
        """
        B = images.shape[0]
        if len(masks) != B:
            raise ValueError(f"got {B} images but {len(masks)} mask tensors")
        D = self.embed_dim
        counts = [int(m.shape[0]) for m in masks]
        n_max = max(counts, default=0)
        if n_max == 0:
            return [torch.zeros((0, D), device=self.device) for _ in range(B)]
        with self._image_autocast():  # the bulk of the cost; the mask queries' block below runs in float32
            x = self._tokens_before_last_block(images).float()
        L = x.shape[1]
        # padded queries: pad rows attend CLS only (finite) and are dropped afterwards
        bias = torch.full((B, n_max, L), NEG_BIAS, dtype=torch.float32, device=self.device)
        bias[:, :, 0] = 0.0
        for b, m in enumerate(masks):
            if counts[b]:
                bias[b, :counts[b]] = self.attention_bias(self.patch_coverage(m))
        q = x[:, :1].expand(B, n_max, x.shape[2])
        emb = self._project(self._last_block_queries(x, q, bias))
        return [emb[b, :counts[b]] for b in range(B)]

    def forward(self, images: torch.Tensor, masks: Sequence[torch.Tensor]) -> List[torch.Tensor]:
        """Same as ``pool``."""
        return self.pool(images, masks)

    @torch.no_grad()
    def pool_per_mask_reference(self, images: torch.Tensor, masks: Sequence[torch.Tensor]) -> List[torch.Tensor]:
        """Reference / benchmark baseline: one FULL ViT pass per mask (N passes instead of one).

        Same outputs as ``pool`` (masks do not interact); it exists to test that and to measure the saving.
        """
        D = self.embed_dim
        out = []
        for b, m in enumerate(masks):
            rows = [self.pool(images[b:b + 1], [m[k:k + 1]])[0] for k in range(m.shape[0])]
            out.append(torch.cat(rows) if rows else torch.zeros((0, D), device=self.device))
        return out

    # ------------------------------------------------------------------ whole-image and text embeddings
    @torch.no_grad()
    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, 3, S, S]`` -> CLIP's own image embeddings ``[B, D]`` (not normalised)."""
        with self._image_autocast():
            return self.model.encode_image(images.to(self.device)).float()

    @torch.no_grad()
    def encode_text(self, texts: Sequence[str], normalize: bool = False) -> torch.Tensor:
        """Prompts -> ``[T, D]`` with open_clip's tokenizer, in batches of ``text_batch_size``; ``[]`` -> ``[0, D]``."""
        texts = list(texts)
        if not texts:
            return torch.zeros((0, self.embed_dim), device=self.device)
        chunks = []
        for k in range(0, len(texts), self.text_batch_size):
            tokens = self.tokenizer(texts[k:k + self.text_batch_size]).to(self.device)
            chunks.append(self.model.encode_text(tokens))
        out = torch.cat(chunks)
        return F.normalize(out, dim=-1) if normalize else out

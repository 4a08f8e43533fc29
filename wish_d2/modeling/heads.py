"""Trainable parts of WISH: the Stage 1 alignment adapters and the Stage 2 contact / matching heads
(docs/METHOD.md §6-9).

All operate on pair features ``f_{i,s} = [v_i ; v_s ; g(m_i, H_s)]`` of shape ``[B, N, 2, F]``, extended with
``u_{i,s}``, the mask-pooled CLIP embedding of the pair's contact zone (see ``geometry.contact_region_masks``) when
``use_contact`` is on: ``f_{i,s} = [v_i ; v_s ; u_{i,s} ; g]``. v_i and v_s say WHAT the object and hand are; g says
WHERE they are relative to each other; only u says how the hand meets the object (fingers wrapped over it, or a palm
lying on it), the visual evidence of holding that geometry cannot see. The CLIP parts are
L2-normalised first so that the frozen encoder's arbitrary scale (a random ViT, or real CLIP) does not dominate the
few geometric features. The ablation switches keep the tensor contract fixed: ``use_visual=False`` zeroes the CLIP
part (same F, so checkpoints and configs stay comparable); ``use_geometry=False`` drops g.
"""
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["pair_features", "pair_feature_dim", "AlignmentHead", "ContactMatchingHeads", "mlp", "PAIR_VISUALS"]

#: Stage 1's visual pair features (``MODEL.WISH.STAGE1.PAIR_VISUAL``, see :class:`AlignmentHead`).
PAIR_VISUALS = ("contact", "all")


def pair_feature_dim(visual_dim: int, geometry_dim: int, use_geometry: bool = True, use_contact: bool = False) -> int:
    """Width F of ``pair_features``' output."""
    return (3 if use_contact else 2) * visual_dim + (geometry_dim if use_geometry else 0)


def pair_features(
    v: torch.Tensor,
    v_hands: torch.Tensor,
    geom: torch.Tensor,
    use_visual: bool = True,
    use_geometry: bool = True,
    v_contact: Optional[torch.Tensor] = None,
    use_contact: bool = False,
) -> torch.Tensor:
    """``v [B, N, D], v_hands [B, 2, D], geom [B, N, 2, G] (, v_contact [B, N, 2, D]) -> [B, N, 2, F]``
    with F = 2D + G, plus D with ``use_contact`` (without geometry: minus G).

    Zero vectors (absent hands, padding) stay zero after normalisation instead of becoming NaN. ``use_visual=False``
    zeroes every CLIP part, the contact zone included; ``use_contact`` with ``v_contact=None`` gives zeros.
    """
    B, N, D = v.shape
    if use_visual:
        vo = F.normalize(v, dim=-1)[:, :, None, :].expand(B, N, 2, D)
        vh = F.normalize(v_hands, dim=-1)[:, None, :, :].expand(B, N, 2, D)
    else:
        vo = v.new_zeros((B, N, 2, D))
        vh = vo
    parts = [vo, vh]
    if use_contact:
        if use_visual and v_contact is not None:
            parts.append(F.normalize(v_contact.to(v.dtype), dim=-1))
        else:
            parts.append(v.new_zeros((B, N, 2, D)))
    if use_geometry:
        parts.append(geom.to(v.dtype))
    return torch.cat(parts, dim=-1)


def _check_pair_visual(pair_visual: str) -> None:
    if pair_visual not in PAIR_VISUALS:
        raise ValueError(f"pair_visual={pair_visual!r} is not one of {PAIR_VISUALS}")


def visual_parts(v: torch.Tensor, v_hands: torch.Tensor, pair_visual: str):
    """``(v, v_hands)`` as a head reads them: zeroed for "contact" (same width), so only the contact zone and the
    geometry are left."""
    if pair_visual == "contact":
        return torch.zeros_like(v), torch.zeros_like(v_hands)
    return v, v_hands


def mlp(in_dim: int, hidden_dim: int, out_dim: int, dropout: float = 0.0, layers: int = 2) -> nn.Sequential:
    """``layers`` linear layers with GELU + dropout between them."""
    mods, d = [], in_dim
    for _ in range(layers - 1):
        mods += [nn.Linear(d, hidden_dim), nn.GELU(), nn.Dropout(dropout)]
        d = hidden_dim
    mods.append(nn.Linear(d, out_dim))
    return nn.Sequential(*mods)


class AlignmentHead(nn.Module):
    """Stage 1 adapters: ``w_{i,s} = MLPv(f_{i,s})`` and ``p^s_j = MLPt(CLIPt(prompt(P_j, s)))``, both L2-normalised.

    MLPt is shared across sides because the side is already in the prompt ("... the left hand").

    ``pair_visual`` chooses the visual part of Stage 1's pair features: "all" = ``[v_i ; v_s ; u_{i,s}]``, or
    "contact" = the contact zone ``u_{i,s}`` only (``v_i`` and ``v_s`` zeroed, same width). Why "contact" is the
    default: a narration names WHAT is held, and with the object's own appearance ``v_i`` in its features Stage 1
    can satisfy InfoNCE by matching any instance of the named category (a second knife on the counter, a free
    object the narration mentions by mistake), so its per-hand argmax, the pseudo-label, follows appearance instead
    of contact. With the hand-relative evidence only (``u`` and ``g``), the narration still decides which pairs
    score high, but only through how the hand meets the object. "all" is the paper's setting; the choice and its
    evidence are in docs/METHOD.md §7 and docs/RESULTS.md. Stage 2 has its own switch (:class:`ContactMatchingHeads`).
    """

    def __init__(
        self,
        visual_dim: int,
        geometry_dim: int,
        hidden_dim: int = 256,
        embed_dim: int = 128,
        dropout: float = 0.1,
        use_visual: bool = True,
        use_geometry: bool = True,
        use_contact: bool = True,
        pair_visual: str = "contact",
    ):
        super().__init__()
        _check_pair_visual(pair_visual)
        self.use_visual = use_visual
        self.use_geometry = use_geometry
        self.use_contact = use_contact
        self.pair_visual = pair_visual
        in_dim = pair_feature_dim(visual_dim, geometry_dim, use_geometry, use_contact)
        self.mlp_v = mlp(in_dim, hidden_dim, embed_dim, dropout)
        self.mlp_t = mlp(visual_dim, hidden_dim, embed_dim, dropout)

    def forward_pairs(self, v: torch.Tensor, v_hands: torch.Tensor, geom: torch.Tensor,
                      v_contact: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``v [B, N, D], v_hands [B, 2, D], geom [B, N, 2, G] (, v_contact [B, N, 2, D]) -> w [B, N, 2, E]``."""
        v, v_hands = visual_parts(v, v_hands, self.pair_visual)
        f = pair_features(v, v_hands, geom, self.use_visual, self.use_geometry, v_contact, self.use_contact)
        return F.normalize(self.mlp_v(f), dim=-1)

    def forward_text(self, text: torch.Tensor) -> torch.Tensor:
        """CLIP text embeddings ``[..., 2, D] -> p [..., 2, E]`` (unit norm)."""
        return F.normalize(self.mlp_t(F.normalize(text, dim=-1)), dim=-1)

    def forward(self, v, v_hands, geom, text, v_contact=None):
        """Returns ``(w [B, N, 2, E], p [B, M, 2, E])``."""
        return self.forward_pairs(v, v_hands, geom, v_contact), self.forward_text(text)


class ContactMatchingHeads(nn.Module):
    """Stage 2 visual-only heads: contactness ``c_{i,s}`` (BCE, per pair) and matching ``a_{i,s}`` (softmax over i).

    Two separate MLPs; no text at all, so they run on frames without narrations. Contactness asks a question about
    one pair ("is hand s touching object i?") and sees ``f_{i,s}``. Matching assigns objects to hands, so with
    ``match_both_hands`` it sees the object against both hands, ``[f_{i,s} ; f_{i,s'}]`` (s' the other hand): whether
    the left hand holds a pan depends on whether the right hand is the one gripping it, or both are. Without it the
    two heads read the same features and learn from the same pseudo-labels, so they learn nearly the same function
    and their fusion is little more than a two-member ensemble (the measurements: docs/RESULTS.md section 3, "The
    matching head reads the object against both hands").

    ``pair_visual`` (``STAGE2.PAIR_VISUAL``) is Stage 1's switch for Stage 2: "all" reads ``[v_i ; v_s ; u_{i,s}]``,
    "contact" the contact zone ``u_{i,s}`` only (``v_i`` and ``v_s`` zeroed, same width), so that an encoder whose
    object embeddings name the category cannot let the heads learn which categories get held instead of how the
    hand meets the object.

    Defaults of both heads are ``add_wish_config``'s (``MODEL.WISH.ADAPTER``, ``USE_*``, ``STAGE1.PAIR_VISUAL``,
    ``STAGE2.MATCH_BOTH_HANDS``, ``STAGE2.PAIR_VISUAL``), so a head built by hand is the one a default config
    builds.
    """

    def __init__(
        self,
        visual_dim: int,
        geometry_dim: int,
        hidden_dim: int = 256,
        dropout: float = 0.1,
        use_visual: bool = True,
        use_geometry: bool = True,
        layers: int = 3,
        use_contact: bool = True,
        match_both_hands: bool = True,
        pair_visual: str = "all",
    ):
        super().__init__()
        _check_pair_visual(pair_visual)
        self.pair_visual = pair_visual
        self.use_visual = use_visual
        self.use_geometry = use_geometry
        self.use_contact = use_contact
        self.match_both_hands = match_both_hands
        in_dim = pair_feature_dim(visual_dim, geometry_dim, use_geometry, use_contact)
        self.contact = mlp(in_dim, hidden_dim, 1, dropout, layers)
        self.match = mlp(2 * in_dim if match_both_hands else in_dim, hidden_dim, 1, dropout, layers)

    def forward(self, v: torch.Tensor, v_hands: torch.Tensor, geom: torch.Tensor,
                v_contact: Optional[torch.Tensor] = None):
        """Returns ``(contact_logits [B, N, 2], match_logits [B, N, 2])`` (raw logits; masking is the losses' job)."""
        v, v_hands = visual_parts(v, v_hands, self.pair_visual)
        f = pair_features(v, v_hands, geom, self.use_visual, self.use_geometry, v_contact, self.use_contact)
        f_match = torch.cat([f, f.flip(2)], dim=-1) if self.match_both_hands else f  # flip: the other hand
        return self.contact(f).squeeze(-1), self.match(f_match).squeeze(-1)

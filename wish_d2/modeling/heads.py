"""Trainable parts of WISH: the Stage 1 alignment adapters and the Stage 2 contact / matching heads (DESIGN §2.4, §2.6).

All operate on pair features ``f_{i,s} = [v_i ; v_s ; g(m_i, H_s)]`` of shape ``[B, N, 2, F]``. The CLIP parts are
L2-normalised first so that the frozen encoder's arbitrary scale (a random ViT, or real CLIP) does not dominate the
few geometric features. The ablation switches keep the tensor contract fixed: ``use_visual=False`` zeroes the CLIP
part (same F, so checkpoints and configs stay comparable); ``use_geometry=False`` drops g.
"""
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["pair_features", "pair_feature_dim", "AlignmentHead", "ContactMatchingHeads", "mlp"]


def pair_feature_dim(visual_dim: int, geometry_dim: int, use_geometry: bool = True) -> int:
    """Width F of ``pair_features``' output."""
    return 2 * visual_dim + (geometry_dim if use_geometry else 0)


def pair_features(
    v: torch.Tensor,
    v_hands: torch.Tensor,
    geom: torch.Tensor,
    use_visual: bool = True,
    use_geometry: bool = True,
) -> torch.Tensor:
    """``v [B, N, D], v_hands [B, 2, D], geom [B, N, 2, G] -> [B, N, 2, F]`` with F = 2D + G (2D without geometry).

    Zero vectors (absent hands, padding) stay zero after normalisation instead of becoming NaN.
    """
    B, N, D = v.shape
    if use_visual:
        vo = F.normalize(v, dim=-1)[:, :, None, :].expand(B, N, 2, D)
        vh = F.normalize(v_hands, dim=-1)[:, None, :, :].expand(B, N, 2, D)
    else:
        vo = v.new_zeros((B, N, 2, D))
        vh = vo
    parts = [vo, vh]
    if use_geometry:
        parts.append(geom.to(v.dtype))
    return torch.cat(parts, dim=-1)


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
    ):
        super().__init__()
        self.use_visual = use_visual
        self.use_geometry = use_geometry
        self.mlp_v = mlp(pair_feature_dim(visual_dim, geometry_dim, use_geometry), hidden_dim, embed_dim, dropout)
        self.mlp_t = mlp(visual_dim, hidden_dim, embed_dim, dropout)

    def forward_pairs(self, v: torch.Tensor, v_hands: torch.Tensor, geom: torch.Tensor) -> torch.Tensor:
        """``v [B, N, D], v_hands [B, 2, D], geom [B, N, 2, G] -> w [B, N, 2, E]`` (unit norm)."""
        f = pair_features(v, v_hands, geom, self.use_visual, self.use_geometry)
        return F.normalize(self.mlp_v(f), dim=-1)

    def forward_text(self, text: torch.Tensor) -> torch.Tensor:
        """CLIP text embeddings ``[..., 2, D] -> p [..., 2, E]`` (unit norm)."""
        return F.normalize(self.mlp_t(F.normalize(text, dim=-1)), dim=-1)

    def forward(self, v, v_hands, geom, text):
        """Returns ``(w [B, N, 2, E], p [B, M, 2, E])``."""
        return self.forward_pairs(v, v_hands, geom), self.forward_text(text)


class ContactMatchingHeads(nn.Module):
    """Stage 2 visual-only heads: contactness ``c_{i,s}`` (BCE, per pair) and matching ``a_{i,s}`` (softmax over i).

    Two separate MLPs on the same pair features; no text at all, so they run on frames without narrations.
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
    ):
        super().__init__()
        self.use_visual = use_visual
        self.use_geometry = use_geometry
        in_dim = pair_feature_dim(visual_dim, geometry_dim, use_geometry)
        self.contact = mlp(in_dim, hidden_dim, 1, dropout, layers)
        self.match = mlp(in_dim, hidden_dim, 1, dropout, layers)

    def forward(self, v: torch.Tensor, v_hands: torch.Tensor, geom: torch.Tensor):
        """Returns ``(contact_logits [B, N, 2], match_logits [B, N, 2])`` (raw logits; masking is the losses' job)."""
        f = pair_features(v, v_hands, geom, self.use_visual, self.use_geometry)
        return self.contact(f).squeeze(-1), self.match(f).squeeze(-1)

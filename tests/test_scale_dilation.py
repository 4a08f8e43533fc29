"""The contact zones' dilation counts window pixels by cumulative sums: exactly a square max-pool dilation."""
import pytest
import torch
import torch.nn.functional as F

from wish_d2.modeling.geometry import _dilate


def _max_pool_dilation(x, r):
    x = (x > 0).float()
    if r == 0 or x.shape[0] == 0:
        return x > 0
    return F.max_pool2d(x.unsqueeze(1), 2 * r + 1, stride=1, padding=r).squeeze(1) > 0


@pytest.mark.parametrize("seed", range(4))
def test_dilation_equals_max_pool(seed):
    g = torch.Generator().manual_seed(seed)
    for _ in range(40):
        K, h, w = (int(v) for v in torch.randint(1, 25, (3,), generator=g))
        r = int(torch.randint(0, 30, (1,), generator=g))  # radii beyond the mask size too
        x = torch.rand(K, h, w, generator=g) * (torch.rand(K, h, w, generator=g) < 0.1 * seed)  # area fractions
        out = _dilate(x, r)
        assert out.dtype == torch.bool and torch.equal(out, _max_pool_dilation(x, r)), (K, h, w, r)
    assert _dilate(torch.zeros(0, 5, 6), 3).shape == (0, 5, 6)

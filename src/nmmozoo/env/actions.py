"""Action helpers: uniform random actions drawn from the per-head masks."""

from __future__ import annotations

import torch
from tensordict import TensorDictBase

from .constants import ACTION_HEADS


def sample_masked(mask: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One index per row, uniform over the ``True`` entries of ``mask`` ``[..., n]``.

    Heads of up to 255 options: one number per row, the k-th allowed option found by a
    cumulative count in bytes. Wider heads (the market) are mostly empty: their allowed
    entries are listed once and one is drawn per row. Rows with no allowed entry give 0.
    """
    n = mask.shape[-1]
    rows = mask.reshape(-1, n)
    R = rows.shape[0]
    u = torch.rand(R, generator=generator, device=mask.device)
    if n <= 255:
        running = rows.to(torch.uint8).cumsum(-1, dtype=torch.uint8)
        k = (u * running[:, -1]).to(torch.uint8)
        return (running > k[:, None]).to(torch.uint8).argmax(-1).view(mask.shape[:-1])
    idx = rows.nonzero()
    count = torch.bincount(idx[:, 0], minlength=R)
    start = count.cumsum(0) - count
    k = (u * count).long().clamp_max((count - 1).clamp_min(0))
    pick = torch.where(count > 0, idx[:, 1].index_select(0, (start + k).clamp_max(max(len(idx) - 1, 0)))
                       if len(idx) else torch.zeros_like(count), 0)
    return pick.view(mask.shape[:-1])


def random_actions(td: TensorDictBase, generator: torch.Generator | None = None) -> TensorDictBase:
    """Write uniform random masked actions for every head into ``td`` (in place)."""
    masks = td.get(("agents", "action_mask"))
    for head in ACTION_HEADS:
        td.set(("agents", "action", head), sample_masked(masks.get(head), generator))
    return td

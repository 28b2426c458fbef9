"""Action helpers: uniform random actions drawn from the per-head masks."""

from __future__ import annotations

import torch
from tensordict import TensorDictBase

from .torchrl_env import ACTION_HEADS


def sample_masked(mask: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One index per row, uniform over the ``True`` entries of ``mask`` ``[..., n]``.

    Draws one number per row (not one per option): the k-th allowed option is found by a
    cumulative count, which is several times cheaper than noise over every option.
    """
    # Count in the narrowest type that holds the number of options (bytes for ≤ 255).
    dtype = torch.uint8 if mask.shape[-1] <= 255 else torch.int32
    running = mask.to(dtype).cumsum(-1, dtype=dtype)
    count = running[..., -1:]
    u = torch.rand(count.shape, generator=generator, device=mask.device)
    k = (u * count).to(dtype)
    return (running > k).to(torch.uint8).argmax(-1)


def random_actions(td: TensorDictBase, generator: torch.Generator | None = None) -> TensorDictBase:
    """Write uniform random masked actions for every head into ``td`` (in place)."""
    masks = td.get(("agents", "action_mask"))
    for head in ACTION_HEADS:
        td.set(("agents", "action", head), sample_masked(masks.get(head), generator))
    return td

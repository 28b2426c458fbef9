"""TorchRL transforms that reproduce what the 2023 training wrappers did to observations.

``LastSellPriceMask``: the 2023 baseline's ``StatPostprocessor`` ([B] NeuralMMO/baselines @
6654f30, leader_board.py l.202-209), which every 2023 entry's environment subclasses, remembers
the sell-price index each agent chose on its last action (0 after a reset) and removes that
index from the agent's next ``Sell.Price`` action targets. A recipe turns it on with
``env: {mask_last_sell_price: true}``.
"""

from __future__ import annotations

import torch
from torchrl.envs import Transform

KEY = ("agents", "action_mask", "sell_price")


class LastSellPriceMask(Transform):
    """Masks, per agent, the sell price index chosen on the previous step (index 0 after a
    reset), unless it is the agent's only allowed price."""

    def __init__(self):
        super().__init__(in_keys=[], out_keys=[])
        self.last: torch.Tensor | None = None

    def _mask(self, td):
        mask = td.get(KEY)
        if self.last is None or self.last.shape != mask.shape[:-1]:
            self.last = torch.zeros(mask.shape[:-1], dtype=torch.long, device=mask.device)
        out = mask.clone()
        chosen = out.gather(-1, self.last[..., None])
        others = out.sum(-1, keepdim=True) - chosen.long() > 0
        out.scatter_(-1, self.last[..., None], chosen & ~others)
        td.set(KEY, out)
        return td

    def _reset(self, tensordict, tensordict_reset):
        mask = tensordict_reset.get(KEY)
        reset = tensordict.get("_reset", None) if tensordict is not None else None
        if self.last is None or reset is None or self.last.shape != mask.shape[:-1]:
            self.last = torch.zeros(mask.shape[:-1], dtype=torch.long, device=mask.device)
        else:
            self.last[reset.reshape(-1).to(self.last.device)] = 0
        return self._mask(tensordict_reset)

    def _step(self, tensordict, next_tensordict):
        self.last = tensordict.get(("agents", "action", "sell_price")).long().clone()
        return self._mask(next_tensordict)

    # --- saved state (in ``state_dict()`` as ``_extra_state``; see nmmozoo.env.env_state) ---
    def get_extra_state(self) -> dict:
        """The sell price index each agent chose last (None before the first reset)."""
        return {"last": None if self.last is None else self.last.detach().to("cpu", copy=True)}

    def check_extra_state(self, state) -> None:
        from .env.state import EnvStateError

        if not isinstance(state, dict) or "last" not in state or not (
                state["last"] is None or torch.is_tensor(state["last"])):
            raise EnvStateError("LastSellPriceMask: not a saved last-sell-price state")

    def set_extra_state(self, state) -> None:
        from .env.envstate import transform_device

        self.check_extra_state(state)
        last, dev = state["last"], transform_device(self)
        self.last = None if last is None else (last.to(dev, copy=True) if dev is not None else last.clone())

    def transform_observation_spec(self, observation_spec):
        return observation_spec

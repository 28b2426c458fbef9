"""TorchRL-facing wrappers of a zoo policy: the acting module a collector runs, the
multi-head masked categorical distribution, and the critic the PPO loss calls."""

from __future__ import annotations

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.nn import TensorDictModuleBase

from ..env import ACTION_HEADS


def observation_keys(env) -> list:
    """Every observation the policy may read (what TorchRL passes to the modules)."""
    return [k for k in env.observation_spec.keys(True, True)]


class MultiHeadCategorical:
    """Independent categoricals over the 12 action heads (logits already masked). Actions
    are a TensorDict of head -> index; log-probs and entropies sum over heads."""

    def __init__(self, logits: dict[str, torch.Tensor]):
        self.dists = {h: torch.distributions.Categorical(logits=lg) for h, lg in logits.items()}

    def sample(self) -> dict[str, torch.Tensor]:
        return {h: d.sample() for h, d in self.dists.items()}

    def log_prob(self, action) -> torch.Tensor:
        return sum(d.log_prob(action.get(h) if isinstance(action, TensorDictBase) else action[h])
                   for h, d in self.dists.items())

    def entropy(self) -> torch.Tensor:
        return sum(d.entropy() for d in self.dists.values())

    def head_entropy(self) -> dict[str, torch.Tensor]:
        return {h: d.entropy() for h, d in self.dists.items()}


class Actor(TensorDictModuleBase):
    """Samples masked actions; writes ``("agents","action",<head>)`` and the summed
    ``("agents","sample_log_prob")``. ``get_dist`` serves the PPO loss."""

    def __init__(self, policy, in_keys):
        super().__init__()
        self.policy = policy
        self.in_keys = list(in_keys)
        self.out_keys = [("agents", "action", h) for h in ACTION_HEADS] + [("agents", "sample_log_prob")]

    def get_dist(self, td: TensorDictBase) -> MultiHeadCategorical:
        return MultiHeadCategorical(self.policy(td)["logits"])

    def forward(self, td: TensorDictBase) -> TensorDictBase:
        out = self.policy(td)
        dist = MultiHeadCategorical(out["logits"])
        action = dist.sample()
        lead = td.get("agents").batch_size
        td.set(("agents", "action"), TensorDict(action, batch_size=lead))
        td.set(("agents", "sample_log_prob"), dist.log_prob(action).detach())
        if "recurrent_state" in out:
            td.set(("next", "agents", "recurrent_state"), out["recurrent_state"].detach())
        return td


class Critic(TensorDictModuleBase):
    """The policy's value head as ``("agents","state_value")`` ``[..., P, 1]``."""

    def __init__(self, policy, in_keys):
        super().__init__()
        self.policy = policy
        self.in_keys = list(in_keys)
        self.out_keys = [("agents", "state_value")]

    def forward(self, td: TensorDictBase) -> TensorDictBase:
        td.set(("agents", "state_value"), self.policy(td)["value"][..., None])
        return td

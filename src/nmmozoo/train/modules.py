"""TorchRL-facing wrappers of a zoo policy: the acting module a collector runs, the
multi-head masked categorical distribution, and the critic the PPO loss calls."""

from __future__ import annotations

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase

from ..env import ACTION_HEADS
from ..nn.distributions import MaskedHead


def observation_keys(env) -> list:
    """Every observation the policy may read (what TorchRL passes to the modules)."""
    return [k for k in env.observation_spec.keys(True, True)]


class MultiHeadCategorical:
    """Independent categoricals over the 12 action heads (logits already masked, one
    :class:`MaskedHead` each). Actions are a TensorDict of head -> index; log-probs and
    entropies sum over heads."""

    def __init__(self, logits: dict[str, torch.Tensor]):
        self.dists = {h: MaskedHead(lg) for h, lg in logits.items()}

    def sample(self) -> dict[str, torch.Tensor]:
        return {h: d.sample() for h, d in self.dists.items()}

    def log_prob(self, action) -> torch.Tensor:
        return sum(d.log_prob(action.get(h) if isinstance(action, TensorDictBase) else action[h])
                   for h, d in self.dists.items())

    def entropy(self) -> torch.Tensor:
        return sum(d.entropy() for d in self.dists.values())

    def head_entropy(self) -> dict[str, torch.Tensor]:
        return {h: d.entropy() for h, d in self.dists.items()}


# The PPO loss asks the actor for its distribution and then the critic for its value, on the
# same (shallow-copied) TensorDict. Both come from one trunk, so the learner's actor also
# writes the value its forward computed under this key, and the critic is then only the value
# head reading it: TorchRL's documented single-call form of a shared actor-critic trunk
# (``PPOLoss(actor_with_trunk, value_head)``), which runs the trunk once per minibatch where
# ``ActorValueOperator``'s policy and value operators would each run it.
VALUE_PRED = ("agents", "value_pred")


def _forward(policy, td: TensorDictBase, sequence: bool, store, task_table):
    """The policy on a minibatch: rebuilt from the compact rollout when the td names its
    rows (``("agents","row")``), else read from the td itself."""
    row = td.get(("agents", "row"), None)
    if row is not None and store is not None:
        return policy.forward_rows(store.rows(row), sequence=sequence)
    return policy.network(td, sequence=sequence, task_table=task_table)


class Actor(TensorDictModuleBase):
    """Samples masked actions; writes ``("agents","action",<head>)``, the summed
    ``("agents","sample_log_prob")`` and the value ``("agents","state_value")`` (so GAE
    needs no second pass over the rollout). ``get_dist`` serves the PPO loss; with
    ``sequence`` the loss's minibatches are ``[n, T]`` sequences (recurrent models).
    ``task_table``: the env's task embeddings, for compact observations (``task_id``);
    ``store``: the rollout (:class:`~nmmozoo.train.rollout.CompactRollout`) the loss's
    minibatches index into, set by the trainer for the update."""

    def __init__(self, policy, in_keys, write_value: bool = False, sequence: bool = False,
                 task_table: torch.Tensor | None = None):
        super().__init__()
        self.policy = policy
        self.in_keys = list(in_keys)
        self.out_keys = ([("agents", "action", h) for h in ACTION_HEADS] +
                         [("agents", "sample_log_prob"), ("agents", "state_value")])
        self.write_value = write_value
        self.sequence = sequence
        self.task_table = task_table
        self.store = None
        self.last_dist: MultiHeadCategorical | None = None

    def get_dist(self, td: TensorDictBase) -> MultiHeadCategorical:
        out = _forward(self.policy, td, self.sequence, self.store, self.task_table)
        if self.write_value:  # for the critic (VALUE_PRED)
            td.set(VALUE_PRED, out["value"][..., None])
        self.last_dist = MultiHeadCategorical(out["logits"])  # for per-head entropy logs
        return self.last_dist

    @torch.no_grad()
    def forward(self, td: TensorDictBase) -> TensorDictBase:
        # Policy.sample: with ``policy.live_only`` the network runs on alive agents only (the
        # dead get the no-op, log-prob 0, value 0 and keep their memory state).
        return self.policy.act(td, task_table=self.task_table)


class Critic(TensorDictModuleBase):
    """The policy's value as ``("agents","state_value")`` ``[..., P, 1]``: the one the actor's
    forward wrote into the same TensorDict (``VALUE_PRED``) when there is one, else the
    policy's own forward."""

    def __init__(self, policy, in_keys, sequence: bool = False, task_table: torch.Tensor | None = None):
        super().__init__()
        self.policy = policy
        self.in_keys = list(in_keys)
        self.out_keys = [("agents", "state_value")]
        self.sequence = sequence
        self.task_table = task_table
        self.store = None

    def forward(self, td: TensorDictBase) -> TensorDictBase:
        value = td.get(VALUE_PRED, None)
        if value is None:
            value = _forward(self.policy, td, self.sequence, self.store, self.task_table)["value"][..., None]
        td.set(("agents", "state_value"), value)
        return td

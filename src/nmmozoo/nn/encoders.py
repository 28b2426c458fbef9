"""Observation encoders: tiles, entities, items, poolers and the task. Each maps one part of
the 2.0 observation to ``hidden``-sized features; sizes come from the env, never constants.

The 2023 public networks are rebuilt from these layer by layer; a public quirk (an odd scale,
an offset added before a clip, a missing activation) is an argument set in the model spec,
never a fork of a component. Source keys ([B], [T], [J]) are those of docs/zoo.md:
[B] NeuralMMO/baselines @ 6654f30 ``reinforcement_learning/policy.py``; [T] Netease-Games-OPD-AI/
neural-mmo-2023 @ 2364891 ``reinforcement_learning/policy_reduce_v2.py``; [J] JimyhZhu/
Neurips_NeuralMMO2023 @ 5cac281 ``rl_track/reinforcement_learning/final_policy.py``.
"""

from __future__ import annotations

import torch
from torch import nn

from ..env import constants as C
from .registry import SpecError, register

# Scales that bring raw int16 columns near [0, 1] (the continuous entity encoders).
ENTITY_SCALE = torch.tensor(
    [1.0, 3.0, 160.0, 160.0, 100.0, 1024.0, 10.0, 50.0, 1.0, 1024.0, 50.0, 100.0, 100.0, 100.0, 100.0]
    + [10.0, 2000.0] * C.NUM_SKILLS)
ITEM_CONTINUOUS = [3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 15]  # all but id, type, owner, equipped
ITEM_DISCRETE = [1, 14]  # type_id, equipped
ENTITY_IDS = (C.COL["id"], C.COL["attacker_id"])
# [B] ItemEncoder's ``continuous_scale`` (l.167-182): the columns are *divided* by these, so
# level/capacity/quantity are multiplied by 10, attack by 100, defence by 40, restores by 100.
BASELINE_ITEM_DIVISORS = [1 / 10, 1 / 10, 1 / 10, 1 / 100, 1 / 100, 1 / 100,
                          1 / 40, 1 / 40, 1 / 40, 1 / 100, 1 / 100, 1 / 100]
def identity(x: torch.Tensor) -> torch.Tensor:
    """No activation (a named function, so policies pickle for worker processes)."""
    return x


ACTIVATIONS = {"none": identity, "relu": torch.relu, "silu": nn.functional.silu}


def get_activation(name: str, what: str = "activation"):
    """The activation function named in a spec (``none``, ``relu``, ``silu``)."""
    if name not in ACTIVATIONS:
        raise SpecError(f"{what}: expected one of {sorted(ACTIVATIONS)}, got {name!r}")
    return ACTIVATIONS[name]


def _columns(names, what: str) -> list[int]:
    bad = [n for n in names if n not in C.COL]
    if bad:
        raise SpecError(f"{what}: unknown entity column(s) {bad}; known: {list(C.COL)}")
    return [C.COL[n] for n in names]

class _EmbeddingLookup(torch.autograd.Function):
    """Row lookup whose weight gradient is one ``index_add_`` (on CPU about 4x faster than
    the sort-based backward of ``F.embedding`` for the millions of small-vocabulary indices
    the tile and entity encoders look up)."""

    @staticmethod
    def forward(ctx, weight, index):
        ctx.save_for_backward(index)
        ctx.rows = weight.shape[0]
        return weight[index]

    @staticmethod
    def backward(ctx, grad):
        (index,) = ctx.saved_tensors
        out = grad.new_zeros(ctx.rows, grad.shape[-1])
        return out.index_add_(0, index.reshape(-1), grad.reshape(-1, grad.shape[-1])), None


class _BagSum(torch.autograd.Function):
    """``embedding_bag(index, table, mode="sum")`` for ``index`` ``[K, F]`` whose weight
    gradient is ``F`` ``index_add_`` of the ``[K, H]`` output gradient, one per column (on
    CPU ~2.5x faster than ``embedding_bag``'s sort-based backward for the entity rows' 31
    columns; nothing ``[K·F, H]`` is materialised)."""

    @staticmethod
    def forward(ctx, table, index):
        ctx.save_for_backward(index)
        ctx.rows = table.shape[0]
        return nn.functional.embedding_bag(index, table, mode="sum")

    @staticmethod
    def backward(ctx, grad):
        (index,) = ctx.saved_tensors
        out = grad.new_zeros(ctx.rows, grad.shape[-1])
        for col in index.t():
            out.index_add_(0, col, grad)
        return out, None


def small_unique(index: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``torch.unique(index, return_inverse=True)`` for values in ``[0, size)``, by marking
    them in a ``size`` flag vector instead of sorting (sorted values, same inverse)."""
    seen = torch.zeros(size, dtype=torch.bool, device=index.device)
    seen[index.reshape(-1)] = True
    return seen.nonzero().squeeze(-1), (torch.cumsum(seen, 0) - 1)[index]


def bag_sum(index: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """The sum of the ``table`` rows each row of ``index`` ``[K, F]`` names: ``[K, H]``."""
    if table.device.type != "cpu" or not torch.is_grad_enabled():
        return nn.functional.embedding_bag(index, table, mode="sum")
    return _BagSum.apply(table, index)


class Embedding(nn.Embedding):
    """``nn.Embedding`` (same weights and state-dict keys) with the faster CPU backward."""

    def forward(self, index: torch.Tensor) -> torch.Tensor:
        if self.weight.device.type != "cpu" or not torch.is_grad_enabled():
            return super().forward(index)
        return _EmbeddingLookup.apply(self.weight, index)


def relative_tiles(tile: torch.Tensor, vision: int) -> torch.Tensor:
    """Row/col columns made relative to the window's centre: 0..2·vision."""
    centre = tile[..., (tile.shape[-2] // 2), :2]
    rel = tile[..., :2] - centre[..., None, :] + vision
    return torch.cat([rel, tile[..., 2:]], -1)


def tabulated_conv(index: torch.Tensor, embed: torch.Tensor, conv: nn.Conv2d, window: int) -> torch.Tensor:
    """``conv`` (3×3, valid) over the embedded columns, as a table lookup: ``index``
    ``[N, window², cols]`` rows of ``embed`` (column ``c`` in its own block of the table,
    its channels ``c·E..(c+1)·E`` of the conv's input). The conv is a sum over the kernel's 9
    positions and the columns of ``W_k · e(value)``; those vectors are tabulated once per
    call (``[table rows, 9, C_out]``, one matmul) and each output cell gathers and adds its
    9·cols of them (``embedding_bag``, sum). Exact up to float rounding, differentiable in
    the embedding and the conv weights, any device. Returns ``[N, C_out, s, s]``."""
    N, cols = index.shape[0], index.shape[-1]
    C, E = conv.out_channels, embed.shape[-1]
    s = window - 2
    w = conv.weight.reshape(C, cols, E, 9)  # channel c·E + e; kernel position kh·3 + kw
    blocks = embed.reshape(cols, -1, E)  # [cols, V, E]
    table = torch.einsum("bve,cbek->bvkc", blocks, w).reshape(-1, C)  # row (c·V + v)·9 + k
    grid = index.reshape(N, window, window, cols) * 9
    bag = torch.stack([grid[:, i:i + s, j:j + s] + (3 * i + j) for i in range(3) for j in range(3)], -2)
    out = nn.functional.embedding_bag(bag.reshape(N * s * s, 9 * cols), table, mode="sum")
    if conv.bias is not None:
        out = out + conv.bias
    return out.view(N, s, s, C).permute(0, 3, 1, 2)


class _AddMap(torch.autograd.Function):
    """``x + m`` for a map ``m`` ``[1, C, H, W]`` shared by the batch, with ``m`` laid out as
    ``x`` is and its gradient summed over the batch in the memory order the gradient comes in
    (autograd's broadcast reduction runs several times slower over a channels-last gradient,
    the layout mkldnn's convolutions give here)."""

    @staticmethod
    def forward(ctx, x, m):
        if not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
            m = m.contiguous(memory_format=torch.channels_last)
        return x + m

    @staticmethod
    def backward(ctx, grad):
        if not grad.is_contiguous() and grad.is_contiguous(memory_format=torch.channels_last):
            return grad, grad.permute(0, 2, 3, 1).sum(0, keepdim=True).permute(0, 3, 1, 2)
        return grad, grad.sum(0, keepdim=True)


def onehot_conv(index: torch.Tensor, embed: torch.Tensor, conv: nn.Conv2d, window: int,
                constant_cols: int) -> torch.Tensor | None:
    """``conv`` (3×3, valid) over the embedded columns when every column but the last (the
    material) is a constant of the cell — the baseline's row and column relative to the
    window's centre, ``constant_cols`` of them — rewritten exactly: the embedding of a
    material followed by the conv is one conv over the material's one-hot code, with kernel
    ``K[c, v] = W_c · e(v)`` (V input channels, the materials seen, instead of cols·E), and
    the constant columns' share is one conv of a single constant window: a fixed bias map.
    Differentiable in the embedding and the conv weights; the one-hot input needs no
    gradient, so the backward is the kernel's gradient alone. Returns ``[N, C_out, s, s]``,
    or None when the batch does not fit the rewrite (a constant column that is not the
    centre-relative pattern — the dead agents' zero rows, say)."""
    N, cells, cols = index.shape
    E = embed.shape[-1]
    mat = index[..., -1]
    lo = int(mat.min()) if mat.numel() else 0
    V = (int(mat.max()) + 1 - lo) if mat.numel() else 1
    w = conv.weight  # [C, cols*E, 3, 3]
    if constant_cols:
        const = index[..., :constant_cols]
        want = _constant_pattern(window, constant_cols, index.device) + (
            torch.arange(constant_cols, device=index.device) * 256)
        if not torch.equal(const, want.expand_as(const)):
            return None
        e_const = embed[want.reshape(-1)].reshape(1, window, window, constant_cols * E)
        bias_map = nn.functional.conv2d(e_const.permute(0, 3, 1, 2), w[:, :constant_cols * E])
    emat = embed[lo:lo + V]  # [V, E] (the material block's rows lo..lo+V-1)
    kernel = torch.einsum("cekl,ve->cvkl", w[:, constant_cols * E:], emat)
    onehot = torch.zeros(N, V, cells, dtype=embed.dtype, device=index.device)
    onehot.scatter_(1, (mat - lo)[:, None, :], 1.0)
    out = nn.functional.conv2d(onehot.view(N, V, window, window), kernel, conv.bias)
    return _AddMap.apply(out, bias_map) if constant_cols else out


def _constant_pattern(window: int, cols: int, device) -> torch.Tensor:
    """The centre-relative row and column of every window cell, ``[window², cols]``."""
    r = torch.arange(window, device=device)
    grid = torch.stack([r[:, None].expand(window, window), r[None, :].expand(window, window)], -1)
    return grid.reshape(window * window, 2)[:, :cols]


# --- tiles -----------------------------------------------------------------------------------------
@register("tile", "tile_embed_cnn")
class TileEmbedCNN(nn.Module):
    """2023 baseline tile encoder ([B] TileEncoder, policy.py l.86-115): row and col made
    relative to the window centre (``+ vision``), each of the 3 columns clipped to 0..255 and
    looked up in its own 256-row block of one table (``Embedding(3·256, E)``, offsets i·256);
    conv 3E→``channels`` 3×3, ReLU → conv →``out_channels`` 3×3, ReLU → FC → ReLU.

    ``material_only``: Takeru's ReducedTileEncoder ([T] l.86-113): the material column alone,
    ``Embedding(256, E)``, no positions (his conv widths: ``channels: 16``)."""

    def __init__(self, hidden: int, window: int, embed_dim: int = 32, channels: int = 32,
                 out_channels: int = 8, material_only: bool = False):
        super().__init__()
        self.window, self.vision, self.material_only = window, window // 2, material_only
        cols = 1 if material_only else 3
        self.embed = Embedding(cols * 256, embed_dim)
        self.register_buffer("offset", torch.arange(cols) * 256, persistent=False)
        self.conv1 = nn.Conv2d(cols * embed_dim, channels, 3)
        self.conv2 = nn.Conv2d(channels, out_channels, 3)
        side = window - 4
        self.fc = nn.Linear(out_channels * side * side, hidden)
        self.tabulate = True
        """Run the first conv as a table lookup (:func:`tabulated_conv`) where it pays; False:
        the plain embed-then-conv path the tests hold it to."""
        self.tabulate_with_grad = False
        """Measured (1 CPU thread, 128 agents): the lookup halves the forward (baseline 8.8 →
        4.6 ms) but its backward is slower than the conv's (fwd+bwd 29.6 → 41.5 ms), so
        with gradients (training minibatches) the plain conv runs unless this is set."""
        self.onehot_with_grad = cols * embed_dim > C.NUM_MATERIALS
        """With gradients, the one-hot rewrite (:func:`onehot_conv`) where it has fewer input
        channels than the embedded columns (the baseline's 96, Takeru's 32 against 16
        materials); at the demo's 3 × 4 the plain conv is faster (0.96 of its minibatch)."""

    def forward(self, tile: torch.Tensor) -> torch.Tensor:
        tile = tile.long()
        x = tile[..., 2:] if self.material_only else relative_tiles(tile, self.vision)
        x = x.clamp(0, 255) + self.offset
        y = None
        if self.tabulate and (self.tabulate_with_grad or not torch.is_grad_enabled()):
            y = tabulated_conv(x, self.embed.weight, self.conv1, self.window)
        elif self.tabulate and self.onehot_with_grad:  # the one-hot rewrite, where the batch allows it
            y = onehot_conv(x, self.embed.weight, self.conv1, self.window, 0 if self.material_only else 2)
        if y is not None:
            x = y
        else:
            x = self.embed(x).flatten(-2)  # [N, cells, cols*E]
            x = self.conv1(x.transpose(1, 2).reshape(x.shape[0], -1, self.window, self.window))
        x = torch.relu(self.conv2(torch.relu(x)))
        return torch.relu(self.fc(x.flatten(1)))


# --- entities ----------------------------------------------------------------------------------------
def own_row(entity: torch.Tensor, agent_id: torch.Tensor) -> torch.Tensor:
    """Index of the agent's own row among its entity rows ``[N]`` (0 if absent)."""
    return (entity[..., C.COL["id"]] == agent_id[:, None]).to(torch.uint8).argmax(-1)


class _EntityBase(nn.Module):
    """A row-wise entity encoder: ``features`` (per row, no mixing across rows), then
    ``row_head`` (the rows the pointer heads and pools read) and ``own_head`` (the agent's
    own row, row 0 if absent). ``forward`` runs every row; ``present`` only the rows with an
    id (an empty row is all zeros, so one empty-row output stands for every empty row) and
    returns them as :class:`~nmmozoo.nn.decoders.SparseRows` grouped by agent."""

    def features(self, entity):
        raise NotImplementedError

    def row_head(self, x):
        return self.agent_fc(x)

    def own_head(self, x):
        return self.act(self.my_agent_fc(x))

    def forward(self, entity, agent_id):
        x = self.features(entity)
        mine = x[torch.arange(x.shape[0], device=x.device), own_row(entity, agent_id)]
        return self.row_head(x), self.own_head(mine)

    def present(self, entity, agent_id):
        from .decoders import SparseRows

        N, R, F = entity.shape
        n, r = (entity[..., C.COL["id"]] != 0).nonzero(as_tuple=True)
        K = n.shape[0]
        own = entity[torch.arange(N, device=entity.device), own_row(entity, agent_id)]
        x = self.features(torch.cat([entity[n, r], entity.new_zeros(1, F), own]))
        rows = self.row_head(x[:K + 1])
        return SparseRows(rows[:K], n, r, rows[K], N, R), self.own_head(x[K + 1:])


@register("entity", "entity_embed")
class EntityEmbed(_EntityBase):
    """2023 baseline entity encoder ([B] PlayerEncoder, policy.py l.118-153): each of the 31
    columns clipped to 0..255 and looked up in its own 256-row block (``Embedding(31·256, E)``,
    offsets i·256), concatenated (31·E); ``agent_fc`` → the rows the pointer heads use (no
    activation); the agent's own row (id = agent id, row 0 if absent) → ``my_agent_fc`` →
    ``own_activation`` (public: ReLU)."""

    def __init__(self, hidden: int, entity_cols: int, embed_dim: int = 32, own_activation: str = "relu"):
        super().__init__()
        self.act = get_activation(own_activation, "own_activation")
        self.embed = Embedding(entity_cols * 256, embed_dim)
        self.register_buffer("offset", torch.arange(entity_cols) * 256, persistent=False)
        self.agent_fc = nn.Linear(entity_cols * embed_dim, hidden)
        self.my_agent_fc = nn.Linear(entity_cols * embed_dim, hidden)

    def features(self, entity):
        return self.embed(entity.long().clamp(0, 255) + self.offset).flatten(-2)

    def present(self, entity, agent_id):
        """:meth:`_EntityBase.present`, with ``agent_fc`` over the present rows as a table
        where there are enough rows for it to pay: ``agent_fc(concat_c e_c(v_c))`` is
        ``Σ_c W_c·e_c(v_c) + b``, so the vectors ``W_c·e_c(v)`` of every (column, value) the
        rows hold are tabulated once per call (a matmul per column) and each row sums its 31
        of them (``embedding_bag``). Exact up to float rounding, differentiable in the embedding
        and ``agent_fc``. Below ``table_rows`` present rows the rows run directly."""
        from .decoders import SparseRows

        N, R, F = entity.shape
        n, r = (entity[..., C.COL["id"]] != 0).nonzero(as_tuple=True)
        K = n.shape[0]
        if K < self.table_rows:
            return super().present(entity, agent_id)
        E = self.embed.embedding_dim
        index = entity[n, r].long().clamp(0, 255) + self.offset  # [K, F] rows of the embedding
        used, slot = small_unique(index, self.embed.num_embeddings)  # sorted: grouped by column
        per_col = torch.bincount(used // 256, minlength=F).tolist()
        w = self.agent_fc.weight.view(-1, F, E).unbind(1)  # W_c (views: one backward each)
        table = torch.cat([e @ w[c].t()  # W_c·e_c(v) for the values seen in column c
                           for c, e in enumerate(self.embed(used).split(per_col)) if e.numel()])
        rows = bag_sum(slot.view(K, F), table) + self.agent_fc.bias
        own = entity[torch.arange(N, device=entity.device), own_row(entity, agent_id)]
        x = self.features(torch.cat([entity.new_zeros(1, F), own]))
        return SparseRows(rows, n, r, self.row_head(x[:1])[0], N, R), self.own_head(x[1:])

    table_rows = 256
    """Present rows from which :meth:`present` tabulates ``agent_fc`` (the table costs as much
    as this many rows run directly)."""


TAKERU_DISCRETE = ["id", "npc_type", "attacker_id", "message"]
TAKERU_CONTINUOUS = {"row": 256, "col": 256, "damage": 100, "time_alive": 1024, "freeze": 3,
                     "item_level": 50, "latest_combat_tick": 1024, "gold": 100, "health": 100,
                     "food": 100, "water": 100, **{f"{s}_{k}": (10 if k == "level" else 100)
                                                   for s in C.SKILL_NAMES for k in ("level", "exp")}}


@register("entity", "entity_mixed")
class EntityMixed(_EntityBase):
    """Takeru's ReducedPlayerEncoder ([T] l.116-217): the ``discrete`` columns embedded (one
    256-row block each of ``Embedding(len·256, E)``), the ``continuous`` columns divided by
    their scale, concatenated (discrete first) → ``agent_fc`` (rows, no activation) and
    ``my_agent_fc`` → ``own_activation`` for the own row.

    ``offset_before_clip``: [T] adds the block offsets *before* clipping to 0..255 (l.198-199),
    so every column but the first lands on row 255 and rows 256.. are never used (the public
    quirk, set in takeru.yaml);
    False clips first, as the baseline does. ``continuous`` maps column → divisor; the columns
    enter in the observation's column order (as [T] lists them; a mapping's order is not part
    of a spec). takeru.yaml writes [T]'s swapped alchemy scales (level 100, exp 10; l.164-165)."""

    def __init__(self, hidden: int, entity_cols: int, discrete: list = TAKERU_DISCRETE,
                 continuous: dict = TAKERU_CONTINUOUS, embed_dim: int = 32,
                 offset_before_clip: bool = False, own_activation: str = "relu"):
        super().__init__()
        self.act = get_activation(own_activation, "own_activation")
        self.discrete = _columns(discrete, "discrete")
        if any(isinstance(v, bool) or not isinstance(v, (int, float)) or v == 0
               for v in continuous.values()):
            raise SpecError(f"continuous: expected non-zero numbers, got {continuous!r}")
        _columns(list(continuous), "continuous")
        cont = sorted(continuous, key=C.COL.__getitem__)  # the observation's order, as [T]
        self.continuous = [C.COL[k] for k in cont]
        self.register_buffer("scale", torch.tensor([float(continuous[k]) for k in cont]),
                             persistent=False)
        self.register_buffer("offset", torch.arange(len(discrete)) * 256, persistent=False)
        self.offset_before_clip = offset_before_clip
        self.embed = Embedding(len(discrete) * 256, embed_dim)
        width = len(discrete) * embed_dim + len(self.continuous)
        self.agent_fc = nn.Linear(width, hidden)
        self.my_agent_fc = nn.Linear(width, hidden)

    def features(self, entity):
        d = entity[..., self.discrete].long()
        d = (d + self.offset).clamp(0, 255) if self.offset_before_clip else d.clamp(0, 255) + self.offset
        return torch.cat([self.embed(d).flatten(-2), entity[..., self.continuous].float() / self.scale], -1)


@register("entity", "entity_onehot")
class EntityOneHot(_EntityBase):
    """Jimyhzhu's PlayerEncoder ([J] l.152-236): no embeddings; the ``column`` (npc_type)
    replaced in place by its one-hot of ``classes`` (5), every other column raw and unscaled
    (35 features) → ``agent_fc`` (rows, no activation); own row → ``my_agent_fc`` →
    ``own_activation`` (public: ReLU)."""

    def __init__(self, hidden: int, entity_cols: int, column: str = "npc_type", classes: int = 5,
                 own_activation: str = "relu"):
        super().__init__()
        self.act = get_activation(own_activation, "own_activation")
        self.col, self.classes = _columns([column], "column")[0], classes
        self.agent_fc = nn.Linear(entity_cols - 1 + classes, hidden)
        self.my_agent_fc = nn.Linear(entity_cols - 1 + classes, hidden)

    def features(self, entity):
        c = self.col
        kind = nn.functional.one_hot(entity[..., c].long().clamp(0, self.classes - 1), self.classes)
        return torch.cat([entity[..., :c].float(), kind.float(), entity[..., c + 1:].float()], -1)


# --- items -------------------------------------------------------------------------------------------
@register("item", "item_embed")
class ItemEmbed(nn.Module):
    """2023 baseline item encoder ([B] ItemEncoder, policy.py l.156-199), shared by inventory
    and market: type (+ ``type_offset``, public 2) and equipped looked up in one shared
    ``Embedding(256, E)`` (clipped 0..255); the 12 numeric columns *divided* by ``divisors``
    (public: 1/10, 1/100, 1/40, so really multiplied by 10..100); FC 2E+12 → hidden →
    ``activation`` (public: none). Takeru ([T] l.225-268) passes the divisors 10/100/40."""

    def __init__(self, hidden: int, embed_dim: int = 32, divisors: list = BASELINE_ITEM_DIVISORS,
                 type_offset: int = 2, activation: str = "none"):
        super().__init__()
        if len(divisors) != len(ITEM_CONTINUOUS) or not all(isinstance(v, (int, float)) and v != 0
                                                            for v in divisors):
            raise SpecError(f"divisors: expected {len(ITEM_CONTINUOUS)} non-zero numbers, got {divisors!r}")
        self.act = get_activation(activation)
        self.embed = Embedding(256, embed_dim)
        self.register_buffer("offset", torch.tensor([type_offset, 0]), persistent=False)
        self.register_buffer("divisors", torch.tensor([float(v) for v in divisors]), persistent=False)
        self.fc = nn.Linear(2 * embed_dim + len(ITEM_CONTINUOUS), hidden)

    def forward(self, items):
        d = self.embed((items[..., ITEM_DISCRETE].long() + self.offset).clamp(0, 255)).flatten(-2)
        x = items[..., ITEM_CONTINUOUS].float() / self.divisors
        return self.act(self.fc(torch.cat([d, x], -1)))


@register("item", "item_onehot")
class ItemOneHot(nn.Module):
    """Jimyhzhu's ItemEncoder ([J] l.239-300): one-hot type (``type_classes``, 18) and
    equipped (2), the 12 numeric columns multiplied by ``scale`` (public: 1/100, all of them);
    one FC 32 → hidden → ``activation`` (public: none)."""

    def __init__(self, hidden: int, type_classes: int = C.NUM_ITEM_TYPES, scale: float = 0.01,
                 activation: str = "none"):
        super().__init__()
        self.act = get_activation(activation)
        self.classes = type_classes
        self.register_buffer("scale", torch.full((len(ITEM_CONTINUOUS),), float(scale)), persistent=False)
        self.fc = nn.Linear(type_classes + 2 + len(ITEM_CONTINUOUS), hidden)

    def forward(self, items):
        t = nn.functional.one_hot(items[..., 1].long().clamp(0, self.classes - 1), self.classes)
        e = nn.functional.one_hot(items[..., 14].long().clamp(0, 1), 2)
        x = items[..., ITEM_CONTINUOUS].float() * self.scale
        return self.act(self.fc(torch.cat([t.float(), e.float(), x], -1)))


# --- poolers (inventory, market, other entities) ----------------------------------------------------
def _mean(x, mask, mask_empty: bool):
    if not mask_empty:
        return x.mean(-2)
    m = mask[..., None].to(x.dtype)
    return (x * m).sum(-2) / m.sum(-2).clamp_min(1)


def _sparse_mean(x, f, mask_empty: bool):
    """``_mean(f(rows))`` over ``G`` groups of ``M`` rows given only the present rows
    (``x``: a :class:`~nmmozoo.nn.decoders.MarketRows`): the empty rows' share is one
    ``f(empty)`` times their count, so the result is the mean over all rows (or, with
    ``mask_empty``, over the present ones)."""
    y = f(x.rows)
    total = y.new_zeros(x.maps, y.shape[-1]).index_add_(0, x.group, y)
    present = torch.bincount(x.group, minlength=x.maps).to(y.dtype)[:, None]
    if mask_empty:
        return total / present.clamp_min(1)
    return (total + (x.slots - present) * f(x.empty)) / x.slots


@register("pool", "flatten_fc")
class FlattenFC(nn.Module):
    """Baseline inventory ([B] InventoryEncoder, l.202-210): the ``rows`` embeddings
    flattened (empty slots included, as public; ``mask_empty`` zeroes them) → FC →
    LayerNorm if ``norm`` → ``activation`` (public: none; Yao Feng: norm + relu)."""

    def __init__(self, hidden: int, rows: int, activation: str = "none", norm: bool = False,
                 mask_empty: bool = False):
        super().__init__()
        self.act, self.mask_empty = get_activation(activation), mask_empty
        self.fc = nn.Linear(rows * hidden, hidden)
        self.norm = nn.LayerNorm(hidden) if norm else nn.Identity()

    def forward(self, x, mask):
        if hasattr(x, "empty"):  # SparseRows: present rows, one empty-row embedding
            return self.act(self.norm(self._sparse(x, mask)))
        if self.mask_empty:
            x = x * mask[..., None].to(x.dtype)
        return self.act(self.norm(self.fc(x.flatten(-2))))

    def _sparse(self, x, mask):
        """The FC of the flattened rows from the present ones: ``b + Σ_s W_s·x_s`` where an
        empty slot's term is ``W_s·e`` (``e`` the empty row's embedding; 0 with
        ``mask_empty``), the same for every agent — so the present rows add ``W_s·(x_s − e)``,
        slot by slot (one matmul per slot, over the agents that hold something there)."""
        N, S = x.maps, x.slots
        H_in = x.empty.shape[-1]
        W = self.fc.weight.view(-1, S, H_in)  # [H, S, H_in]
        if self.mask_empty:
            base = self.fc.bias.expand(N, -1)
            keep = mask[x.group, x.slot][:, None].to(x.rows.dtype)
            delta = x.rows * keep
        else:
            base = (self.fc.bias + torch.einsum("hsi,i->h", W, x.empty)).expand(N, -1)
            delta = x.rows - x.empty
        out = base
        per_slot = W.unbind(1)  # one view per slot (a backward of one stack, not S scatters)
        for s in range(S):
            pick = (x.slot == s).nonzero().squeeze(-1)
            if pick.numel():
                out = out.index_add(0, x.group[pick], (delta[pick] @ per_slot[s].t()).to(out.dtype))
        return out


@register("pool", "mean_fc")
class MeanFC(nn.Module):
    """Baseline market ([B] MarketEncoder, l.213-219): FC on every row, the mean over all rows
    (empty ones included, as public; ``mask_empty``: over the non-empty rows only) → LayerNorm
    if ``norm`` → ``activation`` (public: none; Yao Feng: norm + relu)."""

    def __init__(self, hidden: int, activation: str = "none", norm: bool = False, mask_empty: bool = False):
        super().__init__()
        self.act, self.mask_empty = get_activation(activation), mask_empty
        self.fc = nn.Linear(hidden, hidden)
        self.norm = nn.LayerNorm(hidden) if norm else nn.Identity()

    def forward(self, x, mask):
        if hasattr(x, "empty"):  # MarketRows: present rows, one empty-row embedding
            return self.act(self.norm(_sparse_mean(x, self.fc, self.mask_empty)))
        return self.act(self.norm(_mean(self.fc(x), mask, self.mask_empty)))


@register("pool", "mean")
class Mean(nn.Module):
    """The mean of the rows, no parameters (Jimyhzhu's pooled items and pooled entities,
    [J] l.79-80: all rows, empty ones included; ``mask_empty``: non-empty rows only)."""

    def __init__(self, hidden: int, mask_empty: bool = False):
        super().__init__()
        self.mask_empty = mask_empty

    def forward(self, x, mask):
        if hasattr(x, "empty"):
            return _sparse_mean(x, lambda r: r, self.mask_empty)
        return _mean(x, mask, self.mask_empty)


# --- task --------------------------------------------------------------------------------------------
@register("task", "task_fc")
class TaskFC(nn.Module):
    """The task embedding through one FC ([B] TaskEncoder, l.222-228) → LayerNorm if ``norm``
    → ``activation`` (public: none; Yao Feng: norm + relu)."""

    def __init__(self, hidden: int, task_dim: int, activation: str = "none", norm: bool = False):
        super().__init__()
        self.act = get_activation(activation)
        self.fc = nn.Linear(task_dim, hidden)
        self.norm = nn.LayerNorm(hidden) if norm else nn.Identity()

    def forward(self, task):
        return self.act(self.norm(self.fc(task.float())))

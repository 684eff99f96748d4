"""All the learned parts of one pair in one module, and the file (`maps.pt`) that carries them to transfer.

Source domain X (where the policy was trained), target Y (where it must act):
- F: X -> Y and H: Y -> X, the state maps (H alone, a CNN, when Y is images: no image is ever generated);
- G: (x, a_x) -> a_y and G_inv: (x, a_y) -> a_x, the action maps, both conditioned on the source-side state (for
  a target state, its translation H(y));
- T_x and T_y, each domain's forward model, trained on its own data and then frozen;
- D_x and D_y, the discriminators of translated against real states.

In the target, the source policy acts as a_y = G(H(y), pi(H(y))): with maps that still hold their starting point
(zero residuals) that is direct transfer through the fixed joint assignment."""
from __future__ import annotations

import torch
from torch import nn

from vislearn.common.checkpoint import load_state, read_torch_file
from vislearn.common.errors import UserError
from vislearn.common.files import atomic_file

from .models import (ActionMap, Discriminator, ForwardModel, ImageToState, Stats, StateMap, action_base,
                     state_base)

KIND = "vislearn control cycles maps"


class Correspondence(nn.Module):
    def __init__(self, meta: dict):
        super().__init__()
        self.meta = meta
        sx_dim, ax_dim, sy_dim, ay_dim = meta["source_obs"], meta["source_act"], meta["target_obs"], meta["target_act"]
        hidden, fhidden, dhidden = meta["map_hidden"], meta["forward_hidden"], meta["disc_hidden"]
        self.image = meta["image"] is not None
        self.sx = Stats.empty(sx_dim)
        self.sy = None if self.image else Stats.empty(sy_dim)
        to_y, to_x = state_base(meta["state_assignment"], sx_dim, sy_dim)
        a_to_y, a_to_x = action_base(meta["action_assignment"], ax_dim, ay_dim)
        if self.image:
            self.H = ImageToState(meta["image"]["frames"], meta["image"]["size"], self.sx)
            self.F = None
        else:
            self.F = StateMap(to_y, self.sx, self.sy, hidden)
            self.H = StateMap(to_x, self.sy, self.sx, hidden)
        self.G = ActionMap(a_to_y, self.sx, hidden)
        self.G_inv = ActionMap(a_to_x, self.sx, hidden)
        self.T_x = ForwardModel(self.sx, ax_dim, fhidden)
        self.T_y = None if self.image else ForwardModel(self.sy, ay_dim, fhidden)
        self.D_x = Discriminator(self.sx, dhidden)
        self.D_y = None if self.image else Discriminator(self.sy, dhidden)

    def set_stats(self, source: dict, target: dict | None) -> None:
        """Statistics of each domain's states from its own transitions (raw units)."""
        def copy(stats: Stats, d: dict) -> None:
            new = Stats(torch.as_tensor(d["obs"]), torch.as_tensor(d["next_obs"]))
            for name in ("mean", "std", "delta_std"):
                getattr(stats, name).copy_(getattr(new, name))
        copy(self.sx, source)
        if self.sy is not None:
            copy(self.sy, target)

    def state_parameters(self):
        return [*self.H.parameters(), *(self.F.parameters() if self.F is not None else [])]

    def action_parameters(self):
        return [*self.G.net.parameters(), *self.G_inv.net.parameters()]

    def forward_models(self) -> list[nn.Module]:
        return [m for m in (self.T_x, self.T_y) if m is not None]

    def discriminators(self) -> list[nn.Module]:
        return [m for m in (self.D_x, self.D_y) if m is not None]

    @torch.no_grad()
    def target_action(self, policy, obs_y) -> "torch.Tensor":
        """The source policy's action in the target: G(H(y), pi(H(y)))."""
        y = torch.as_tensor(obs_y)[None]
        y = y if y.dtype == torch.uint8 else y.float()
        x = self.H(y)
        return self.G(x, policy(x))[0]

    def without_learning(self) -> "Correspondence":
        """The same pair with every map at its starting point: direct transfer through the joint assignment."""
        fresh = Correspondence(self.meta)
        fresh.load_state_dict(self.state_dict())
        for m in (fresh.F, fresh.H, fresh.G, fresh.G_inv):
            if isinstance(m, (StateMap, ActionMap)):
                last = m.net[-1]
                nn.init.zeros_(last.weight)
                nn.init.zeros_(last.bias)
        return fresh.eval()


def save_maps(path, corr: Correspondence, extra: dict) -> None:
    state = {"kind": KIND, "version": 1, "meta": corr.meta,
             "state_dict": {k: v.detach().cpu().clone() for k, v in corr.state_dict().items()}, **extra}
    with atomic_file(path, "wb") as f:
        torch.save(state, f)


def load_maps(path) -> tuple[Correspondence, dict]:
    data = read_torch_file(path, "maps file")
    if not isinstance(data, dict) or data.get("kind") != KIND:
        raise UserError(f"{path}: not a maps file (written by `vislearn control cycles fit`)")
    corr = Correspondence(data["meta"])
    load_state(corr, data["state_dict"], path)
    return corr.eval(), data

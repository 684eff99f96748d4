"""MVP's actor-critic (ir413/mvp `PixelActorCritic`) on features: the actor's mean is an `MVPPolicy` (so the saved
policy is the same file BC writes), a state-independent learned log-std (init_noise_std 1.0), and a critic MLP
[256, 128, 64] -> 1 on the same 128 + 128-d embedding (MVP shares the projections between actor and critic).

`forward(features, proprio, actions)` returns (log_prob, entropy, value): the one call PPO's update makes, so that
DistributedDataParallel (which hooks `forward`) averages the gradients of all three heads."""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.distributions import Normal

from .policy import EMB_DIM, HIDDEN, MVPPolicy, mlp


class ActorCritic(nn.Module):
    def __init__(self, feature_dim: int, proprio_dim: int, action_dim: int, init_noise_std: float = 1.0):
        super().__init__()
        self.actor = MVPPolicy(feature_dim, proprio_dim, action_dim)
        self.critic = mlp((2 * EMB_DIM, *HIDDEN, 1), out_gain=1.0)
        self.log_std = nn.Parameter(torch.full((action_dim,), math.log(init_noise_std)))

    def heads(self, features: torch.Tensor, proprio: torch.Tensor) -> tuple[Normal, torch.Tensor]:
        z = self.actor.embed(features, proprio)
        mean = self.actor.actor(z)
        return Normal(mean, self.log_std.exp().expand_as(mean)), self.critic(z).squeeze(-1)

    def forward(self, features: torch.Tensor, proprio: torch.Tensor, actions: torch.Tensor):
        dist, value = self.heads(features, proprio)
        return dist.log_prob(actions).sum(-1), dist.entropy().sum(-1), value

    @torch.no_grad()
    def act(self, features: torch.Tensor, proprio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """A sampled action (the global torch RNG: saved in checkpoints), its log-probability and the value."""
        dist, value = self.heads(features, proprio)
        a = dist.sample()
        return a, dist.log_prob(a).sum(-1), value

    def extra(self) -> dict:
        """What the policy file keeps beside the actor (agent.policy_file's `extra`)."""
        return {"log_std": self.log_std.detach().cpu().clone(),
                "critic": {k: v.detach().cpu().clone() for k, v in self.critic.state_dict().items()}}

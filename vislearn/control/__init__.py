"""Control from pixels and states (DESIGN.md): MuJoCo environments, behaviour cloning and PPO, MVP's frozen
pretrained encoders; the humanoid and dynamics-cycle systems build on the same simulator layer.

- `envs`: the simulator layer (tasks, pixels + proprioception, scripted experts, vector envs, OpenGL choice).
Imports: `common`, `backbones`, `pretrain` only.
"""

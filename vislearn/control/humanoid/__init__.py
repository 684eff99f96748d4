"""Humanoid locomotion with a causal transformer (Radosavovic et al., "Real-World Humanoid Locomotion with
Reinforcement Learning", Science Robotics 2024): a privileged teacher, history students (transformer, LSTM, MLP)
trained by RL plus KL to the teacher under domain randomisation, and evaluation on held-out dynamics."""

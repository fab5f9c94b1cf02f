"""Reinforcement learning for the DC format: rewards, advantages, losses, rollouts (Hint-GRPO)."""

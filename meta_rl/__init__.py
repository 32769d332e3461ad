"""MAML over PPO for tutoring policies that adapt to a new student."""

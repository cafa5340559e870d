"""Restoration of noisy or undersampled stacks: crappifiers, models, baselines (no Qt)."""

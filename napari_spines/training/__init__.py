"""Training utilities: synthetic data generators and (optional, torch-based) model training."""

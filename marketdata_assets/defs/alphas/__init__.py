"""Alphas: BRAIN-style API -> alpha files -> monthly packages -> MongoDB (seed 000)."""

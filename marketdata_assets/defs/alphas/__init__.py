"""Alphas: BRAIN-style API -> alpha files -> monthly packages -> MongoDB."""

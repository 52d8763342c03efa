"""Iris Demo: Iris Demo: a model trained, tracked and served on the Paved road."""

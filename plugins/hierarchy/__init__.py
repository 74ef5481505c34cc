"""Hierarchical VAEs: the ladder prior and the ladder encoder (top-down inference)."""

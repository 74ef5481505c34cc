"""Mixtures: the Gaussian mixture model (exact posterior, EM fitting) and the VampPrior."""

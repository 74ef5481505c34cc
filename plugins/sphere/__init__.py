"""Hyperspherical latents: the von Mises-Fisher posterior, the uniform prior on the sphere, and log I_v."""

"""Discrete latents: VQ-VAE, the Gumbel-softmax VAE and the priors over grids of one-hot codes; :mod:`.codes`
holds the code-grid convention the three share."""

"""Normalising flows: the RealNVP and MAF priors, the flow posteriors (planar, radial and IAF steps), and
MADE, the masked network they share."""

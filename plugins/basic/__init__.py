"""Basic components: the MLP and conv encoders and decoders, the layers they share, the standard-normal
and mixture-of-Gaussians priors, the per-pixel categorical likelihood, and timm backbones as encoders."""

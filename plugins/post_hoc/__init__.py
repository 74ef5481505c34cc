"""Post-hoc priors fitted to a trained model's codes (``zoo fit-prior``): the fitters and the second-stage
VAE prior."""

"""Objectives other than the plain ELBO (card ``objective: {name: ...}``): the IWAE variants and the
disentangling objectives."""

"""What latent-zoo writes to disk: atomic files, safetensors weights, the run-folder layout, PNG grids."""

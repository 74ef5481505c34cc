"""latent-zoo's built-in plugins (installed as ``zoo_plugins``, registered through the ``zoo`` entry points)."""

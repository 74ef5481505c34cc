"""latent-zoo's built-in plugins (installed as ``zoo_plugins``, registered through the ``zoo`` entry points).

One sub-package per family: ``basic`` (MLP / conv encoders and decoders, layers, the plain priors, the
categorical likelihood, timm encoders), ``normalizing_flows``, ``discrete``, ``mixtures``, ``sphere``,
``hierarchy``, ``objectives``, ``post_hoc``, ``data``, ``diffusion`` and ``autoencoders``; ``builtin``
registers them all.

The modules used to sit flat in this package; :data:`MOVED` maps every old name to its new place, and
a finder on ``sys.meta_path`` makes the old dotted path import the very same module object, so
``from zoo_plugins.gmm import fit_em`` (and any ``"zoo_plugins.gmm:GMMDecoder"`` import path stored in
a run folder) keeps working.  Nothing is imported until an old name is asked for.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

# old module (zoo_plugins.<key>) -> its new place (zoo_plugins.<value>)
MOVED: dict[str, str] = {
    "encoders": "basic.encoders",
    "decoders": "basic.decoders",
    "priors": "basic.priors",
    "layers": "basic.layers",
    "categorical": "basic.categorical",
    "timm_encoder": "basic.timm_encoder",
    "flows": "normalizing_flows.flows",
    "flow_steps": "normalizing_flows.flow_steps",
    "flow_posterior": "normalizing_flows.flow_posterior",
    "maf": "normalizing_flows.maf",
    "made": "normalizing_flows.made",
    "vq": "discrete.vq",
    "codes_prior": "discrete.codes_prior",
    "gumbel": "discrete.gumbel",
    "gmm": "mixtures.gmm",
    "vampprior": "mixtures.vampprior",
    "spherical": "sphere.spherical",
    "bessel": "sphere.bessel",
    "hierarchical": "hierarchy.hierarchical",
    "objectives_iwae": "objectives.iwae",
    "objectives_disentangle": "objectives.disentangle",
    "posthoc": "post_hoc.fitters",
    "second_stage": "post_hoc.second_stage",
    "datasets": "data.datasets",
    "shapes": "data.shapes",
    "feature_nets": "data.feature_nets",
}


class _MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Answers only for ``zoo_plugins.<old name>``: the module is the one at the new path (imported then)."""

    def find_spec(self, fullname, path=None, target=None):
        package, _, name = fullname.rpartition(".")
        if package != __name__ or name not in MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        module = importlib.import_module(f"{__name__}.{MOVED[spec.name.rpartition('.')[2]]}")
        spec.loader_state = module.__spec__   # its own spec: the import system overwrites __spec__ next
        return module

    def exec_module(self, module):
        # already executed under its new name; give it back its own spec, so it stays what it is (its
        # __name__ and __spec__ name the new path, importlib.reload reloads that)
        alias = module.__spec__
        if alias is not None and alias.loader is self and alias.loader_state is not None:
            module.__spec__ = alias.loader_state


if not any(isinstance(finder, _MovedModuleFinder) for finder in sys.meta_path):
    sys.meta_path.insert(0, _MovedModuleFinder())

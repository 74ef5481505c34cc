"""The latent-diffusion autoencoders as zoo components: the KL autoencoder of the Stable Diffusion VAEs
(encoder / decoder ``autoencoder-kl``), the VQ autoencoder of the LDMs (encoder / decoder ``vqmodel``), the
stated likelihoods their deterministic decoders get (``fixed-discretized-gaussian`` /
``fixed-discretized-logistic``, scale fitted on held-out images) and the diffusers converters."""
from .backbone import CoderConfig, DecoderNet, EncoderNet
from .convert import diffusers_autoencoder_kl_to_zoo, diffusers_ldm_to_zoo, diffusers_vqmodel_to_zoo
from .kl import AutoencoderKLDecoder, AutoencoderKLEncoder
from .likelihoods import FixedScaleDiscretizedGaussian, FixedScaleDiscretizedLogistic
from .vq import VectorQuantizer, VQDecoder, VQEncoder

__all__ = [
    "CoderConfig", "EncoderNet", "DecoderNet", "AutoencoderKLEncoder", "AutoencoderKLDecoder", "VQEncoder",
    "VQDecoder", "VectorQuantizer", "FixedScaleDiscretizedGaussian", "FixedScaleDiscretizedLogistic",
    "diffusers_autoencoder_kl_to_zoo", "diffusers_vqmodel_to_zoo", "diffusers_ldm_to_zoo",
]

"""Every named choice a run can make, and the constants they share: the one list the engine validates against,
the command line offers, the window's panels show and the settings store.

Plain tuples and numbers only (no torch, no Qt), so ``studio --help`` and the panels can import them cheaply.
"""

from __future__ import annotations

# samplers (studio.core.samplers registers one settings class per name)
SAMPLER_NAMES = ("ddim", "ddpm", "euler", "euler_a", "heun", "dpmpp_2m", "dpmpp_3m", "dpmpp_2m_sde", "unipc", "pndm")
DEFAULT_DDIM_STEPS = 50

# how a run's timesteps are picked from 0..T-1 (studio.core.schedules.select_timesteps)
SPACINGS = ("leading", "linspace", "trailing", "quad")

# what a network predicts, and the DDPM reverse-process variances (learned ones need the model's extra channels)
PREDICTION_TYPES = ("epsilon", "sample", "v_prediction")
PREDICTION_ALIASES = {"eps": "epsilon", "x0": "sample", "v": "v_prediction"}
VARIANCE_TYPES = ("fixed_small", "fixed_large", "learned", "learned_range")
LEARNED_VARIANCE_TYPES = ("learned", "learned_range")

# the std of DDIM's fresh noise: eta times the paper's eq. (16) sigma, or App. D.3's sigma-hat
DDIM_SIGMAS = ("eta", "sigma_hat")

# the class label that gives sample i class i mod K (the others: a class index, or None for unconditional)
CLASS_CYCLE = "cycle"

# guidance ("cfg" is accepted everywhere as a short name for classifier_free)
GUIDANCE_KINDS = ("none", "classifier_free", "classifier")
GUIDANCE_ALIASES = {"cfg": "classifier_free"}

# where and in what precision the model runs, and where the noise is drawn
DEVICES = ("auto", "cpu", "cuda", "mps")   # and cuda:N
DTYPES = ("float32", "float16", "bfloat16")
NOISE_DEVICES = ("cpu", "device")

# the network's speed modes (studio.core.acceleration); a faster one is kept only within this of plain. auto (the
# default) picks the fastest that pays for its set-up in the run; plain is the reference, bit for bit diffusers'
NETWORK_MODES = ("auto", "plain", "channels_last", "traced", "traced_channels_last", "compiled",
                 "compiled_channels_last", "cuda_graph")
DEFAULT_NETWORK = "auto"
ACCELERATION_TOLERANCE = 1e-4

# rows per model call that make a sample's bits independent of its batch (studio.core.models.fixed_batch)
DEFAULT_MODEL_BATCH = 16

# what a trajectory animation shows: x_t, the predicted x0, or both side by side
ANIMATION_SOURCES = ("xt", "x0", "both")


def tolerance_text(tolerance: float = ACCELERATION_TOLERANCE) -> str:
    """The tolerance as the help texts write it ("1e-4")."""
    mantissa, exponent = f"{tolerance:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"

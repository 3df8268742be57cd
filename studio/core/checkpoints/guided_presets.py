"""The flags of the checkpoints OpenAI released with guided-diffusion (jul-2021) and improved-diffusion
(march-2021), recognised by their file names.

Each preset is the flag set their READMEs give for that file (guided-diffusion's "Sampling from pre-trained models",
improved-diffusion's "Models and Hyperparameters"), completed with the scripts' defaults those commands relied on:
improved-diffusion's own defaults differ from guided-diffusion's in ``rescale_timesteps`` (True) and in the channel
multipliers of a 32x32 model. The 64x64 classifier is four blocks deep, as the guided-diffusion paper's Table 12 and
its users report (the README's example flags are the 128x128 one's). A sidecar JSON beside the file overrides any of
these; the weights are checked against them either way. The two upsamplers of each release (super-resolution models
conditioned on a low-resolution image) are out of scope and refused by name.
"""

from __future__ import annotations

GUIDED_README = "guided-diffusion README"
IMPROVED_README = "improved-diffusion README"

_GUIDED = {"attention_resolutions": "32,16,8", "diffusion_steps": 1000, "learn_sigma": True,
           "resblock_updown": True, "use_scale_shift_norm": True, "use_fp16": True}
_GUIDED_256 = {**_GUIDED, "image_size": 256, "noise_schedule": "linear", "num_channels": 256,
               "num_head_channels": 64, "num_res_blocks": 2}
_LSUN = {**_GUIDED_256, "class_cond": False, "dropout": 0.1}
_CLASSIFIER = {"classifier_attention_resolutions": "32,16,8", "classifier_depth": 2, "classifier_width": 128,
               "classifier_pool": "attention", "classifier_resblock_updown": True,
               "classifier_use_scale_shift_norm": True, "diffusion_steps": 1000, "noise_schedule": "linear"}
# improved-diffusion's script defaults (its model_and_diffusion_defaults)
_IMPROVED = {"num_heads": 4, "num_heads_upsample": -1, "attention_resolutions": "16,8", "use_scale_shift_norm": True,
             "rescale_timesteps": True, "learn_sigma": True}
_CIFAR10 = {**_IMPROVED, "image_size": 32, "channel_mult": "1,2,2,2", "num_channels": 128, "num_res_blocks": 3,
            "dropout": 0.3, "diffusion_steps": 4000, "noise_schedule": "cosine", "class_cond": False}
_IMAGENET64 = {**_IMPROVED, "image_size": 64, "num_channels": 128, "num_res_blocks": 3, "diffusion_steps": 4000,
               "noise_schedule": "cosine", "class_cond": False}
_LSUN_IMPROVED = {**_IMPROVED, "image_size": 256, "num_channels": 128, "num_res_blocks": 2, "num_heads": 1,
                  "use_scale_shift_norm": False, "attention_resolutions": "16", "diffusion_steps": 1000,
                  "noise_schedule": "linear", "rescale_timesteps": False, "class_cond": False}

# file name -> (where the flags come from, the flags)
PRESETS: dict[str, tuple[str, dict]] = {
    "64x64_diffusion.pt": (GUIDED_README, {
        **_GUIDED, "image_size": 64, "class_cond": True, "dropout": 0.1, "noise_schedule": "cosine",
        "num_channels": 192, "num_head_channels": 64, "num_res_blocks": 3, "use_new_attention_order": True}),
    "128x128_diffusion.pt": (GUIDED_README, {
        **_GUIDED, "image_size": 128, "class_cond": True, "noise_schedule": "linear", "num_channels": 256,
        "num_heads": 4, "num_res_blocks": 2}),
    "256x256_diffusion.pt": (GUIDED_README, {**_GUIDED_256, "class_cond": True}),
    "256x256_diffusion_uncond.pt": (GUIDED_README, {**_GUIDED_256, "class_cond": False}),
    "512x512_diffusion.pt": (GUIDED_README, {**_GUIDED_256, "image_size": 512, "class_cond": True,
                                             "use_fp16": False}),
    "lsun_bedroom.pt": (GUIDED_README, _LSUN),
    "lsun_cat.pt": (GUIDED_README, _LSUN),
    "lsun_horse.pt": (GUIDED_README, _LSUN),
    "lsun_horse_nodropout.pt": (GUIDED_README, {**_LSUN, "dropout": 0.0}),
    "64x64_classifier.pt": (GUIDED_README, {**_CLASSIFIER, "image_size": 64, "classifier_depth": 4,
                                            "noise_schedule": "cosine"}),
    "128x128_classifier.pt": (GUIDED_README, {**_CLASSIFIER, "image_size": 128}),
    "256x256_classifier.pt": (GUIDED_README, {**_CLASSIFIER, "image_size": 256}),
    "512x512_classifier.pt": (GUIDED_README, {**_CLASSIFIER, "image_size": 512}),
    "cifar10_uncond_50M_500K.pt": (IMPROVED_README, _CIFAR10),
    "cifar10_uncond_vlb_50M_500K.pt": (IMPROVED_README, {**_CIFAR10, "use_kl": True}),
    "imagenet64_uncond_100M_1500K.pt": (IMPROVED_README, _IMAGENET64),
    "imagenet64_uncond_vlb_100M_1500K.pt": (IMPROVED_README, {**_IMAGENET64, "use_kl": True}),
    "imagenet64_cond_270M_250K.pt": (IMPROVED_README, {
        **_IMAGENET64, "num_channels": 192, "class_cond": True, "rescale_timesteps": False}),
    "lsun_uncond_100M_1200K_bs128.pt": (IMPROVED_README, _LSUN_IMPROVED),
    "lsun_uncond_100M_2400K_bs64.pt": (IMPROVED_README, _LSUN_IMPROVED),
}

# Released files the studio does not open, with the reason a message gives.
REFUSED = {
    "64_256_upsampler.pt": "guided-diffusion's 64 -> 256 upsampler (a super-resolution model conditioned on a "
                           "low-resolution image)",
    "128_512_upsampler.pt": "guided-diffusion's 128 -> 512 upsampler (a super-resolution model conditioned on a "
                            "low-resolution image)",
    "upsample_cond_500K.pt": "improved-diffusion's 256x256 upsampler (a super-resolution model conditioned on a "
                             "low-resolution image)",
}


def preset_for(name: str) -> tuple[str, dict] | None:
    """(source, flags) of a released file name, or None."""
    found = PRESETS.get(name)
    return (found[0], dict(found[1])) if found else None

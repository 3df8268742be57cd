"""The networks the bench samples from: the bundled digits UNet and a diffusers UNet2DModel saved to a folder
and opened the way a user opens one; and the bare loop of model calls they are measured against."""

from __future__ import annotations

from pathlib import Path

import torch

from .sizes import Sizes

UNET_SEED = 0
OUTPUT_SCALE = 0.1


def digits():
    from ..core.checkpoints import open_checkpoint

    return open_checkpoint("digits")


def save_diffusers_unet(folder: Path, sizes: Sizes) -> Path:
    """A randomly initialised UNet2DModel (attention at the middle level, as DDPM's CIFAR model has) with
    diffusers' default DDPM scheduler, saved as a pipeline folder.

    Its output layer is scaled by ``OUTPUT_SCALE``: at full scale a random network is a chaotic map under DDIM
    (a difference of 1e-6 in one forward grows to 1 within 50 steps), which no trained denoiser is; scaled,
    small differences stay small, as they do for a trained model, and the cost of a forward is the same."""
    from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel

    levels = len(sizes.unet_channels)
    down = ["DownBlock2D"] * levels
    up = ["UpBlock2D"] * levels
    if levels > 2:
        down[1], up[-2] = "AttnDownBlock2D", "AttnUpBlock2D"
    torch.manual_seed(UNET_SEED)
    unet = UNet2DModel(sample_size=sizes.unet_side, in_channels=3, out_channels=3, layers_per_block=1,
                       block_out_channels=tuple(sizes.unet_channels), down_block_types=tuple(down),
                       up_block_types=tuple(up), norm_num_groups=8)
    with torch.no_grad():
        unet.conv_out.weight.mul_(OUTPUT_SCALE)
        unet.conv_out.bias.mul_(OUTPUT_SCALE)
    DDPMPipeline(unet=unet.eval(), scheduler=DDPMScheduler()).save_pretrained(folder)
    return folder


def diffusers_unet_name(sizes: Sizes) -> str:
    return f"UNet2DModel {sizes.unet_side}x{sizes.unet_side}x3 b{sizes.unet_batch}"


def open_diffusers_unet(folder: Path):
    """The folder opened as a studio denoiser, and the UNet2DModel inside it (for diffusers' pipelines)."""
    from ..core.checkpoints import open_checkpoint

    denoiser = open_checkpoint(folder)
    return denoiser, unet_of(denoiser)


def unet_of(denoiser):
    module = denoiser.module
    return getattr(module, "unet", module)


def bare_loop(network, x_T: torch.Tensor, timesteps, labels: torch.Tensor | None = None) -> None:
    """Only the model calls, each on x_T at the run's timesteps: the same shapes and work as the run's calls
    (a forward's cost does not depend on the values), with no sampler between them."""
    batch, device = x_T.shape[0], x_T.device
    t_batches = [torch.full((batch,), int(t), dtype=torch.long, device=device) for t in timesteps]
    with torch.inference_mode():
        for t in t_batches:
            network(x_T, t, labels)

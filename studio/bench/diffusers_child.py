"""Section 8's reference process: diffusers' own pipeline on a saved folder, as a user's script would run it.

    python studio/bench/diffusers_child.py FOLDER ddim|ddpm STEPS BATCH OUT

Run by its path, not with ``-m``, so the process imports diffusers, torch and numpy and none of the studio. It
loads the UNet and the scheduler from FOLDER (``UNet2DModel.from_pretrained``, ``DDIMScheduler`` or
``DDPMScheduler.from_pretrained``), builds ``DDIMPipeline`` or ``DDPMPipeline`` and calls it with its defaults
(its progress bar, eta 0 for DDIM), except: sample i gets its own generator seeded i, which is how ``studio sample``
seeds sample i (seed 0 + i), so the two draw the same noise; and ``output_type="np"``, whose float images (in
[0, 1]) go to OUT/images.npy for the comparison, then to one PNG per sample as the default (PIL) output would
be saved. The default output is these same arrays turned into PIL images, so the work is the same.
"""

import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    folder, sampler, steps, batch, out = Path(argv[0]), argv[1], int(argv[2]), int(argv[3]), Path(argv[4])
    import numpy as np
    import torch
    from diffusers import DDIMPipeline, DDIMScheduler, DDPMPipeline, DDPMScheduler, UNet2DModel

    pipeline, scheduler = {"ddim": (DDIMPipeline, DDIMScheduler), "ddpm": (DDPMPipeline, DDPMScheduler)}[sampler]
    unet = UNet2DModel.from_pretrained(folder, subfolder="unet")
    pipe = pipeline(unet=unet, scheduler=scheduler.from_pretrained(folder, subfolder="scheduler"))
    generators = [torch.Generator("cpu").manual_seed(i) for i in range(batch)]
    images = pipe(batch_size=batch, generator=generators, num_inference_steps=steps, output_type="np").images
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "images.npy", images)
    for i, image in enumerate(pipe.numpy_to_pil(images)):
        image.save(out / f"sample_{i:05d}.png")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

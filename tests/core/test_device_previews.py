"""Side-stream previews (studio.core.device_previews) are CUDA only: the module imports anywhere, says where it
can be used, and refuses clearly elsewhere. On a CUDA machine its frames equal the host's previews."""

from __future__ import annotations

import pytest
import torch

from studio.core import device_previews
from studio.core.checkpoints import open_checkpoint
from studio.core.engine import Run
from studio.core.errors import SettingsError
from studio.core.preview import step_frames
from studio.core.samplers import DDIMSettings
from studio.core.settings import CLASS_CYCLE, RunSettings


def test_only_a_usable_cuda_device_is_available():
    assert not device_previews.available("cpu")
    assert not device_previews.available("mps")
    assert not device_previews.available("not a device")
    assert device_previews.available("cuda") == torch.cuda.is_available()


@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_other_devices_are_refused_with_a_message(device):
    with pytest.raises(SettingsError, match="side-stream previews need a CUDA device"):
        device_previews.SideStreamPreviews(torch.device(device), "image", (-1.0, 1.0))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_side_stream_frames_equal_the_host_previews():
    denoiser = open_checkpoint("digits")
    card = denoiser.card
    settings = RunSettings(sampler=DDIMSettings(steps=8), batch_size=4, class_label=CLASS_CYCLE, device="cuda")
    previews = device_previews.SideStreamPreviews(torch.device("cuda"), card.data_kind, card.value_range)
    host, previous = [], None
    run = Run(denoiser, settings)
    for step in run:
        previews.submit(step)
        frames, previous = step_frames(step, card.data_kind, card.value_range, previous)
        host.append(frames)
    side = previews.ready(wait=True)
    assert previews.pending == 0 and [f.index for f in side] == list(range(8))
    for a, b in zip(side, host):
        assert (a.x_t_tiles == b.x_t_tiles).all() and (a.eps_tiles == b.eps_tiles).all()
        assert a.x0_change == b.x0_change or (a.x0_change != a.x0_change and b.x0_change != b.x0_change)

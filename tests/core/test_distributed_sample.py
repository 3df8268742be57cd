"""`torchrun -m studio sample` across processes writes the very files one process writes; the pieces that make
that true (the split of the samples, the merge, the fixed-size model calls) each hold on their own."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import checkpoint_makers as make
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from studio.commands.distributed import ProcessLayout
from studio.core.models.fixed_batch import FixedBatchClassifier, FixedBatchDenoiser
from studio.commands.sample import merge_shards
from studio.core.errors import SettingsError
from studio.core.models.denoiser import NetworkDenoiser

REPO = Path(__file__).resolve().parents[2]


@given(num_samples=st.integers(1, 200), world_size=st.integers(1, 9), batch=st.integers(1, 20))
def test_the_processes_share_every_sample_once_in_blocks_of_whole_batches(num_samples, world_size, batch):
    shares = [ProcessLayout(rank, world_size).share(num_samples, batch) for rank in range(world_size)]
    assert [i for share in shares for i in share] == list(range(num_samples))
    assert len(shares[0]) > 0
    assert all(share.start % batch == 0 for share in shares if share)   # each begins where a batch begins
    batches = -(-num_samples // batch)
    assert max(map(len, shares)) <= -(-batches // world_size) * batch


def test_layout_comes_from_torchrun_variables():
    assert ProcessLayout.from_environment({}) == ProcessLayout(0, 1, 0)
    assert ProcessLayout.from_environment({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"}) == ProcessLayout(1, 2, 1)
    for bad in ({"RANK": "2", "WORLD_SIZE": "2"}, {"RANK": "x", "WORLD_SIZE": "2"}):
        with pytest.raises(SettingsError):
            ProcessLayout.from_environment(bad)


def test_merge_puts_the_shards_back_in_sample_order():
    shards = [
        {"indices": np.array([3, 4]), "samples": np.array([[3.0], [4.0]]), "class_labels": np.array([0, 1]),
         "x_t": np.full((2, 2, 1), 1.0), "x0_pred": np.full((1, 2, 1), 1.0), "record": {}},
        {"indices": np.array([0, 1, 2]), "samples": np.array([[0.0], [1.0], [2.0]]),
         "class_labels": np.array([0, 1, 2]), "x_t": np.zeros((2, 3, 1)), "x0_pred": np.zeros((1, 3, 1)),
         "record": {"seeds": [0]}},
    ]
    merged = merge_shards(shards, (1,))
    assert merged.indices == [0, 1, 2, 3, 4] and merged.samples.ravel().tolist() == [0, 1, 2, 3, 4]
    assert merged.class_labels == [0, 1, 2, 0, 1] and merged.record == {"seeds": [0]}
    assert merged.x_t[:, :, 0].tolist() == [[0, 0, 0, 1, 1]] * 2


def test_fixed_size_calls_give_each_sample_the_same_bits_in_any_batch():
    network, card = make.unet(num_classes=3)
    inner = NetworkDenoiser(network, card)
    model = FixedBatchDenoiser(inner, model_batch=4)
    x = torch.randn(7, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 3])
    with torch.inference_mode():
        whole = model.predict(x, 9, labels)
        pieces = [model.predict(x[a:b], 9, labels[a:b]) for a, b in ((0, 1), (1, 3), (3, 7))]
        assert torch.equal(whole.eps, torch.cat([p.eps for p in pieces]))
        assert torch.equal(whole.x0, torch.cat([p.x0 for p in pieces]))
        # and each is what the network says about exactly 4 rows
        assert torch.equal(whole.eps[4:], inner.predict(torch.cat([x[4:], x[4:5]]), 9, torch.cat([labels[4:],
                                                                                                 labels[4:5]])).eps[:3])
        assert torch.equal(FixedBatchDenoiser(inner, 0).predict(x, 9, labels).eps, inner.predict(x, 9, labels).eps)
    with pytest.raises(SettingsError):
        FixedBatchDenoiser(inner, -1)


def test_fixed_size_classifier_calls_are_row_by_row_the_same():
    network, card = make.classifier()
    from studio.core.checkpoints.classifier import LoadedClassifier

    inner = LoadedClassifier(network, card)
    model = FixedBatchClassifier(inner, model_batch=3)
    x = torch.randn(5, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    t = torch.full((5,), 7)
    labels = torch.tensor([0, 1, 2, 1, 0])
    whole = model.log_prob(x, t, labels)
    assert whole.shape == (5,)
    assert torch.equal(whole[3:], model.log_prob(x[3:], t[3:], labels[3:]))


def test_two_processes_write_the_files_one_process_writes(tmp_path):
    checkpoint = make.studio_file(tmp_path, *make.unet(num_classes=3), "model.safetensors")
    args = ["sample", "--checkpoint", str(checkpoint), "--sampler", "ddpm", "--steps", "8", "--num-samples", "7",
            "--batch", "3", "--class", "cycle", "--seed", "21", "--trajectory", "--no-progress"]
    # torchrun gives each process one CPU thread, and at 3 rows per call a row's last bits follow the thread count
    # (docs/engine.md): the single process runs on one thread too
    single = subprocess.run([sys.executable, "-m", "studio", *args, "--threads", "1", "--out", str(tmp_path / "one")],
                            cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert single.returncode == 0, single.stderr
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "studio"]
    double = subprocess.run([*launcher, *args, "--out", str(tmp_path / "two")], cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert double.returncode == 0, double.stderr
    one, two = tmp_path / "one", tmp_path / "two"
    assert sorted(p.name for p in two.iterdir()) == sorted(p.name for p in one.iterdir())   # shards cleaned up
    assert (one / "samples.npy").read_bytes() == (two / "samples.npy").read_bytes()
    for i in range(7):
        assert (one / f"sample_{i:05d}.png").read_bytes() == (two / f"sample_{i:05d}.png").read_bytes()
    with np.load(one / "trajectory.npz") as a, np.load(two / "trajectory.npz") as b:
        for key in ("x_t", "x0_pred", "timesteps"):
            assert np.array_equal(a[key], b[key])
    record_one, record_two = (json.loads((d / "run.json").read_text()) for d in (one, two))
    assert record_two.pop("distributed") == {"world_size": 2, "backend": "gloo",
                                             "split": "contiguous blocks of sample indices"}
    assert "distributed" not in record_one and record_one == record_two
    assert record_one["seeds"] == list(range(21, 28)) and record_one["class_labels"] == [0, 1, 2, 0, 1, 2, 0]
    # a sample made by the second process comes back from its PNG in a plain process (two threads here: its
    # recipe's one thread and 3 rows are used again)
    assert record_one["threads"] == 1 and record_one["model_batch"] == 3
    again = subprocess.run([sys.executable, "-m", "studio", "sample", "--from-png", str(two / "sample_00005.png"),
                            "--no-progress", "--out", str(tmp_path / "again")], cwd=REPO, capture_output=True,
                           text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert np.array_equal(np.load(tmp_path / "again" / "samples.npy")[0], np.load(two / "samples.npy")[5])

"""diffusers folders: tiny UNet2DModels built and saved in-process (diffusers never downloads here) open as a
denoiser whose output equals the UNet's own, with the scheduler config mapped 1:1 onto the card; and the
hub-cache listing finds the UNet pipelines on disk, without any network access."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys

import pytest
import torch

from studio.core.checkpoints import diffusers_cache_pipelines, identify, open_checkpoint, read_card
from studio.core.errors import CheckpointError

diffusers = pytest.importorskip("diffusers")

SCHEDULER_FIELDS = ("num_train_timesteps", "beta_schedule", "beta_start", "beta_end", "prediction_type",
                    "variance_type", "clip_sample", "clip_sample_range")


def tiny_unet(seed: int = 0, **config) -> "diffusers.UNet2DModel":
    torch.manual_seed(seed)
    defaults = dict(sample_size=8, in_channels=1, out_channels=1, layers_per_block=1, block_out_channels=(8, 16),
                    down_block_types=("DownBlock2D", "AttnDownBlock2D"),
                    up_block_types=("AttnUpBlock2D", "UpBlock2D"), norm_num_groups=4, attention_head_dim=4)
    unet = diffusers.UNet2DModel(**{**defaults, **config}).eval()
    with torch.no_grad():  # diffusers zero-initialises nothing we rely on, but make every weight matter
        for p in unet.parameters():
            p.add_(0.05 * torch.randn(p.shape))
    return unet


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("diffusers")
    made = {}
    unet = tiny_unet()
    scheduler = diffusers.DDPMScheduler(num_train_timesteps=100, beta_schedule="squaredcos_cap_v2",
                                        prediction_type="v_prediction", variance_type="fixed_large",
                                        clip_sample=False)
    diffusers.DDPMPipeline(unet=unet, scheduler=scheduler).save_pretrained(root / "pipeline")
    made["pipeline"] = (root / "pipeline", unet, scheduler)

    bare = tiny_unet(seed=1)
    bare.save_pretrained(root / "bare")
    made["bare"] = (root / "bare", bare, None)

    beside = tiny_unet(seed=2, sample_size=(8, 16))
    beside.save_pretrained(root / "beside", safe_serialization=False)  # .bin weights, read weights-only
    ddim = diffusers.DDIMScheduler(num_train_timesteps=60, beta_start=0.001, beta_end=0.03,
                                   beta_schedule="scaled_linear", prediction_type="sample")
    ddim.save_config(root / "beside")
    made["beside"] = (root / "beside", beside, ddim)

    conditional = tiny_unet(seed=3, num_class_embeds=3)
    conditional.save_pretrained(root / "conditional")
    made["conditional"] = (root / "conditional", conditional, None)

    learned = tiny_unet(seed=4, out_channels=2)
    learned_scheduler = diffusers.DDPMScheduler(num_train_timesteps=50, variance_type="learned_range")
    diffusers.DDPMPipeline(unet=learned, scheduler=learned_scheduler).save_pretrained(root / "learned")
    made["learned"] = (root / "learned", learned, learned_scheduler)
    return made


def assert_same_output(denoiser, unet, labels=None):
    card = denoiser.card
    x = torch.randn((2, *card.data_shape), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        for t in (0, card.num_train_timesteps - 1):
            t_batch = torch.full((2,), t, dtype=torch.long)
            want = unet(x, t_batch, class_labels=labels).sample
            assert want.abs().max() > 1e-3
            torch.testing.assert_close(denoiser.raw(x, t_batch, labels), want, rtol=0, atol=0)


def test_pipeline_folder(folders):
    path, unet, scheduler = folders["pipeline"]
    assert identify(path) == "diffusers"
    denoiser = open_checkpoint(path)
    card = denoiser.card
    for field in SCHEDULER_FIELDS:  # the same names, the same values
        assert getattr(card, field) == scheduler.config[field], field
    assert card.assumed == ("value_range",)
    assert (card.data_kind, card.data_shape, card.class_names, card.format) == ("image", (1, 8, 8), (), "diffusers")
    weights = path / "unet" / "diffusion_pytorch_model.safetensors"
    assert card.file_size == weights.stat().st_size and card.path == str(path.resolve())
    assert card.parameter_count == sum(p.numel() for p in unet.parameters())
    torch.testing.assert_close(torch.from_numpy(card.schedule().alpha_bar).float(), scheduler.alphas_cumprod)
    assert_same_output(denoiser, unet)


def test_model_folder_without_scheduler_config_assumes_diffusers_defaults(folders):
    path, unet, _ = folders["bare"]
    card = open_checkpoint(path).card
    defaults = diffusers.DDPMScheduler().config  # the oracle: what diffusers itself would assume
    for field in SCHEDULER_FIELDS:
        assert getattr(card, field) == defaults[field], field
        assert field in card.assumed
    assert_same_output(open_checkpoint(path), unet)


def test_model_folder_with_scheduler_config_beside_and_bin_weights(folders):
    path, unet, ddim = folders["beside"]
    assert (path / "diffusion_pytorch_model.bin").is_file()
    card = open_checkpoint(path).card
    assert card.data_shape == (1, 8, 16)
    for field in ("num_train_timesteps", "beta_schedule", "beta_start", "beta_end", "prediction_type", "clip_sample"):
        assert getattr(card, field) == ddim.config[field], field
    assert card.assumed == ("value_range", "variance_type")  # DDIMScheduler has no variance_type
    torch.testing.assert_close(torch.from_numpy(card.schedule().alpha_bar).float(), ddim.alphas_cumprod)
    assert_same_output(open_checkpoint(path), unet)


def test_class_conditional_unet(folders):
    path, unet, _ = folders["conditional"]
    denoiser = open_checkpoint(path)
    assert denoiser.card.class_names == ("0", "1", "2") and denoiser.card.null_class is None
    assert_same_output(denoiser, unet, torch.tensor([2, 0]))


def test_learned_variance_unet(folders):
    path, unet, _ = folders["learned"]
    denoiser = open_checkpoint(path)
    assert denoiser.card.variance_type == "learned_range" and "variance_type" not in denoiser.card.assumed
    x = torch.randn(2, 1, 8, 8)
    with torch.no_grad():
        raw = unet(x, torch.full((2,), 9)).sample
        torch.testing.assert_close(denoiser.predict(x, 9).var_values, raw[:, 1:], rtol=0, atol=0)


def test_unet_subfolder_of_a_pipeline_finds_its_scheduler(folders):
    path, unet, scheduler = folders["pipeline"]
    card = read_card(path / "unet")
    assert card.prediction_type == "v_prediction" and card.num_train_timesteps == 100
    assert card.name == path.name  # named after the pipeline, not "unet"
    assert_same_output(open_checkpoint(path / "unet"), unet)


def test_a_config_file_stands_for_its_folder(folders):
    path = folders["pipeline"][0]
    assert read_card(path / "model_index.json") == read_card(path)
    assert read_card(path / "unet" / "config.json") == read_card(path / "unet")


def test_studio_card_json_adds_names(folders, tmp_path):
    path = shutil.copytree(folders["conditional"][0], tmp_path / "named")
    (path / "studio_card.json").write_text(json.dumps({"name": "shapes", "class_names": ["circle", "square", "star"],
                                                       "value_range": [-1, 1]}))
    card = read_card(path)
    assert card.name == "shapes" and card.class_names == ("circle", "square", "star")
    assert "value_range" not in card.assumed
    (path / "studio_card.json").write_text(json.dumps({"class_names": ["a"]}))
    with pytest.raises(CheckpointError, match="studio_card.json: lists 1 class_names but the UNet has"):
        read_card(path)
    (path / "studio_card.json").write_text(json.dumps({"num_train_timesteps": 7}))
    with pytest.raises(CheckpointError, match="cannot set num_train_timesteps"):
        read_card(path)


def test_read_card_does_not_import_diffusers(folders):
    path = folders["pipeline"][0]
    code = ("import sys\nfrom studio.core.checkpoints import read_card\n"
            f"card = read_card({str(path)!r})\nprint(card.prediction_type, 'diffusers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["v_prediction", "False"]


# --- refusals ----------------------------------------------------------------------------------------------------
def test_weights_do_not_fit_the_config(folders, tmp_path):
    path = shutil.copytree(folders["bare"][0], tmp_path / "wrong")
    config = json.loads((path / "config.json").read_text())
    config["block_out_channels"] = [8, 24]
    (path / "config.json").write_text(json.dumps(config))
    read_card(path)  # the JSON alone looks fine
    with pytest.raises(CheckpointError) as info:
        open_checkpoint(path)
    message = str(info.value)
    assert message.startswith(str(path / "diffusion_pytorch_model.safetensors"))
    assert "weights do not fit the config" in message and "[24" in message and "\n" not in message


def test_config_diffusers_cannot_build(folders, tmp_path):
    path = shutil.copytree(folders["bare"][0], tmp_path / "broken")
    config = json.loads((path / "config.json").read_text())
    config["up_block_types"] = ["UpBlock2D"]  # one up block for two down blocks
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"config.json: does not describe a valid UNet2DModel: .*up_block_types"):
        open_checkpoint(path)


def test_learned_channels_with_fixed_variance_scheduler(folders, tmp_path):
    path = shutil.copytree(folders["learned"][0], tmp_path / "mismatch")
    config_path = path / "scheduler" / "scheduler_config.json"
    config = json.loads(config_path.read_text())
    config["variance_type"] = "fixed_small"
    config_path.write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"scheduler_config.json: variance_type is 'fixed_small' but the UNet"):
        read_card(path)


def test_diffusers_learned_variance_is_refused_not_misread(folders, tmp_path):
    path = shutil.copytree(folders["learned"][0], tmp_path / "raw-variance")
    config_path = path / "scheduler" / "scheduler_config.json"
    config_path.write_text(json.dumps({**json.loads(config_path.read_text()), "variance_type": "learned"}))
    with pytest.raises(CheckpointError, match=r"scheduler_config.json: variance_type 'learned' means the variance"):
        read_card(path)


def test_scheduler_config_with_nonsense(folders, tmp_path):
    path = shutil.copytree(folders["pipeline"][0], tmp_path / "zero")
    config_path = path / "scheduler" / "scheduler_config.json"
    config = json.loads(config_path.read_text())
    config["num_train_timesteps"] = 0
    config_path.write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"scheduler_config.json: model card: num_train_timesteps must be"):
        read_card(path)


def test_no_weights_file(folders, tmp_path):
    path = shutil.copytree(folders["bare"][0], tmp_path / "empty")
    (path / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="no weights file"):
        read_card(path)


def test_bin_weights_carrying_code_never_run(folders, tmp_path):
    path = shutil.copytree(folders["bare"][0], tmp_path / "evil")
    marker = tmp_path / "MARKER"

    class Payload:
        def __reduce__(self):
            return (exec, (f"open({str(marker)!r}, 'w').close()",))

    state = folders["bare"][1].state_dict()
    (path / "diffusion_pytorch_model.safetensors").unlink()
    torch.save({**state, "payload": Payload()}, path / "diffusion_pytorch_model.bin")
    for opener in (read_card, open_checkpoint):
        with pytest.raises(CheckpointError, match=r"diffusion_pytorch_model.bin: refused: the pickle asks for .*exec"):
            opener(path)
    assert not marker.exists()


def test_opening_a_folder_imports_diffusers_unet_only_and_leaves_diffusers_whole(folders):
    """A fresh process opens a pipeline folder as `studio sample` does: diffusers' own UNet2DModel comes without
    diffusers' pipelines, schedulers and loaders (their import is most of what diffusers costs at start-up), its
    output equals the class's own from_pretrained to the bit; and a later ordinary import of diffusers still finds
    every name, with the same class objects."""
    path = folders["pipeline"][0]
    code = f"""
import sys, torch
from studio.core.checkpoints import open_checkpoint
denoiser = open_checkpoint({str(path)!r})
loaded = sorted(m for m in ("diffusers.pipelines", "diffusers.schedulers", "diffusers.loaders") if m in sys.modules)
assert not loaded, loaded
from diffusers import DDPMPipeline, DDPMScheduler, UNet2DConditionModel, UNet2DModel
from diffusers.models.transformers import Transformer2DModel
from diffusers.models.unets import UNet1DModel
import diffusers.models.unets
import diffusers.models.unets.unet_2d as unet_2d
assert type(denoiser.module.unet) is UNet2DModel is unet_2d.UNet2DModel is diffusers.models.unets.UNet2DModel
reference = UNet2DModel.from_pretrained({str(path)!r}, subfolder="unet").eval()
x, t = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(0)), torch.tensor([0, 99])
with torch.no_grad():
    assert torch.equal(denoiser.raw(x, t, None), reference(x, t).sample)
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def test_opening_a_folder_leaves_dynamo_unloaded_until_it_is_used_and_then_whole(folders):
    """diffusers.utils imports torch._dynamo (about 1 s) for a decorator on its attention classes: a fresh process
    that opens a folder and calls its network runs none of Dynamo. The first import of a Dynamo submodule runs the
    package first, and Dynamo's registry then holds diffusers' decorated classes, as in a process that imported
    Dynamo before diffusers (the control)."""
    path = folders["pipeline"][0]
    code = f"""
import sys, torch
if sys.argv[1] == "control":
    import torch._dynamo
from studio.core.checkpoints import open_checkpoint
denoiser = open_checkpoint({str(path)!r})
x, t = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(0)), torch.tensor([0, 99])
with torch.no_grad():
    denoiser.raw(x, t, None)
dynamo = sys.modules["torch._dynamo"]
deferred = type(dynamo).__name__ == "DeferredDynamo"
ran_before = "torch._dynamo.eval_frame" in sys.modules
import torch._dynamo.config   # a submodule: the package runs first
from torch._dynamo import trace_rules
from diffusers.models.attention_processor import Attention
assert torch._dynamo is dynamo is sys.modules["torch._dynamo"]
assert torch._dynamo.allow_in_graph.__module__ == "torch._dynamo.decorators"
torch._dynamo.reset()
print(deferred, ran_before, id(Attention) in trace_rules._allowed_callable_ids)
"""
    answers = {}
    for mode in ("studio", "control"):
        done = subprocess.run([sys.executable, "-c", code, mode], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        answers[mode] = done.stdout.split()
    assert answers["studio"] == ["True", "False", "True"]     # deferred, not run by the forward, registered after
    assert answers["control"] == ["False", "True", "True"]    # Dynamo imported first: the same registration


def test_without_diffusers_the_message_says_how_to_add_it(folders, monkeypatch):
    monkeypatch.setitem(sys.modules, "diffusers", None)  # makes `import diffusers` fail
    path = folders["pipeline"][0]
    assert read_card(path).format == "diffusers"  # the card needs no diffusers
    with pytest.raises(CheckpointError, match=r"needs the diffusers package: pip install diffusers"):
        open_checkpoint(path)


# --- hub cache ---------------------------------------------------------------------------------------------------
def _fake_cache(root, folders):
    def snapshot(repo, revision, source=None):
        folder = root / f"models--{repo.replace('/', '--')}" / "snapshots" / revision
        if source is not None:
            shutil.copytree(source, folder)
        else:
            folder.mkdir(parents=True)
        return folder

    snapshot("me/tiny-ddpm", "aaa", folders["pipeline"][0])
    snapshot("me/tiny-ddpm", "bbb", folders["learned"][0])  # an older snapshot; refs/main picks aaa
    (root / "models--me--tiny-ddpm" / "refs").mkdir()
    (root / "models--me--tiny-ddpm" / "refs" / "main").write_text("aaa")
    sd = snapshot("me/sd", "ccc")
    (sd / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline",
                                                    "unet": ["diffusers", "UNet2DConditionModel"]}))
    partial = snapshot("me/partial", "ddd", folders["pipeline"][0])
    (partial / "unet" / "diffusion_pytorch_model.safetensors").unlink()  # an interrupted download
    snapshot("me/unet-only", "eee", folders["bare"][0])  # a model repo, not a pipeline
    (root / "datasets--me--data").mkdir()


@pytest.mark.parametrize("variable", ["HF_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME"])
def test_hub_cache_lists_unet_pipelines_without_network(folders, tmp_path, monkeypatch, variable):
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    cache = {"HF_HUB_CACHE": tmp_path, "HF_HOME": tmp_path / "hub",
             "XDG_CACHE_HOME": tmp_path / "huggingface" / "hub"}[variable]
    cache.mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv(variable, str(tmp_path))
    _fake_cache(cache, folders)

    def no_network(*args, **kwargs):
        raise AssertionError("the hub cache listing tried to open a network connection")

    monkeypatch.setattr(socket, "socket", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    found = diffusers_cache_pipelines()
    assert [(c.repo_id, c.revision, c.pipeline_class) for c in found] == [("me/tiny-ddpm", "aaa", "DDPMPipeline")]
    denoiser = open_checkpoint(found[0].path)
    assert denoiser.card.name == "me/tiny-ddpm" and denoiser.card.prediction_type == "v_prediction"


def test_hub_cache_missing_is_an_empty_list(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "nothing"))
    assert diffusers_cache_pipelines() == []

"""The studio's networks: output shapes per config, learned-variance channels, exact rebuild from the
architecture record, the null class of class-conditional models, and SettingsError for bad configs."""

import json

import pytest
import torch

from studio.core.errors import SettingsError
from studio.core.guidance import Classifier
from studio.core.models.card import ModelCard
from studio.core.models.denoiser import NetworkDenoiser
from studio.core.models.networks import ARCHITECTURES, architecture_of, build_network

TINY_UNET = {"image_size": 8, "in_channels": 1, "base_channels": 8, "channel_mult": [1, 2], "num_res_blocks": 1,
             "attention_resolutions": [4], "norm_groups": 4}

UNET_CASES = [
    TINY_UNET,
    {**TINY_UNET, "num_classes": 10},
    {**TINY_UNET, "learn_sigma": True},
    {**TINY_UNET, "in_channels": 3, "image_size": 16, "channel_mult": [1, 2, 2], "attention_resolutions": [8, 4],
     "num_heads": 2},
    {**TINY_UNET, "in_channels": 3, "out_channels": 1, "attention_resolutions": [], "dropout": 0.1},
]


def _inputs(config, batch=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn((batch, config["in_channels"], config["image_size"], config["image_size"]), generator=g)
    t = torch.randint(0, 1000, (batch,), generator=g)
    return x, t


@pytest.mark.parametrize("config", UNET_CASES)
def test_unet_output_shape_follows_config(config):
    net = build_network({"name": "unet", "config": config}).eval()
    x, t = _inputs(config)
    labels = torch.tensor([0, 3, 9]) if config.get("num_classes") else None
    out = net(x, t, labels)
    data_channels = config.get("out_channels") or config["in_channels"]
    expected_channels = data_channels * (2 if config.get("learn_sigma") else 1)
    assert out.shape == (3, expected_channels, config["image_size"], config["image_size"])
    assert torch.isfinite(out).all()


def test_learn_sigma_doubles_output_channels_and_denoiser_splits_them():
    net = build_network({"name": "unet", "config": {**TINY_UNET, "learn_sigma": True}})
    card = ModelCard(name="t", data_shape=(1, 8, 8), variance_type="learned_range")
    prediction = NetworkDenoiser(net, card).predict(torch.randn(2, 1, 8, 8), 500)
    assert prediction.eps.shape == (2, 1, 8, 8) and prediction.var_values.shape == (2, 1, 8, 8)
    mlp = build_network({"name": "mlp", "config": {"data_dim": 3, "hidden": 16, "depth": 1, "learn_sigma": True}})
    assert mlp(torch.randn(4, 3), torch.zeros(4, dtype=torch.long)).shape == (4, 6)


def _perturbed(net):
    """Move every parameter off its initial value: zero-initialised output layers would otherwise make any two
    networks agree trivially."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))
    return net


@pytest.mark.parametrize("name, config", [
    ("unet", {**TINY_UNET, "num_classes": 4, "learn_sigma": True}),
    ("mlp", {"data_dim": 2, "hidden": 32, "depth": 2, "num_classes": 8}),
    ("classifier", {"image_size": 8, "in_channels": 1, "num_classes": 10, "base_channels": 8, "norm_groups": 4}),
])
def test_architecture_round_trip_rebuilds_identical_network(name, config):
    torch.manual_seed(0)
    original = _perturbed(build_network({"name": name, "config": config})).eval()
    record = architecture_of(original)
    assert record["name"] == name
    record = json.loads(json.dumps(record))           # what a checkpoint's card carries
    torch.manual_seed(123)                             # different initial weights...
    rebuilt = build_network(record).eval()
    assert rebuilt.config == original.config
    rebuilt.load_state_dict(original.state_dict())    # ...until the same state_dict is loaded
    if name == "mlp":
        x, t, extra = torch.randn(5, 2), torch.randint(0, 1000, (5,)), (torch.tensor([0, 1, 2, 8, 7]),)
    else:
        x, t = _inputs({"in_channels": 1, "image_size": 8}, batch=5)
        extra = (torch.tensor([0, 1, 2, 3, 4]),) if name == "unet" else ()
    assert torch.equal(original(x, t, *extra), rebuilt(x, t, *extra))
    other = _perturbed(build_network(record)).eval()   # the test can fail: other weights give other outputs
    assert not torch.equal(original(x, t, *extra), other(x, t, *extra))


@pytest.mark.parametrize("name, config", [
    ("unet", {**TINY_UNET, "num_classes": 10}),
    ("mlp", {"data_dim": 2, "hidden": 16, "depth": 1, "num_classes": 10}),
])
def test_class_embedding_has_a_null_class_used_for_missing_labels(name, config):
    net = _perturbed(build_network({"name": name, "config": config})).eval()
    assert net.null_class == 10
    assert net.class_embed.table.num_embeddings == 11          # K classes + the null class
    x = torch.randn(2, 1, 8, 8) if name == "unet" else torch.randn(2, 2)
    t = torch.tensor([10, 900])
    null = net(x, t, torch.tensor([10, 10]))
    assert torch.equal(net(x, t, None), null)                  # no labels means the null class
    assert not torch.equal(net(x, t, torch.tensor([3, 3])), null)
    with pytest.raises(SettingsError, match="from 0 to 9, or 10"):
        net(x, t, torch.tensor([11, 0]))


def test_unconditional_network_refuses_labels():
    net = build_network({"name": "unet", "config": TINY_UNET})
    assert net.null_class is None
    with pytest.raises(SettingsError, match="unconditional"):
        net(torch.randn(1, 1, 8, 8), torch.tensor([5]), torch.tensor([0]))


def test_classifier_logits_and_log_prob_follow_the_guidance_protocol():
    net = _perturbed(build_network({"name": "classifier", "config": {"num_classes": 10, "base_channels": 8,
                                                                      "norm_groups": 4}})).eval()
    assert isinstance(net, Classifier)
    x = torch.randn(4, 1, 8, 8, requires_grad=True)
    t = torch.tensor([0, 10, 500, 999])
    logits = net(x, t)
    assert logits.shape == (4, 10)
    labels = torch.tensor([1, 2, 3, 4])
    log_prob = net.log_prob(x, t, labels)
    assert log_prob.shape == (4,)
    # oracle: log softmax picked at each label, and the probabilities over all labels sum to one
    torch.testing.assert_close(log_prob, torch.log_softmax(logits, -1)[torch.arange(4), labels])
    all_labels = torch.stack([net.log_prob(x, t, torch.full((4,), k)) for k in range(10)])
    torch.testing.assert_close(all_labels.exp().sum(0), torch.ones(4))
    (grad,) = torch.autograd.grad(log_prob.sum(), x)           # differentiable in x_t, as guidance needs
    assert grad.shape == x.shape and grad.abs().sum() > 0


def test_network_runs_under_the_denoiser_with_class_labels():
    net = build_network({"name": "mlp", "config": {"data_dim": 2, "hidden": 16, "depth": 1, "num_classes": 3}})
    card = ModelCard(name="toy", data_kind="vector", data_shape=(2,), class_names=("a", "b", "c"), null_class=3,
                     clip_sample=False, architecture=architecture_of(net))
    prediction = NetworkDenoiser(net, card).predict(torch.randn(2, 2), 999, torch.tensor([0, 3]))
    assert prediction.eps.shape == (2, 2)


@pytest.mark.parametrize("architecture, message", [
    ({"name": "transformer", "config": {}}, "unknown network architecture 'transformer'"),
    ({"config": {}}, "'name'"),
    ("unet", "'name'"),
    ({"name": "unet", "config": {"base_chanels": 32}}, "unknown config key.*base_chanels"),
    ({"name": "unet", "config": []}, "config must be a JSON object"),
    ({"name": "unet", "config": {"image_size": 10, "channel_mult": [1, 2, 2]}}, "divisible by 2\\^\\(levels - 1\\)"),
    ({"name": "unet", "config": {"attention_resolutions": [3]}}, "attention_resolutions \\[3\\]"),
    ({"name": "unet", "config": {"base_channels": 12, "norm_groups": 8}}, "not divisible by norm_groups"),
    ({"name": "unet", "config": {"base_channels": 0}}, "base_channels must be an integer >= 1"),
    ({"name": "unet", "config": {"channel_mult": []}}, "channel_mult must be a non-empty list"),
    ({"name": "unet", "config": {"dropout": 1.5}}, "dropout must be a number in \\[0, 1\\)"),
    ({"name": "unet", "config": {"learn_sigma": "yes"}}, "learn_sigma must be true or false"),
    ({"name": "unet", "config": {"num_classes": -1}}, "num_classes must be an integer >= 0"),
    ({"name": "mlp", "config": {"hidden": 2.5}}, "'mlp': hidden must be an integer"),
    ({"name": "classifier", "config": {"num_classes": 1}}, "'classifier': num_classes must be an integer >= 2"),
    ({"name": "unet", "config": {}, "weights": 1}, "unknown key.*weights"),
])
def test_bad_architectures_raise_settings_error_naming_the_problem(architecture, message):
    with pytest.raises(SettingsError, match=message):
        build_network(architecture)


def test_registry_names_every_network_and_config_is_json():
    assert set(ARCHITECTURES) == {"unet", "mlp", "classifier"}
    for name in ARCHITECTURES:
        config = build_network({"name": name, "config": {}}).config
        assert json.loads(json.dumps(config)) == config

"""Build one of the studio's own networks from the architecture a card names, and fill it with weights."""

from __future__ import annotations

from typing import Mapping

import torch

from ..errors import StudioError
from ..models.card import ModelCard
from .build_guard import checked_build
from .common import fail, fit_weights, probe_network


def build_from_card(card: ModelCard, path) -> torch.nn.Module:
    from ..models.networks import build_network  # the registry imports every network; only when needed

    name = card.architecture.get("name")
    try:
        network = build_network(card.architecture)
    except StudioError as exc:
        raise fail(path, f"cannot build architecture {name!r} from its model card: {exc}") from None
    except (KeyError, TypeError, ValueError) as exc:
        raise fail(path, f"cannot build architecture {name!r} from its model card: {exc!r}") from None
    return network.eval()


def network_from_card(card: ModelCard, state: Mapping[str, torch.Tensor], path) -> torch.nn.Module:
    """Build (once a meta-device build shows the card's network fits the file's weights and memory), load
    strictly, and check one dry run against the card (data shape, labels, output channels)."""
    what = f"the {card.architecture['name']!r} architecture in its card"
    network = checked_build(lambda: build_from_card(card, path), card, state, path, what,
                            inspect=lambda meta: _check_classes(meta, card, path))
    fit_weights(network, state, path, what)
    probe_network(network, card, path)
    return network


def _check_classes(network: torch.nn.Module, card: ModelCard, path) -> None:
    """The card's classes must be the network's: same count, and the network's null class if it has one."""
    config = getattr(network, "config", None)
    num_classes = config.get("num_classes") if isinstance(config, dict) else None
    if card.role == "classifier" and not card.class_names:
        raise fail(path, "a classifier's model card must list its class_names")
    if num_classes is not None and num_classes != len(card.class_names):
        raise fail(path, f"model card lists {len(card.class_names)} class_names but its "
                         f"{card.architecture['name']!r} network has num_classes = {num_classes}")
    null_class = getattr(network, "null_class", None)
    if card.null_class is not None and card.null_class != null_class:
        raise fail(path, f"model card gives null_class {card.null_class} but the network's null class is "
                         f"{null_class if null_class is not None else 'none'}")

"""`studio info CHECKPOINT`: open a checkpoint and print its model card.

The checkpoint is opened in full (weights fitted, one dry run), so exit 0 means the studio can sample from it;
``--card-only`` reads just the card, which is quicker for large files and needs no diffusers import. A
TorchScript archive is a program: its card (with the verdict of its code check) is read with ``--card-only``
without loading it, and opening it in full needs ``--trust-code``.
"""

from __future__ import annotations

import argparse
import json

from .arguments import add_trust_argument


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", metavar="CHECKPOINT",
                        help="a .safetensors/.pt file, a diffusers folder, or a bundled model name")
    parser.add_argument("--json", action="store_true", help="print the card as JSON")
    parser.add_argument("--card-only", action="store_true",
                        help="read only the card; do not load the weights (nor any code)")
    add_trust_argument(parser)


def run(args: argparse.Namespace) -> int:
    from studio.core.checkpoints import card_lines, open_checkpoint, open_classifier, read_card

    card = read_card(args.checkpoint)
    if not args.card_only:
        card = (open_classifier(args.checkpoint) if card.role == "classifier"
                else open_checkpoint(args.checkpoint, trust_code=args.trust_code)).card
    if args.json:
        print(json.dumps(card.to_dict(), indent=2))
    else:
        print("\n".join(card_lines(card)))
    return 0

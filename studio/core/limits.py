"""How much work a file may ask for: the caps every checkpoint reader and card check applies.

A model card, a config.json or a pickle is a few bytes that can ask for anything (a schedule of ten billion
steps, an image side of a billion pixels, a JSON nest a million deep, a pickle that inflates to gigabytes).
These caps are far above anything a real checkpoint needs and far below what would take a machine's memory
or minutes, so a hostile or broken file is refused at once, with a message naming the cap. This module is
where they are documented; each comment says why its value.
"""

from __future__ import annotations

MiB = 1 << 20

# --- JSON (cards, config.json, scheduler_config.json, model_index.json, studio_card.json, a card in metadata) ---
# A card or a diffusers config is a few KiB; the largest legitimate one is a card with trained_betas at the
# timestep cap (100,000 numbers, about 2.5 MB as text). 16 MiB leaves room for that several times over, and the
# size is checked before a byte is read, so a sparse 5 GB config.json is refused without reading it.
MAX_JSON_BYTES = 16 * MiB
# Real cards and configs nest 3 or 4 levels deep. Deep nesting costs Python recursion wherever the value is
# copied, printed or compared (dataclasses.asdict, json.dumps, repr); 64 levels is far past any real file and far
# below the interpreter's recursion limit.
MAX_JSON_DEPTH = 64

# --- the model card --------------------------------------------------------------------------------------------
# Every schedule array (betas, alpha_bar, sigma, ...) holds T numbers, and the cosine recipe is a Python loop over
# T. diffusers models use T = 1000 (some 4000); 100,000 keeps every array under a megabyte and the cosine loop
# short, while T = 3e7 would take gigabytes and minutes. trained_betas (whose length is T) share the cap.
MAX_TRAIN_TIMESTEPS = 100_000
# Values in one sample (the product of data_shape): every run allocates batch x this many floats several times
# over (x_t, the network's answer, previews). 2**26 is a 4096 x 4096 image of 4 channels, 256 MiB per sample in
# float32: beyond any model the studio samples, while a data_shape of [10000000000] is refused when opened.
MAX_VALUES_PER_SAMPLE = 2**26
# Class names of a conditional model (also a diffusers UNet's num_class_embeds): ImageNet-21k has 21,841.
MAX_CLASSES = 100_000

# --- PyTorch pickles (torch.save files read with the weights-only loader) --------------------------------------
# torch.save writes every zip entry uncompressed, so a real archive's entries add up to its own size. A file
# re-zipped with compression may expand a few times; more than MAX_ZIP_EXPANSION times the file's size (plus
# ZIP_SLACK for small entries) is a zip bomb, refused before torch inflates anything.
MAX_ZIP_EXPANSION = 4
ZIP_SLACK = 1 * MiB
# An entry larger than ZIP_SLACK compressed at more than this ratio is a bomb too (float weights hardly compress).
MAX_ZIP_ENTRY_RATIO = 100

# --- safetensors ----------------------------------------------------------------------------------------------
# The safetensors library's own limit on the JSON header (100,000,000 bytes), kept so that reading the header
# alone and loading the file refuse the same files.
MAX_SAFETENSORS_HEADER = 100_000_000
# serde_json's nesting limit, as the safetensors library meets it: a header nested deeper is refused there.
MAX_SAFETENSORS_HEADER_DEPTH = 127


def count_text(n: int) -> str:
    """``n`` for a message: with thousands separators, or its order of magnitude where it has more digits than
    Python converts to text (a product of a card's sizes can)."""
    if n < 10**30:
        return f"{n:,}"
    return f"about 10^{int(n.bit_length() * 0.30103)}"

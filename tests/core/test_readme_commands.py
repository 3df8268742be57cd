"""Every command in README.md and in the pages under docs/ is run by a test or by CI.

The README and docs/*.md are read alike ("the pages" below); only the README holds the run and test commands.

- Each ```bash block (but the run-command and test-command blocks: CI runs the test command, test_fresh_clone.py the
  run command) runs here line by line with bash, in an empty folder holding the few files its commands name
  (`model.safetensors`, `digit.png`, a diffusers folder, a TorchScript archive), with this interpreter's bin folder
  first on PATH (the `studio` and `torchrun` scripts; in CI the venv the test command made). Afterwards the files the
  README promises are checked: the trajectory GIF it shows is the one its command makes, `--from-png` makes the same
  sample bit for bit, torchrun merges every sample.
- Each ```python block runs as a script; a fragment that uses `model` and `card` gets a small TorchScript-able model
  and its card, and the archive it saves must open.
- A bash block preceded by `<!-- run-by: tests/PATH.py -->` (a command too slow or too global to run here, such as
  a packaging build) is run by that test instead: the file must exist and hold each of the block's command lines
  word for word.
- A command in the prose (`studio ...`, `python -m ...`, `pip ...`, `torchrun ...` in backticks) must be part of a
  block that runs, be run by a test here (RUN_HERE and the scaled-down runs below), or be listed in RUN_ELSEWHERE with
  the test that runs it; a new command that is none of these fails test_every_inline_command_is_run_by_a_test.
- Every relative link in the pages reaches a file (and, with an anchor, a heading of that page), and no line of them
  runs past 120 characters, but for the run and test commands: one line each, as CI and the fresh-clone test read
  them and as a reader pastes them.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
THIS_FILE = "tests/core/test_readme_commands.py"
RUN_MARKER, TEST_MARKER = "<!-- run-command -->", "<!-- test-command -->"
GIF_LIMIT_BYTES = 1_500_000
LINE_TIMEOUT_S = 420
LINE_LIMIT = 120

# Commands in the pages' prose that a test here runs as they are written (from the repository root).
RUN_HERE = [
    "studio --help",
    "studio sample --help",
    "studio train --help",
    "studio info --json resources/toy2d-mlp.safetensors",
]

# Commands in the pages' prose that another test runs: command -> (test file, strings that file must contain to
# show it runs that command with those flags). Placeholders (PATH, CHECKPOINT, IMAGE) stand for any such argument.
RUN_ELSEWHERE: dict[str, tuple[str, list[str]]] = {
    "studio": ("tests/gui/test_app.py", ["app.main("]),
    "studio grid": ("tests/core/test_cli_grid.py", ['run_studio("grid"']),
    "studio sample --branch-from RUN_DIR --at-step K": (
        "tests/core/test_cli_branch.py", ['run_studio("sample", "--branch-from", parent, "--at-step"']),
    "studio grid --x sampler=ddim,ddpm,heun --y steps=5,10,20 --class 3": (
        "tests/core/test_cli_grid.py", ["def test_the_readmes_grid_command_runs_as_written"]),
    "torchrun --nproc_per_node N -m studio study ...": ("tests/core/test_study.py",
                                                        ['"torch.distributed.run"', '"study"']),
    "python -m studio": ("tests/gui/test_app.py", ["def test_python_dash_m_studio_opens_the_default_model",
                                                   'runpy.run_module("studio"']),
    "studio PATH": ("tests/gui/test_app.py", ["app.main([str(path)])"]),
    "studio my-toy2d.safetensors": ("tests/gui/test_app.py", ["app.main([str(path)])"]),
    "studio sample.png": ("tests/gui/test_recipes.py", ["def test_studio_with_a_png_opens_its_model_and_settings"]),
    "studio sample --from-png sample.png": ("tests/core/test_cli_sample.py", ['"--from-png"']),
    "studio sample --trajectory": ("tests/core/test_cli_sample.py", ['"--trajectory"']),
    "studio info PATH": ("tests/core/test_checkpoint_info.py", ['main(["info", str(path)])']),
    "studio info CHECKPOINT": ("tests/core/test_checkpoint_info.py", ['main(["info", str(path)])']),
    "studio info --card-only": ("tests/hostile/test_trust.py", ['run_studio("info", "--card-only", path)']),
    "studio invert IMAGE": ("tests/core/test_cli_invert.py", ['run_studio("invert"']),
    "studio train --data digits|toy2d|FOLDER --output model.safetensors": (
        "tests/core/test_train.py",
        ['studio_main(["train", "--data", "toy2d"', "def test_image_folder_with_class_subfolders",
         'tiny_recipe("digits"']),
    "python -m studio.bench": ("tests/core/test_bench.py", ["from studio.bench.runner import main", '"--quick"']),
    "python -m studio.bench --sections 1": ("tests/core/test_bench.py", ["from studio.bench.runner import main",
                                                                    "\"--sections\""]),
    "python -m studio.bench --sections 3": ("tests/gui/test_bench_window.py",
                                            ['main(["--quick", "--sections", "3,6"']),
    "python -m studio.bench --sections 8 --process-ddpm-steps 100 --repeats 3": (
        "tests/core/test_bench.py", ["from studio.bench.runner import main", '"--sections", "8", "--process-ddpm-steps"']),
    "python -m studio.bench.step_anatomy": ("tests/core/test_bench.py", ["from studio.bench.step_anatomy import",
                                                                        'main(["--rounds", "1"']),
    "studio study": ("tests/core/test_study.py", ['run_studio("study"']),
    "python -m studio.bench.model_swaps": ("tests/gui/test_bench_window.py",
                                           ["from studio.bench import model_swaps", '"--swaps", "2"']),
    "python -m studio.bench.network_modes": ("tests/core/test_network_auto.py",
                                             ["from studio.bench.network_modes import main", '"--rounds", "1"']),
    "python -m studio.train.quality": (THIS_FILE, ["def test_quality_command_runs_scaled_down", '"--json"']),
    "python -m studio.train.recipes digits toy2d digits-classifier shapes": (
        THIS_FILE, ["def test_recipes_command_retrains_the_bundled_models_scaled_down"]),
    "pip install -e '.[train]'": ("tests/core/test_fresh_clone.py", ["pip install -e '.[train]'"]),
    "pip install -e '.[diffusers]'": ("tests/core/test_fresh_clone.py", ["pip install -e '.[diffusers]'"]),
    "pip install -e '.[guided]'": ("tests/core/test_fresh_clone.py", ["pip install -e '.[guided]'"]),
}

# Commands that only a machine with a CUDA GPU runs (none here): docs/gpu-checks.md lists them for whoever has one.
# command -> (file, strings it must hold) pairs: the tests, bench rows and code paths the page says each one checks.
GPU_PAGE = "docs/gpu-checks.md"
RUN_ON_A_GPU: dict[str, list[tuple[str, list[str]]]] = {
    "python -m pytest tests/core/test_cuda_graphs.py tests/core/test_device_previews.py tests/core/test_step_reuse.py "
    "-q -rs": [
        ("tests/core/test_cuda_graphs.py", ["def test_on_a_gpu_the_graph_matches_the_plain_network",
                                            "def test_without_cuda_the_mode_falls_back_to_plain_and_says_why"]),
        ("tests/core/test_device_previews.py", ["def test_side_stream_frames_equal_the_host_previews"]),
        ("tests/core/test_step_reuse.py", ["def test_on_a_gpu_labels_found_good_are_read_again_only_once_written"])],
    "python -m studio.bench --sections 7": [
        ("studio/bench/section_gpu.py", ["PREVIEW_GOAL = 1.05", "run with side-stream previews / headless",
                                         "engine float16 / float32", "engine (cuda_graph network) / bare loop"])],
    "studio sample --device cuda --dtype float16 --noise-device device --num-samples 8 --out gpu-half": [
        ("studio/commands/sample.py", ['"--dtype"', '"--noise-device"'])],
    "torchrun --standalone --nproc_per_node 2 -m studio sample --device cuda --num-samples 7 --batch 3 "
    "--model-batch 3 --class cycle --seed 21 --out gpu-two": [
        ("studio/commands/distributed.py", ['backend = "nccl" if device.startswith("cuda")']),
        ("tests/core/test_distributed_sample.py", ["def test_two_processes_write_the_files_one_process_writes"])],
    "studio sample --device cuda --num-samples 7 --batch 3 --model-batch 3 --class cycle --seed 21 --out gpu-one": [
        ("tests/core/test_distributed_sample.py", ["def test_two_processes_write_the_files_one_process_writes"])],
}

COMMAND_START = re.compile(r"^(studio|python3?|torchrun|pip|pipx|bash|sh|\S+\.sh)(\s|$)")
RUN_BY = re.compile(r"^<!--\s*run-by:\s*(\S+)\s*-->$")

# sklearn's first "3" (8x8, 0..16): the picture `studio invert digit.png` inverts.
DIGIT_3 = [[0, 2, 12, 15, 14, 4, 0, 0], [0, 6, 13, 6, 11, 12, 0, 0], [0, 0, 0, 0, 12, 9, 0, 0],
           [0, 0, 4, 14, 15, 4, 0, 0], [0, 0, 1, 6, 12, 13, 1, 0], [0, 0, 0, 0, 3, 15, 6, 0],
           [0, 3, 9, 5, 11, 14, 2, 0], [0, 3, 14, 16, 12, 3, 0, 0]]

# Stands for "your model" and "its card" in a fragment that uses them (the TorchScript example).
PYTHON_PRELUDE = '''\
import json

import torch


class _ReadmeModel(torch.nn.Module):
    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return 0.5 * x * (t.float().reshape(-1, 1, 1, 1) / 1000.0)


model = _ReadmeModel()
card = {"name": "readme-model", "data_kind": "image", "data_shape": [1, 8, 8], "num_train_timesteps": 100}
# ---- the README block ----
'''

PYTHON_EPILOGUE = '''
# ---- after the README block: an archive it saved must open ----
import os as _os

if _os.path.exists("model.pt"):
    from studio.core.checkpoints import open_checkpoint as _open

    _card = _open("model.pt", trust_code=True).card
    assert _card.format == "torchscript", _card.format
    print("opened model.pt:", _card.name)
'''


# --- reading the pages ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Block:
    lang: str
    text: str
    line: int        # of the opening fence, 1-based
    heading: str
    marker: str | None   # the run-command or test-command marker
    run_by: str | None   # the test file a <!-- run-by: ... --> marker names
    page: str = "README.md"   # the page it is in, relative to the repository root

    @property
    def id(self) -> str:
        slug = re.sub(r"[^a-z0-9]+", "-", self.heading.lower()).strip("-")
        return f"{Path(self.page).stem}-line{self.line}-{slug}"

    @property
    def where(self) -> str:
        return f"{self.page} line {self.line}"


def readme_blocks(text: str, page: str = "README.md") -> list[Block]:
    lines = text.splitlines()
    blocks, heading, i = [], "", 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
        fence = re.match(r"^\s*```(\S*)\s*$", line)
        if fence:
            start, body = i, []
            i += 1
            while i < len(lines) and not re.match(r"^\s*```\s*$", lines[i]):
                body.append(lines[i])
                i += 1
            before = [x.strip() for x in lines[:start] if x.strip()]
            last = before[-1] if before else ""
            marker = last if last in (RUN_MARKER, TEST_MARKER) else None
            run_by = RUN_BY.match(last).group(1) if RUN_BY.match(last) else None
            blocks.append(Block(fence.group(1), textwrap.dedent("\n".join(body)), start + 1, heading, marker, run_by,
                                page))
        i += 1
    return blocks


def prose(text: str) -> str:
    """A page without its code blocks and HTML comments (neither shows as prose)."""
    text = re.sub(r"<!--.*?-->", "", text, flags=re.S)
    return re.sub(r"^\s*```.*?^\s*```[ \t]*$", "", text, flags=re.S | re.M)


def inline_commands(text: str) -> list[str]:
    """Backticked commands in the prose; a code span may run over a line break, which reads as a space."""
    spans = (" ".join(span.split()) for span in re.findall(r"`([^`]+)`", prose(text)))
    return sorted({span for span in spans if COMMAND_START.match(span)})


def logical_lines(script: str) -> list[str]:
    """Command lines of a bash block: lines ending in a backslash joined to the next; blank lines and comments out
    (bash itself drops a comment at the end of a line)."""
    lines, pending = [], ""
    for raw in script.splitlines():
        if raw.rstrip().endswith("\\"):
            pending += raw.rstrip()[:-1] + " "
            continue
        line = (pending + (raw.strip() if pending else raw)).strip()
        pending = ""
        if line and not line.startswith("#"):
            lines.append(line)
    if pending.strip():
        lines.append(pending.strip())
    return lines


def marked_command(text: str, marker: str) -> str:
    """The bash block under ``marker`` as .ci/run extracts it: the first ```bash fence after the marker."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == marker)
    fence = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("```bash"))
    end = next(i for i in range(fence + 1, len(lines)) if lines[i].startswith("```"))
    return "\n".join(lines[fence + 1:end])


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation out, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(text: str) -> set[str]:
    return {slug(line.lstrip("#")) for line in prose(text).splitlines() if line.startswith("#")}


PAGES = [README, *sorted(DOCS.glob("*.md"))]
TEXTS = {page.relative_to(ROOT).as_posix(): page.read_text(encoding="utf-8") for page in PAGES}
README_TEXT = TEXTS["README.md"]
BLOCKS = [block for page, text in TEXTS.items() for block in readme_blocks(text, page)]
# every command in the prose of every page: command -> the pages that name it
INLINE: dict[str, list[str]] = {}
for _page, _text in TEXTS.items():
    for _command in inline_commands(_text):
        INLINE.setdefault(_command, []).append(_page)
SHELL = ("bash", "sh", "shell", "console")
BASH_BLOCKS = [b for b in BLOCKS if b.lang in SHELL and b.marker is None and b.run_by is None]
RUN_BY_BLOCKS = [b for b in BLOCKS if b.run_by is not None]
PYTHON_BLOCKS = [b for b in BLOCKS if b.lang == "python"]


# --- running commands ----------------------------------------------------------------------------------------------
def command_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env.setdefault("QT_QPA_PLATFORM", "offscreen")
    # one torch thread per process: on a busy shared CPU two threads spin-wait on each other and run several times
    # slower (see docs/limits.md); the results do not change
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def run_line(line: str, cwd: Path) -> subprocess.CompletedProcess:
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", line], cwd=cwd, env=command_env(),
                          capture_output=True, text=True, timeout=LINE_TIMEOUT_S)
    assert done.returncode == 0, (f"command from the pages failed (exit {done.returncode}) in {cwd}:\n  {line}\n"
                                  f"--- stdout (end) ---\n{done.stdout[-3000:]}\n--- stderr (end) ---\n"
                                  f"{done.stderr[-3000:]}")
    return done


def write_digit_png(path: Path) -> None:
    from PIL import Image

    pixels = np.clip(np.array(DIGIT_3, dtype=np.float64) * 16, 0, 255).astype(np.uint8)
    Image.fromarray(pixels, "L").save(path)


def write_diffusers_pipeline(folder: Path) -> None:
    diffusers = pytest.importorskip("diffusers", reason="the diffusers example needs diffusers ('.[dev]')")
    import torch

    torch.manual_seed(0)
    unet = diffusers.UNet2DModel(sample_size=8, in_channels=1, out_channels=1, layers_per_block=1,
                                 block_out_channels=(8, 16), down_block_types=("DownBlock2D", "AttnDownBlock2D"),
                                 up_block_types=("AttnUpBlock2D", "UpBlock2D"), norm_num_groups=4,
                                 attention_head_dim=4)
    scheduler = diffusers.DDPMScheduler(num_train_timesteps=100, beta_schedule="squaredcos_cap_v2")
    diffusers.DDPMPipeline(unet=unet, scheduler=scheduler).save_pretrained(folder)


def write_torchscript(path: Path) -> None:
    import checkpoint_makers as make

    module = make.randomise(make.ScriptedImageModel(channels=1, num_classes=1))
    card = {"name": "my-model", "data_kind": "image", "data_shape": [1, 8, 8], "prediction_type": "sample",
            "num_train_timesteps": 100}
    make.torchscript_file(path.parent, module, card, name=path.name)


def write_guided(folder: Path) -> None:
    """The README's guided-diffusion example: a small UNet made by the library, saved bare, its flags beside it."""
    pytest.importorskip("guided_diffusion", reason="the guided-diffusion example needs guided-diffusion-sdk ('.[dev]')")
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        from guided_diffusion.script_util import create_model
    torch.manual_seed(0)
    unet = create_model(32, 32, 1, channel_mult="1,2", learn_sigma=True, attention_resolutions="16", num_heads=4)
    torch.save(unet.state_dict(), folder / "my_guided.pt")
    (folder / "my_guided.json").write_text(json.dumps({"image_size": 32, "num_heads": 4, "noise_schedule": "cosine",
                                                       "diffusion_steps": 100}))


def write_ddpm_pytorch(folder: Path) -> None:
    """The README's denoising-diffusion-pytorch example: a tiny Unet's GaussianDiffusion and its EMA, saved by the
    library's own Trainer.save as results/model-10.pt (the block writes the sidecar itself)."""
    from types import SimpleNamespace

    from studio.core.checkpoints.ddpm_pytorch_library import _import

    try:
        library = _import()
    except ImportError:
        pytest.skip("the denoising-diffusion-pytorch example needs the package ('.[dev]')")
    import torch
    from ema_pytorch import EMA

    torch.manual_seed(0)
    diffusion = library.GaussianDiffusion(library.Unet(dim=8, dim_mults=(1, 2)), image_size=16, timesteps=50)
    (folder / "results").mkdir()
    accelerator = SimpleNamespace(is_local_main_process=True, get_state_dict=lambda m: m.state_dict(), scaler=None)
    optimizer = torch.optim.Adam(diffusion.parameters())
    library.Trainer.save(SimpleNamespace(accelerator=accelerator, step=10, model=diffusion, opt=optimizer,
                                         ema=EMA(diffusion), results_folder=folder / "results"), 10)


def prepare(folder: Path, script: str) -> None:
    """The files a block's commands name and do not make themselves."""
    (folder / "docs").mkdir()
    if "model.safetensors" in script:
        shutil.copyfile(ROOT / "resources" / "toy2d-mlp.safetensors", folder / "model.safetensors")
    if "digit.png" in script:
        write_digit_png(folder / "digit.png")
    if "my-ddpm" in script:
        write_diffusers_pipeline(folder / "my-ddpm")
    if "my-model.pt" in script:
        write_torchscript(folder / "my-model.pt")
    if "my_guided.pt" in script:
        write_guided(folder)
    if "results/model-10.pt" in script:
        write_ddpm_pytorch(folder)


def gif_frames(path: Path) -> tuple[tuple[int, int], list[int], np.ndarray]:
    from PIL import Image

    with Image.open(path) as image:
        frames, durations = [], []
        for k in range(image.n_frames):
            image.seek(k)
            durations.append(image.info.get("duration"))
            frames.append(np.asarray(image.convert("RGB"), dtype=np.int16))
        return image.size, durations, np.stack(frames)


# --- what the blocks promise ---------------------------------------------------------------------------------------
def check_outputs(folder: Path, script: str) -> None:
    if "docs/trajectory.gif" in script:
        # the GIF the README shows is the one its command makes, every pixel equal on a CPU with the fingerprint
        # of the machine that made it (the README: with --network plain; the default auto's traced network moved 1
        # pixel in 600,000); on another CPU, float rounding moves a few pixels (12 in 2.4 million, measured)
        from cpu_fingerprint import cpu_fingerprint

        assert "--network plain" in script
        size, durations, frames = gif_frames(folder / "docs" / "trajectory.gif")
        shown_size, shown_durations, shown = gif_frames(ROOT / "docs" / "trajectory.gif")
        assert (size, durations) == (shown_size, shown_durations)
        assert frames.shape == shown.shape
        differ = (frames != shown).any(axis=-1)
        made_on = json.loads((ROOT / "docs" / "trajectory.gif.json").read_text())["made_on"]
        if made_on == cpu_fingerprint():
            assert np.array_equal(frames, shown), f"{int(differ.sum())} of {differ.size} pixels differ"
        else:
            assert differ.mean() <= 1e-4, f"{int(differ.sum())} of {differ.size} pixels differ on another CPU"
    if "--from-png out/sample_00003.png --out again" in script:
        batch, again = np.load(folder / "out" / "samples.npy"), np.load(folder / "again" / "samples.npy")
        assert again.shape == (1, *batch.shape[1:]) and np.array_equal(again[0], batch[3])
    if "torchrun" in script:
        samples = np.load(folder / "out" / "samples.npy")
        assert samples.shape[0] == 256 and len(list((folder / "out").glob("sample_*.png"))) == 256
        assert not (folder / "out" / ".shards").exists()
        assert "distributed" in json.loads((folder / "out" / "run.json").read_text())
    if "studio invert" in script:
        for name in ("x_T.npy", "reconstruction.npy", "reconstruction.png", "inversion.json"):
            assert (folder / "inv" / name).is_file(), name
    if "studio train" in script:
        samples = np.load(folder / "my-toy2d-out" / "samples.npy")
        assert samples.shape == (512, 2) and np.isfinite(samples).all()
        assert (folder / "my-toy2d-out" / "trajectory.gif").is_file()
    if "my-guided-out" in script:
        samples = np.load(folder / "my-guided-out" / "samples.npy")
        assert samples.shape == (4, 3, 32, 32) and np.isfinite(samples).all()
    if "my-lucid-out" in script:
        samples = np.load(folder / "my-lucid-out" / "samples.npy")
        assert samples.shape == (4, 3, 16, 16) and np.isfinite(samples).all()
    for name in ("my-ddpm-out", "my-model-out"):
        if name in script:
            samples = np.load(folder / name / "samples.npy")
            assert samples.shape[1:] == (1, 8, 8) and np.isfinite(samples).all()


# --- fast checks ---------------------------------------------------------------------------------------------------
def test_the_run_and_test_commands_are_where_ci_finds_them():
    for marker in (RUN_MARKER, TEST_MARKER):
        assert README_TEXT.count(marker) == 1, marker
        command = marked_command(README_TEXT, marker)
        assert len(logical_lines(command)) == 1, command
        assert command.startswith("python3 -m venv .venv && . .venv/bin/activate && pip install"), command
    assert marked_command(README_TEXT, RUN_MARKER).endswith("studio sample --out out")
    # the whole suite (no path, no -k, no -m: nothing left out), one worker per core
    assert marked_command(README_TEXT, TEST_MARKER).endswith("python -m pytest -n auto --dist loadfile --no-loadscope-reorder")
    assert sorted(b.marker for b in BLOCKS if b.marker) == sorted([RUN_MARKER, TEST_MARKER])
    assert all(b.page == "README.md" for b in BLOCKS if b.marker), "CI reads the run and test commands in README.md"


def test_the_readme_has_blocks_to_run():
    assert len(BASH_BLOCKS) >= 5 and len(PYTHON_BLOCKS) >= 2
    assert any(block.page == "README.md" for block in BASH_BLOCKS), "the README's tour runs no command"
    assert all(logical_lines(block.text) for block in BASH_BLOCKS)


def test_every_inline_command_is_run_by_a_test():
    executed = [" ".join(block.text.split()) for block in BLOCKS if block.lang in SHELL]  # incl. CI's, run-by
    unaccounted, stale = [], []
    for command, pages in sorted(INLINE.items()):
        if command in RUN_HERE or command in RUN_ON_A_GPU or any(command in text for text in executed):
            continue
        if command not in RUN_ELSEWHERE:
            unaccounted.append(f"{command} (in {', '.join(pages)})")
            continue
        test_file, needles = RUN_ELSEWHERE[command]
        path = ROOT / test_file
        source = path.read_text(encoding="utf-8") if path.is_file() else ""
        missing = [needle for needle in needles if needle not in source]
        if missing:
            stale.append(f"{command!r}: {test_file} lacks {missing}")
    assert not unaccounted, ("commands in the pages that no test runs; run them in a block, add them to RUN_HERE, or "
                             f"map them in RUN_ELSEWHERE to the test that runs them: {unaccounted}")
    assert not stale, "RUN_ELSEWHERE points at tests that no longer run these commands:\n" + "\n".join(stale)


def test_the_command_lists_name_no_command_the_readme_dropped():
    mentioned = set(INLINE)
    assert not set(RUN_HERE) - mentioned, set(RUN_HERE) - mentioned
    assert not set(RUN_ELSEWHERE) - mentioned, set(RUN_ELSEWHERE) - mentioned
    assert not set(RUN_ON_A_GPU) - mentioned, set(RUN_ON_A_GPU) - mentioned
    # test_fresh_clone.py finds these in the README's raw text: on one line, not split over two
    fresh_clone = [c for c, (test_file, _) in RUN_ELSEWHERE.items() if test_file == "tests/core/test_fresh_clone.py"]
    assert fresh_clone and all(command in README_TEXT for command in fresh_clone), fresh_clone


def test_the_gpu_checks_are_on_one_page_and_name_what_exists():
    """Each command that only a GPU runs is on docs/gpu-checks.md (and no other page), and the tests, bench rows and
    code it is said to check are still there."""
    pages = {command: INLINE.get(command) for command in RUN_ON_A_GPU}
    assert pages == dict.fromkeys(RUN_ON_A_GPU, [GPU_PAGE]), pages
    stale = [f"{command!r}: {path} lacks {needle!r}" for command, checks in RUN_ON_A_GPU.items()
             for path, needles in checks for needle in needles
             if not (ROOT / path).is_file() or needle not in (ROOT / path).read_text(encoding="utf-8")]
    assert not stale, "\n".join(stale)


def test_images_exist_and_the_gif_is_small_and_animated():
    from PIL import Image

    images = re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", README_TEXT)
    assert "docs/screenshot.png" in images and "docs/trajectory.gif" in images
    for page, text in TEXTS.items():
        for image in re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", prose(text)):
            assert ((ROOT / page).parent / image).is_file(), f"{page}: {image}"
    gif = ROOT / "docs" / "trajectory.gif"
    assert gif.stat().st_size < GIF_LIMIT_BYTES
    with Image.open(gif) as opened:
        assert opened.format == "GIF" and opened.n_frames > 10


def test_links_inside_the_readme_reach_a_heading():
    """Links to a heading of the same page (`(#anchor)`), in the README and in every page under docs/."""
    links = {page: set(re.findall(r"\]\(#([^)]+)\)", prose(text))) for page, text in TEXTS.items()}
    assert links["README.md"]
    broken = {page: found - anchors(TEXTS[page]) for page, found in links.items() if found - anchors(TEXTS[page])}
    assert not broken, broken


def test_relative_links_reach_a_file_and_a_heading():
    """Every link that is not to the web, from the README or a page under docs/, to a file that exists; with an
    anchor, to a heading of that page."""
    checked, broken = 0, []
    for page, text in TEXTS.items():
        for target in re.findall(r"\]\(([^)\s]+)\)", prose(text)):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):   # https:, mailto:, same page
                continue
            path, _, anchor = target.partition("#")
            resolved = ((ROOT / page).parent / path).resolve()
            checked += 1
            if not resolved.exists():
                broken.append(f"{page}: {target} (no such file)")
            elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved.read_text(encoding="utf-8")):
                broken.append(f"{page}: {target} (no such heading in {path})")
    assert checked and not broken, "\n".join(broken)


def test_every_docs_page_is_linked_from_the_readme():
    linked = {((ROOT / target.partition("#")[0]).resolve()) for target in re.findall(r"\]\(([^)\s#]+)", README_TEXT)}
    unlinked = [page for page in PAGES[1:] if page.resolve() not in linked]
    # measurement notes are reached from docs/performance.md, not from the README
    unlinked = [page for page in unlinked if page.name != "performance-notes.md"]
    assert not unlinked, unlinked


def test_no_line_is_longer_than_120_characters():
    # the run and test commands stay one line each: CI and test_fresh_clone.py read them so, and a reader pastes them
    whole = {line for marker in (RUN_MARKER, TEST_MARKER) for line in marked_command(README_TEXT, marker).splitlines()}
    long = [f"{page} line {number}: {len(line)} characters"
            for page, text in TEXTS.items() for number, line in enumerate(text.splitlines(), 1)
            if len(line) > LINE_LIMIT and not (page == "README.md" and line in whole)]
    assert not long, "\n".join(long)


def test_extras_the_readme_names_exist():
    tomllib = pytest.importorskip("tomllib")
    extras = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    named = set()
    for text in TEXTS.values():
        named |= set(re.findall(r"\.\[([\w,-]+)\]", text)) | set(re.findall(r"the `([\w-]+)` extra", text))
    named = {part for name in named for part in name.split(",")}
    assert named and not named - extras, named - extras


def test_blocks_run_by_other_tests_are_in_those_tests():
    for block in RUN_BY_BLOCKS:
        assert block.lang in SHELL, f"{block.where}: a run-by marker stands before a {block.lang} block"
        path = ROOT / block.run_by
        assert path.is_file(), f"{block.where}: run-by names {block.run_by}, which does not exist"
        source = path.read_text(encoding="utf-8")
        for line in logical_lines(block.text):
            command = line.split(" #")[0].strip()
            assert command in source, f"{block.run_by} does not run {command!r} ({block.where})"


def test_every_shell_block_is_run_somewhere():
    for block in BLOCKS:
        if block.lang in SHELL:
            assert block in BASH_BLOCKS or block.marker or block.run_by, block
        else:
            assert block.lang in ("python", "json", ""), f"{block.where}: who runs a {block.lang!r} block?"


def test_json_examples_parse():
    for block in BLOCKS:
        if block.lang == "json":
            json.loads(block.text)


# --- running the pages ---------------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("block", BASH_BLOCKS, ids=[b.id for b in BASH_BLOCKS])
def test_bash_block_runs(block, tmp_path):
    prepare(tmp_path, block.text)
    for line in logical_lines(block.text):
        run_line(line, tmp_path)
    check_outputs(tmp_path, block.text)


@pytest.mark.slow
@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=[b.id for b in PYTHON_BLOCKS])
def test_python_block_runs(block, tmp_path):
    script = tmp_path / "readme_block.py"
    script.write_text(PYTHON_PRELUDE + block.text + "\n" + PYTHON_EPILOGUE)
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=command_env(), capture_output=True,
                          text=True, timeout=LINE_TIMEOUT_S)
    assert done.returncode == 0, f"python block at {block.where} failed:\n{done.stderr[-3000:]}"
    if "torch.jit.save" in block.text:
        assert "opened model.pt: readme-model" in done.stdout


@pytest.mark.slow
@pytest.mark.parametrize("command", RUN_HERE)
def test_inline_command_runs(command):
    done = run_line(command, ROOT)
    assert done.stdout.strip()
    if "--json" in command:
        assert json.loads(done.stdout)["name"]


@pytest.mark.slow
def test_quality_command_runs_scaled_down(tmp_path):
    """`python -m studio.train.quality --json PATH` with 10 digits, 6 shapes and 50 points instead of 1000, 600 and
    2000 (and a briefly trained shapes judge)."""
    pytest.importorskip("sklearn", reason="the quality measurement needs scikit-learn ('.[train]')")
    run_line(f"{shlex.quote(sys.executable)} -m studio.train.quality --samples-per-class 1 --toy-samples 50 "
             "--judge-steps 20 --no-guided --json quality.json", tmp_path)
    figures = json.loads((tmp_path / "quality.json").read_text())
    assert {"digits", "toy2d", "reference_svc_accuracy", "shapes", "shapes_judge_accuracy"} <= set(figures)


@pytest.mark.slow
def test_recipes_command_retrains_the_bundled_models_scaled_down(tmp_path, monkeypatch):
    """The pages' `python -m studio.train.recipes ...` with 3 optimisation steps per model instead of thousands,
    writing into a scratch resources folder: each recipe runs `studio train` in its own interpreter."""
    pytest.importorskip("sklearn", reason="the digits recipes need scikit-learn ('.[train]')")
    from studio.core.checkpoints import read_card
    from studio.core.bundled import bundled_by_name
    from studio.train import recipes

    command = next(c for c in INLINE if c.startswith("python -m studio.train.recipes"))
    names = command.split()[3:]
    assert names and set(names) <= set(recipes.RECIPES)
    small = {}
    for name, args in recipes.RECIPES.items():
        args = list(args)
        for flag in ("--steps", "--checkpoint-every"):
            args[args.index(flag) + 1] = "3"
        small[name] = args
    monkeypatch.setattr(recipes, "RECIPES", small)
    monkeypatch.setattr(recipes, "resources_dir", lambda: tmp_path / "resources")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "resources").mkdir()
    assert recipes.main(names) == 0
    for name in names:
        card = read_card(tmp_path / "resources" / bundled_by_name(name).filename)
        assert card.format == "studio" and ": 3 steps," in card.description, card.description
    # a recipe is reproducible: run again from nothing (another folder, no training state to resume), the same
    # seed gives the same weights bit for bit (the two recipes with random class dropout and the most steps' worth
    # of randomness per step; the others share their code path)
    again = tmp_path / "again"
    (again / "resources").mkdir(parents=True)
    monkeypatch.setattr(recipes, "resources_dir", lambda: again / "resources")
    monkeypatch.chdir(again)
    assert recipes.main(["toy2d", "digits"]) == 0
    from safetensors.numpy import load_file

    for name in ("toy2d", "digits"):
        first = load_file(tmp_path / "resources" / bundled_by_name(name).filename)
        second = load_file(again / "resources" / bundled_by_name(name).filename)
        assert first.keys() == second.keys() and len(first) > 4
        for key in first:
            assert np.array_equal(first[key], second[key]), (name, key)

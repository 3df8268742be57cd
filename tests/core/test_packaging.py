"""Packaging: entry points, the package list, the .desktop and AppStream files, the icons, the PyInstaller recipe,
and a wheel that carries the bundled models and icons. The validators run where they are installed."""

from __future__ import annotations

import ast
import configparser
import importlib.util
import shutil
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import pytest

import studio
from studio.core import bundled

try:
    import tomllib
except ModuleNotFoundError:   # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[2]
PACKAGING = ROOT / "packaging"
ICONS = ROOT / "resources" / "icons"
APP_ID = "io.github.sampling_studio.SamplingStudio"
DESKTOP = PACKAGING / f"{APP_ID}.desktop"
METAINFO = PACKAGING / f"{APP_ID}.metainfo.xml"
ICON_NAME = "sampling-studio"
ICON_SIZES = (16, 32, 48, 64, 128, 256, 512)


@pytest.fixture(scope="module")
def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def desktop_entry() -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None, delimiters=("=",))
    parser.optionxform = str   # keys are case-sensitive
    parser.read(DESKTOP, encoding="utf-8")
    return parser["Desktop Entry"]


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()[:24]
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


def test_entry_points_and_extras(pyproject):
    project = pyproject["project"]
    assert project["scripts"]["studio"] == "studio.cli:main"
    assert project["gui-scripts"]["sampling-studio"] == "studio.gui.app:main"
    for extra in ("diffusers", "train", "dev", "video", "packaging"):
        assert extra in project["optional-dependencies"], extra


def test_the_package_list_names_every_package_on_disk(pyproject):
    """pyproject lists packages explicitly (to map resources/ to studio.resources); none may be forgotten."""
    on_disk = {".".join(init.parent.relative_to(ROOT).parts) for init in (ROOT / "studio").rglob("__init__.py")}
    listed = set(pyproject["tool"]["setuptools"]["packages"])
    assert listed == on_disk | {"studio.resources", "studio.resources.icons"}
    assert pyproject["tool"]["setuptools"]["package-dir"]["studio.resources"] == "resources"


def test_resources_are_found_in_the_source_tree_and_inside_an_installed_package(tmp_path, monkeypatch):
    assert bundled.resources_dir() == ROOT / "resources"
    installed = tmp_path / "site-packages" / "studio"
    (installed / "core").mkdir(parents=True)
    (installed / "resources").mkdir()
    monkeypatch.setattr(bundled, "__file__", str(installed / "core" / "bundled.py"))
    assert bundled.resources_dir() == installed / "resources"


def test_desktop_file_names_the_entry_points_and_the_icon(pyproject):
    entry = desktop_entry()
    commands = set(pyproject["project"]["scripts"]) | set(pyproject["project"]["gui-scripts"])
    assert entry["Type"] == "Application" and entry["Name"] == "Sampling Studio"
    assert entry["Exec"].split()[0] in commands
    assert entry["TryExec"] == entry["Exec"].split()[0]
    assert entry["Icon"] == ICON_NAME
    assert entry["Categories"].endswith(";") and entry["Terminal"] == "false"


def test_metainfo_matches_the_desktop_file_the_version_and_the_license(pyproject):
    root = ET.parse(METAINFO).getroot()
    assert root.tag == "component" and root.get("type") == "desktop-application"
    assert root.findtext("id") == APP_ID
    assert root.find("launchable").text == DESKTOP.name and root.find("launchable").get("type") == "desktop-id"
    assert root.findtext("project_license") == "MIT" == pyproject["project"]["license"]
    assert root.findtext("metadata_license") == "CC0-1.0"
    assert root.findtext("icon") == ICON_NAME
    assert [r.get("version") for r in root.iter("release")][0] == studio.__version__
    assert root.find("content_rating") is not None
    binaries = {b.text for b in root.iter("binary")}
    assert binaries == set(pyproject["project"]["scripts"]) | set(pyproject["project"]["gui-scripts"])
    image = root.find("screenshots/screenshot/image").text
    assert image.startswith("https://") and image.endswith("/docs/screenshot.png")
    assert (ROOT / "docs" / "screenshot.png").is_file()


def test_icons_exist_at_every_size():
    svg = ICONS / f"{ICON_NAME}.svg"
    assert ET.parse(svg).getroot().tag.endswith("svg")
    for size in ICON_SIZES:
        assert png_size(ICONS / f"{ICON_NAME}-{size}.png") == (size, size)


def test_the_icon_svg_is_what_the_design_script_writes():
    spec = importlib.util.spec_from_file_location("design_icon", PACKAGING / "design_icon.py")
    design = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(design)
    assert design.svg() == (ICONS / f"{ICON_NAME}.svg").read_text(encoding="utf-8")


def test_pyinstaller_recipe_parses_and_bundles_models_and_icons():
    source = (PACKAGING / "studio.spec").read_text(encoding="utf-8")
    ast.parse(source)
    for needed in ('"studio/resources"', '"studio/resources/icons"', "*.safetensors", "launcher.py",
                   '"diffusers"', '"sklearn"', '"tests"', 'collect_submodules("studio"'):
        assert needed in source, needed
    assert (PACKAGING / "launcher.py").is_file()
    for script in ("build.sh", "smoke_test.sh", "install-desktop.sh"):
        path = PACKAGING / script
        assert path.read_text().startswith("#!/usr/bin/env bash") and path.stat().st_mode & 0o111, script


@pytest.mark.skipif(shutil.which("desktop-file-validate") is None, reason="desktop-file-utils is not installed")
def test_desktop_file_validates():
    result = subprocess.run(["desktop-file-validate", str(DESKTOP)], capture_output=True, text=True)
    assert result.returncode == 0 and "error" not in result.stdout, result.stdout + result.stderr


@pytest.mark.skipif(shutil.which("appstreamcli") is None, reason="appstream is not installed")
def test_metainfo_validates():
    result = subprocess.run(["appstreamcli", "validate", "--no-net", str(METAINFO)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_install_desktop_puts_files_where_desktops_look(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = {"HOME": str(home), "PATH": "/usr/bin:/bin"}
    subprocess.run(["bash", str(PACKAGING / "install-desktop.sh")], env=env, check=True, capture_output=True)
    data = home / ".local" / "share"
    assert (data / "applications" / DESKTOP.name).read_text() == DESKTOP.read_text()
    assert (data / "metainfo" / METAINFO.name).is_file()
    assert (data / "icons" / "hicolor" / "scalable" / "apps" / f"{ICON_NAME}.svg").is_file()
    for size in ICON_SIZES:
        assert png_size(data / "icons" / "hicolor" / f"{size}x{size}" / "apps" / f"{ICON_NAME}.png") == (size, size)
    app = tmp_path / "my app" / "sampling-studio"
    app.parent.mkdir()
    app.write_text("#!/bin/sh\n")
    app.chmod(0o755)
    subprocess.run(["bash", str(PACKAGING / "install-desktop.sh"), "--exec", str(app)], env=env, check=True,
                   capture_output=True)
    installed = (data / "applications" / DESKTOP.name).read_text()
    assert f'Exec="{app}" %f' in installed and f"TryExec={app}\n" in installed
    subprocess.run(["bash", str(PACKAGING / "install-desktop.sh"), "--uninstall"], env=env, check=True,
                   capture_output=True)
    assert not (data / "applications" / DESKTOP.name).exists()
    assert not list(data.rglob("*.png")) and not list(data.rglob("*.svg"))


@pytest.mark.slow
def test_the_wheel_carries_the_models_the_icons_and_both_entry_points(tmp_path):
    """Built from a copy of the tree (so the checkout gets no build/ or egg-info), without dependencies."""
    pytest.importorskip("setuptools")
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "studio", source / "studio", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "resources", source / "resources")
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                             "-w", str(tmp_path / "wheel"), str(source)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = (tmp_path / "wheel").glob("sampling_studio-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(archive.read(n).decode() for n in names if n.endswith("entry_points.txt"))
    for model in bundled.BUNDLED:
        if model.path.is_file():
            assert f"studio/resources/{model.filename}" in names
    assert f"studio/resources/icons/{ICON_NAME}.svg" in names
    for size in ICON_SIZES:
        assert f"studio/resources/icons/{ICON_NAME}-{size}.png" in names
    assert "studio/gui/smoke.py" in names and "studio/core/models/networks/unet.py" in names
    assert "[console_scripts]\nstudio = studio.cli:main" in entry_points
    assert "[gui_scripts]\nsampling-studio = studio.gui.app:main" in entry_points

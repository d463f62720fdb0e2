"""The npe2 manifest validates and every command it names can be imported."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

npe2 = pytest.importorskip("npe2")

MANIFEST = Path(__file__).resolve().parents[2] / "src" / "napari_openhcs" / "napari.yaml"


@pytest.fixture(scope="module")
def manifest():
    return npe2.PluginManifest.from_file(MANIFEST)


def test_manifest_validates(manifest) -> None:
    manifest.model_validate(manifest.model_dump())  # schema validation (raises on error)
    assert manifest.name == "napari-openhcs"


def test_manifest_is_what_the_entry_point_finds(manifest) -> None:
    found = npe2.PluginManifest.from_distribution("napari-openhcs")
    assert found.name == manifest.name
    assert {c.id for c in found.contributions.commands} == {c.id for c in manifest.contributions.commands}


@pytest.mark.parametrize("kind", ["readers", "sample_data", "widgets", "configurations"])
def test_manifest_declares(manifest, kind: str) -> None:
    assert getattr(manifest.contributions, kind)


def test_every_command_imports(manifest) -> None:
    for command in manifest.contributions.commands:
        module, _, attr = command.python_name.partition(":")
        assert callable(getattr(importlib.import_module(module), attr)), command.id


def test_configuration_defaults(manifest) -> None:
    run = manifest.contributions.configurations["run"].properties
    assert run["workers"].default == 0
    assert run["use_gpu"].enum == ["auto", "never", "always"]
    assert "output_folder" in run


def test_settings_fall_back_to_defaults_without_napari_settings(monkeypatch) -> None:
    from napari_openhcs._napari import _settings

    monkeypatch.setitem(sys.modules, "napari.settings", None)  # import fails
    assert _settings.load_settings() == _settings.RunSettings()


def test_package_import_stays_free_of_napari_and_qt() -> None:
    code = ("import sys, napari_openhcs; napari_openhcs.FunctionStep; "
            "bad = [m for m in ('napari', 'qtpy', 'magicgui', 'PyQt6') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)

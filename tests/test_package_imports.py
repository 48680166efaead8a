"""Every package imports from its own source tree and reports the version its pyproject.toml declares."""

from __future__ import annotations

import importlib
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = sorted(p.name for p in (REPO / "packages").iterdir() if (p / "pyproject.toml").is_file())


def test_the_five_packages_are_found():
    assert PACKAGES == ["captioner", "common", "critic", "rewriter", "vlm"]


@pytest.mark.parametrize("package", PACKAGES)
def test_package_imports_with_its_declared_version(package):
    module = importlib.import_module(f"vlforge.{package}")
    declared = tomllib.loads((REPO / "packages" / package / "pyproject.toml").read_text())["project"]["version"]
    assert module.__version__ == declared
    assert Path(module.__file__).resolve().parent.name == package
    assert Path(module.__file__).resolve().parents[2].name == "src"

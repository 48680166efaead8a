"""Each package's wheel works with only what it declares.

For every package: build its wheel, install it (and the wheels of the vlforge siblings it declares) into an empty
folder, then import every module of it in a fresh interpreter that sees that folder plus the third-party packages of
this environment, but none of the editable vlforge sources (``python -S`` skips the .pth files that make them
importable), with the optional extras (deepspeed, bitsandbytes) blocked so that no module needs them to import.
A package importing a sibling it does not declare fails here. A static check also requires every third-party
import of a package to come from its OWN declared requirements or extras, not from what a sibling or a
requirement pulls in.
"""

from __future__ import annotations

import ast
import importlib.metadata as md
import json
import re
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("common", "vlm", "captioner", "critic", "rewriter")
SITE_PACKAGES = sysconfig.get_paths()["purelib"]


def _requirement_names(requirements: list[str]) -> list[str]:
    return [re.split(r"[\s\[<>=!~;]", req, maxsplit=1)[0] for req in requirements]


def _declared(package: str, extras: bool = False) -> list[str]:
    """The package's dependencies (and, with ``extras``, its optional-dependency extras: modules imported only
    inside the feature that needs them, with a one-line error naming the extra when it is missing)."""
    project = tomllib.loads((ROOT / "packages" / package / "pyproject.toml").read_text())["project"]
    optional = [r for reqs in project.get("optional-dependencies", {}).values() for r in reqs] if extras else []
    return _requirement_names(project["dependencies"] + optional)


def _extras_modules() -> list[str]:
    """Top-level modules of every package's extras (blocked in the import probe)."""
    distributions = md.packages_distributions()
    extras = {_normalise(n) for p in PACKAGES for n in _declared(p, extras=True)} - {
        _normalise(n) for p in PACKAGES for n in _declared(p)}
    return sorted(m for m, owners in distributions.items() if {_normalise(o) for o in owners} & extras)


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _closure(names: list[str]) -> set[str]:
    """Distributions reachable from `names` through their installed requirements (extras included)."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = _normalise(todo.pop())
        if name in seen:
            continue
        seen.add(name)
        if name.startswith("vlforge-"):
            todo.extend(_declared(name.removeprefix("vlforge-")))
            continue
        try:
            requires = md.requires(name) or []
        except md.PackageNotFoundError:
            continue
        todo.extend(_requirement_names([r for r in requires if "extra ==" not in r]))
    return seen


def _top_level_imports(source_dir: Path) -> set[str]:
    modules: set[str] = set()
    for path in source_dir.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                modules.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
    return modules


@pytest.fixture(scope="module")
def wheels(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("wheels")
    built = {}
    for package in PACKAGES:
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                        str(out), str(ROOT / "packages" / package)], check=True, capture_output=True)
        (wheel,) = out.glob(f"vlforge_{package}-*.whl")
        built[package] = wheel
    return built


@pytest.mark.parametrize("package", PACKAGES)
def test_third_party_imports_are_declared(package):
    distributions = md.packages_distributions()
    allowed = {_normalise(n) for n in _declared(package, extras=True)}
    undeclared = {}
    for module in _top_level_imports(ROOT / "packages" / package / "src"):
        if module == "vlforge" or module in sys.stdlib_module_names:
            continue
        owners = {_normalise(d) for d in distributions.get(module, [])}
        assert owners, f"vlforge-{package} imports {module!r}, which no installed distribution provides"
        if not owners & allowed:
            undeclared[module] = sorted(owners)
    assert not undeclared, f"vlforge-{package} imports modules of undeclared distributions: {undeclared}"


@pytest.mark.parametrize("package", PACKAGES)
def test_wheel_imports_with_declared_siblings_only(package, wheels, tmp_path):
    siblings = [_normalise(n).removeprefix("vlforge-") for n in _closure(_declared(package))
                if _normalise(n).startswith("vlforge-")]
    target = tmp_path / "site"
    to_install = [str(wheels[package])] + [str(wheels[s]) for s in siblings if s != package]
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), *to_install],
                   check=True, capture_output=True)
    probe = f"""
import importlib, json, pkgutil, sys
sys.path[:0] = [{str(target)!r}, {SITE_PACKAGES!r}]
for extra in {_extras_modules()!r}:
    sys.modules[extra] = None  # an optional extra: importing vlforge must not need it
import vlforge.{package} as pkg
names = [m.name for m in pkgutil.walk_packages(pkg.__path__, "vlforge.{package}.")]
for name in names:
    importlib.import_module(name)
print(json.dumps({{"file": pkg.__file__, "modules": len(names),
                  "vlforge_paths": [p for p in __import__("vlforge").__path__]}}))
"""
    result = subprocess.run([sys.executable, "-S", "-c", probe], capture_output=True, text=True, cwd=tmp_path,
                            timeout=600)
    assert result.returncode == 0, f"vlforge-{package} wheel fails to import alone:\n{result.stderr[-3000:]}"
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["file"].startswith(str(target)), report
    assert all(p.startswith(str(target)) for p in report["vlforge_paths"]), report
    shipped = {p.relative_to(ROOT / "packages" / package / "src") for p in
               (ROOT / "packages" / package / "src").rglob("*.yaml")}
    missing = [str(p) for p in shipped if not (target / p).exists()]
    assert not missing, f"package data missing from the vlforge-{package} wheel: {missing}"

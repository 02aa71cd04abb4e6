"""The layers hold: every module is placed in one, and importing the core loads no Dagster.

The import contracts themselves are checked by `lint-imports` (pyproject.toml), which
`make test` runs before this suite.
"""

import subprocess
import sys
import tomllib

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.fast

CONTRACTS = {c["id"]: c for c in tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]}


def children(package: str) -> set[str]:
    """The modules and packages directly inside a package of the repository (dotted names)."""
    folder = REPO / package.replace(".", "/")
    modules = {f"{package}.{p.stem}" for p in folder.glob("*.py") if p.stem != "__init__"}
    return modules | {f"{package}.{p.parent.name}" for p in folder.glob("*/__init__.py")}


def layered(contract: str) -> set[str]:
    return {name.strip() for layer in CONTRACTS[contract]["layers"] for name in layer.split("|")}


def imported_after(statement: str, names: list[str]) -> dict[str, bool]:
    """Which of `names` are in sys.modules after running `statement` in a fresh interpreter."""
    probe = f"{statement}\nimport sys\nprint(','.join(str(n in sys.modules) for n in {names!r}))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, check=True)
    return dict(zip(names, (v == "True" for v in out.stdout.strip().split(","))))


def test_every_module_is_in_a_layer():
    """The Dagster layer's modules each in one layer of `dagster-layer`, over the core as one layer; every module
    of the core (and of its tools) in one layer of `core`."""
    dagster_layer = children("sensors") | children("assets") | {"resources", "mining_platform"}
    assert layered("dagster-layer") == dagster_layer
    core = (children("mining_platform") - {"mining_platform.tools"}) | children("mining_platform.tools")
    assert layered("core") == core


def test_the_core_is_one_package_that_imports_no_dagster():
    assert CONTRACTS["no-dagster-in-core"]["source_modules"] == ["mining_platform"]
    statement = ("import importlib, pkgutil, mining_platform\n"
                 "[importlib.import_module(m.name) for m in pkgutil.walk_packages(mining_platform.__path__, "
                 "'mining_platform.')]")
    assert imported_after(statement, ["dagster"]) == {"dagster": False}


def test_the_endpoint_starts_without_dagster_training_mlflow_or_xgboost():
    heavy = ["dagster", "mining_platform.training", "mlflow", "xgboost", "sklearn", "pandas", "matplotlib"]
    loaded = imported_after("import mining_platform.serving.app", heavy)
    assert loaded == {name: False for name in heavy}


# What a step or a sensor tick may load, never the code location itself: every run worker and step process imports
# the code location before doing anything, so each of these costs every run its import time.
STEP_LIBRARIES = ["mlflow", "xgboost", "sklearn", "scipy", "pandas", "matplotlib", "pyarrow", "pymongoarrow",
                  "numpy", "httpx", "requests"]


def test_loading_every_code_location_loads_no_library_only_a_step_needs():
    projects = sorted(p.parent.name for p in (REPO / "projects").glob("*/project.yaml"))
    loaded = imported_after("import sensors.definitions as d\n" + "\n".join(f"d.{p}" for p in projects),
                            STEP_LIBRARIES)
    assert loaded == {name: False for name in STEP_LIBRARIES}

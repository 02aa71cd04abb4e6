"""The layers hold: every module is placed in one, and importing the core loads no Dagster.

The import contracts themselves are checked by `lint-imports` (pyproject.toml), which
`make test` runs before this suite.
"""

import subprocess
import sys
import tomllib

import pytest

from .conftest import REPO

pytestmark = pytest.mark.fast

CONTRACTS = {c["id"]: c for c in tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]}


def top_level_modules() -> set[str]:
    package = REPO / "mining_platform"
    modules = {f"mining_platform.{p.stem}" for p in package.glob("*.py") if p.stem != "__init__"}
    return modules | {f"mining_platform.{p.parent.name}" for p in package.glob("*/__init__.py")}


def layered_modules() -> set[str]:
    return {name.strip() for layer in CONTRACTS["layers"]["layers"] for name in layer.split("|")}


def core_modules() -> list[str]:
    return CONTRACTS["dagster-layer"]["source_modules"]


def imported_after(statement: str, names: list[str]) -> dict[str, bool]:
    """Which of `names` are in sys.modules after running `statement` in a fresh interpreter."""
    probe = f"{statement}\nimport sys\nprint(','.join(str(n in sys.modules) for n in {names!r}))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, check=True)
    return dict(zip(names, (v == "True" for v in out.stdout.strip().split(","))))


def test_every_module_of_the_package_is_in_a_layer():
    assert top_level_modules() == layered_modules()


def test_the_core_is_everything_below_the_dagster_layer():
    layers = CONTRACTS["layers"]["layers"]
    first_core = next(i for i, layer in enumerate(layers) if layer.startswith("mining_platform.cli"))
    below = {name.strip() for layer in layers[first_core:] for name in layer.split("|")}
    assert set(core_modules()) == below


def test_importing_the_core_loads_no_dagster():
    loaded = imported_after("\n".join(f"import {module}" for module in core_modules()), ["dagster"])
    assert loaded == {"dagster": False}


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
    loaded = imported_after("import mining_platform.definitions as d\n" + "\n".join(f"d.{p}" for p in projects),
                            STEP_LIBRARIES)
    assert loaded == {name: False for name in STEP_LIBRARIES}

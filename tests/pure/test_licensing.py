"""SecantusDB (GPL-2.0) is run as a server process, never imported by the platform."""

import ast

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.fast


def imported_modules(path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_platform_never_imports_the_embedded_server():
    sources = sorted((REPO / "mining_platform").rglob("*.py"))
    assert len(sources) > 10
    offenders = {
        str(path.relative_to(REPO)): sorted(m for m in imported_modules(path) if m.split(".")[0] == "secantus")
        for path in sources
    }
    assert {path: mods for path, mods in offenders.items() if mods} == {}

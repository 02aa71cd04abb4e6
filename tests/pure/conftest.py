"""Every test here is pure (no server): the fast lane."""

import pytest


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "/tests/pure/" in str(item.path):
            item.add_marker(pytest.mark.fast)

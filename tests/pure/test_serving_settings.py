"""The endpoint's settings from the environment: each parsed, a bad one refused by name."""

import pytest

from mining_platform.serving.config import serving_config_from_environment


@pytest.fixture
def environment(tmp_path, monkeypatch):
    (tmp_path / "projects").mkdir()
    monkeypatch.setenv("MINING_PROJECTS_DIR", str(tmp_path / "projects"))
    monkeypatch.setenv("MINING_ADMIN_TOKEN", "token")
    monkeypatch.setenv("MINING_HOME", str(tmp_path / "home"))
    return monkeypatch


@pytest.mark.parametrize(("value", "on"), [("on", True), ("off", False), (" OFF ", False), ("On", True)])
def test_metrics_are_switched_on_or_off(environment, value, on):
    environment.setenv("MINING_ENDPOINT_METRICS", value)
    assert serving_config_from_environment().metrics is on


def test_metrics_are_on_by_default(environment):
    environment.delenv("MINING_ENDPOINT_METRICS", raising=False)
    assert serving_config_from_environment().metrics is True


@pytest.mark.parametrize(("name", "value", "problem"), [
    ("MINING_ENDPOINT_METRICS", "yes", "MINING_ENDPOINT_METRICS='yes': on or off"),
    ("MINING_MAX_BATCH", "lots", "MINING_MAX_BATCH='lots' is not an integer"),
    ("MINING_PREDICTION_LOG_SAMPLE_RATE", "2", "MINING_PREDICTION_LOG_SAMPLE_RATE must be within [0, 1]"),
])
def test_a_bad_setting_is_refused_by_name(environment, name, value, problem):
    environment.setenv(name, value)
    with pytest.raises(ValueError) as error:
        serving_config_from_environment()
    assert problem in str(error.value)

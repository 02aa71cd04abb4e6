"""What the endpoint tests share as fixtures."""

import pytest

from tests.fixtures.model_versions import unique_model_name


@pytest.fixture
def project(churn_project):
    """The churn project with a registered-model name of its own, so tests never share versions or aliases."""
    return churn_project.model_copy(update={"model": churn_project.model.model_copy(update={"name": unique_model_name()})})

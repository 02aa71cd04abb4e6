"""The Dagster layer's tests get MongoDB as the `MongoResource` the assets and sensors bind."""

import pytest


@pytest.fixture
def mongo(mongo_resource):
    return mongo_resource

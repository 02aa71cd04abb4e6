"""The Dagster layer: assets through `materialize`, sensors through `build_sensor_context`, resources."""

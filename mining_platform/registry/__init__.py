"""The MLflow model registry, as the platform uses it: the one place MLflow is spoken to.

`client` builds every MLflow client and points MLflow's fluent API at a server;
`aliases` holds `champion` / `previous`, the gate verdict tags and promotion (only a
version whose gate passed may become champion); `versions` logs and registers a
trained version; `loading` loads a registered version's booster and signature; and
`distribution` / `reference` are the drift reference stored with every version.

Names (docs/configuration.md, "MLflow"): the experiment is the project name, the registered model is the
project's `model.name`, and runs and versions carry `mining.*` tags.
"""

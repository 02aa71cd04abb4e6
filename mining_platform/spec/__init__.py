"""The project spec: what a project is, loaded and validated before anything runs.

A project is configuration only: `project.yaml` (the schema in `project`), its
feature definitions (`definition`, with the safety walk over their stages in
`stages` and `$param` values in `parameters`), and together, as one validated
object, a `ProjectSpec` (`loaded`). Every name the platform gives a collection or
an asset is made in `names`. Nothing here touches MongoDB, MLflow or Dagster.
"""

from mining_platform.spec.loaded import ProjectSpec, load_spec

__all__ = ["ProjectSpec", "load_spec"]

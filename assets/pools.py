"""Dagster pools: how many steps of a kind may run at once across the whole instance, whatever the number of runs.

Every step that aggregates in, or bulk-writes to, MongoDB claims a slot of `mongodb`:
feature and tile partitions, sample builds, batch predictions, realised performance,
drift reports and the demo generator. The limit is the instance's (`concurrency.pools` in
dagster.yaml, `concurrency.pools` in the Helm values): with 50 runs queued across projects,
MongoDB sees at most that many heavy steps, and the others wait in the queue, not in the
database. Training (CPU) and deployment (MLflow, the endpoint) claim no slot.
"""

MONGODB = "mongodb"

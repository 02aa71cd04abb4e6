"""The audited partition store: how every partition the platform writes is run, recorded and published.

A partition run is audited in `pipeline_runs` (`runs`), writes its documents tagged
with its run id next to the current publication, and is published by moving a
commit marker in one transaction (`markers`); readers only ever go through the
marker. `loop` is the one partition run loop that feature sets and samples share;
`traffic` measures what the server sends back; `columns` reads committed
partitions straight into Arrow.
"""

"""Feature sets computed where the data lives: the versions of each definition (`versions`), the
in-database contract check (`contracts`), and a definition's partitions run by the partition loop
(`pipeline`). What a definition is belongs to the project spec (`mining_platform.spec`)."""

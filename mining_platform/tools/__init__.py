"""Tools that are neither capability nor Dagster: the `mining-platform` command, the dev stack, `new`, `validate`,
`impact`, and the embedded MongoDB server they start."""

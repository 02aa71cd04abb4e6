"""The partitions of a project's daily assets."""

import dagster as dg

from mining_platform.spec.project import ProjectConfig


def daily_partitions(project: ProjectConfig) -> dg.DailyPartitionsDefinition:
    """Daily UTC partitions from the project's start_date; shared by every daily asset."""
    return dg.DailyPartitionsDefinition(start_date=project.start_date.isoformat(), timezone="UTC")

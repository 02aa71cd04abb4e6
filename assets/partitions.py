"""The partitions of a project's daily assets."""

import datetime as dt

import dagster as dg

from mining_platform.spec.project import ProjectConfig


def daily_partitions(project: ProjectConfig) -> dg.DailyPartitionsDefinition:
    """Daily UTC partitions from the project's start_date to its end_date (inclusive; default: today); shared by
    every daily asset."""
    end = project.end_date + dt.timedelta(days=1) if project.end_date else None  # Dagster's end is exclusive
    return dg.DailyPartitionsDefinition(start_date=project.start_date.isoformat(), timezone="UTC",
                                        end_date=end.isoformat() if end else None)

"""Alerts: what went wrong (or was decided) in a project, sent where its `alerts:` say (a signed webhook, email
over SMTP, the log). The Dagster layer's sensors decide when (`sensors/alerts.py`); this package says what an
alert holds and delivers it."""

from mining_platform.alerts.alert import Alert
from mining_platform.alerts.send import Delivery, send

__all__ = ["Alert", "Delivery", "send"]

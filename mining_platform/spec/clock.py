"""Times as the platform compares them: timezone-aware UTC."""

import datetime as dt


def as_utc(value: dt.datetime) -> dt.datetime:
    """`value` as aware UTC; a naive value (as MongoDB returns without tz_aware) is taken to be UTC already."""
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)

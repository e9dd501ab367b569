"""RFC 3339 times from query strings, as the columns hold them (naive UTC)."""
import datetime

from certapi.errors import ValidationFailed


def timestamp(value: str, place: str) -> datetime.datetime:
    """A query's RFC 3339 time (the spec's pattern admitted it) as naive UTC, the way the
    columns hold it; a date the calendar lacks is still a 422."""
    try:
        parsed = datetime.datetime.fromisoformat(value)
    except ValueError as error:
        raise ValidationFailed(f"{place}: Not an RFC 3339 timestamp") from error
    if parsed.tzinfo is None:
        raise ValidationFailed(f"{place}: The timestamp needs a time zone (Z or ±hh:mm)")
    try:
        return parsed.astimezone(datetime.UTC).replace(tzinfo=None)
    except OverflowError:  # 9999-12-31T23:59:59-05:00 is past the last UTC time Python has
        return datetime.datetime.max if parsed.year > 1 else datetime.datetime.min

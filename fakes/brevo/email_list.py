"""Brevo's list of transactional emails (`GET /v3/smtp/emails`) as the fake answers it:
the query checked as Brevo documents it
(https://developers.brevo.com/reference/get-transac-emails-list), and each accepted
message as the list shows it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fakes.brevo.state import Accepted

DEFAULT_PERIOD = timedelta(days=30)  # what the list shows without dates
LONGEST_PERIOD = timedelta(days=31)  # "at most one month" between the dates
MAX_LIMIT = 1000
DEFAULT_LIMIT = 500


class BadQuery(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class ListQuery:
    """The filters of one list request, checked as Brevo documents them."""

    email: str
    template_id: int | None
    message_id: str
    since: float  # time.time() bounds: since <= accepted < until
    until: float
    newest_first: bool
    limit: int
    offset: int

    @classmethod
    def parse(cls, query: dict[str, list[str]], now: float) -> ListQuery:
        one = {name: values[-1] for name, values in query.items()}
        email, template, message_id = (one.get(n, "") for n in ("email", "templateId", "messageId"))
        if not (email or template or message_id):
            raise BadQuery("missing_parameter", "email, templateId or messageId is mandatory")
        start, end = one.get("startDate"), one.get("endDate")
        if (start is None) != (end is None):
            raise BadQuery("missing_parameter", "startDate and endDate are used together")
        since, until = now - DEFAULT_PERIOD.total_seconds(), float("inf")
        if start is not None and end is not None:
            first, last = _date(start, "startDate"), _date(end, "endDate")
            if last < first or last - first > LONGEST_PERIOD:
                raise BadQuery("invalid_parameter", "the period is at most one month")
            since = datetime.combine(first, datetime.min.time(), UTC).timestamp()
            until = datetime.combine(last + timedelta(days=1), datetime.min.time(), UTC).timestamp()
        sort = one.get("sort", "desc")
        if sort not in ("asc", "desc"):
            raise BadQuery("invalid_parameter", "sort is asc or desc")
        return cls(
            email=email.lower(),
            template_id=_number(template, "templateId", 1, None) if template else None,
            message_id=message_id,
            since=since,
            until=until,
            newest_first=sort == "desc",
            limit=_number(one.get("limit", str(DEFAULT_LIMIT)), "limit", 0, MAX_LIMIT),
            offset=_number(one.get("offset", "0"), "offset", 0, None),
        )

    def matches(self, message: Accepted) -> bool:
        return (
            (not self.email or message.to == self.email)
            and (self.template_id is None or message.template_id == self.template_id)
            and (not self.message_id or message.message_id == self.message_id)
            and self.since <= message.at < self.until
        )


def _date(text: str, name: str) -> date:
    try:
        return datetime.strptime(text, "%Y-%m-%d").date()
    except ValueError:
        raise BadQuery("invalid_parameter", f"{name} is YYYY-MM-DD") from None


def _number(text: str, name: str, lowest: int, highest: int | None) -> int:
    try:
        value = int(text)
    except ValueError:
        raise BadQuery("invalid_parameter", f"{name} is a number") from None
    if value < lowest or (highest is not None and value > highest):
        raise BadQuery("invalid_parameter", f"{name} is out of range")
    return value


def listed(message: Accepted) -> dict[str, Any]:
    """One message as Brevo's list shows it."""
    entry: dict[str, Any] = {
        "email": message.to,
        "subject": message.subject,
        "messageId": message.message_id,
        "uuid": message.uuid,
        "date": datetime.fromtimestamp(message.at, UTC).isoformat(timespec="milliseconds"),
        "from": message.sender,
        "tags": list(message.tags),
    }
    if message.template_id is not None:
        entry["templateId"] = message.template_id
    return entry

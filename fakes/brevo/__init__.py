"""A fake Brevo transactional email API on loopback, for tests, benchmarks and local runs.

It speaks the part of Brevo's v3 API that anymail's real Brevo backend uses (`POST
/v3/smtp/email` with an `api-key` header, answering `201 {"messageId": ...}`; a batch of
up to 1000 `messageVersions`, each with its own `to`, `params` and `headers`, answering
`201 {"messageIds": [...]}`, an id a version, with each version's `{{ params.x }}`
filled in as Brevo's template language does: fakes.brevo.templating), records every
request's arrival (one a message) and every message it accepts, and honours
`idempotencyKey` as Brevo does: a repeat of a key within its time to live (30 minutes)
gets the first answer and sends nothing; after that the key is forgotten and the repeat
is sent. It also lists what it accepted as Brevo's `GET /v3/smtp/emails` does ("the
list of transactional emails on the basis of allowed filters": `email`, `templateId` or
`messageId`, `startDate`/`endDate`, `sort`, `limit`, `offset`), which campaign recovery
asks about a send whose worker died.
Faults, for tests: a share of answers 429 or 5xx (optionally after accepting the
message, as a real provider may), addresses whose request hangs (to kill a worker inside
the call) or is refused, a list that answers with an error status, and accepted
messages that show in the list only after a lag, or never (Brevo's logs may lag).

    with FakeBrevo() as esp:
        settings.EMAIL_BACKEND = FakeBrevo.BACKEND
        settings.ANYMAIL = esp.anymail_settings()
        ...
        assert esp.accepted_for("artist@example.com") == 1

Run it alone (a local site, a benchmark): `python -m fakes.brevo --port 8766`;
then `GET /_fake/arrivals` and `GET /_fake/accepted` list what it saw (JSON), and
`POST /_fake/reset` (a JSON object of `Faults` fields, and optionally `idempotency_ttl`
in seconds) starts it afresh.
"""

from fakes.brevo.server import FakeBrevo
from fakes.brevo.state import (
    API_KEY,
    IDEMPOTENCY_TTL,
    LIST_PATH,
    SEND_PATH,
    Accepted,
    Arrival,
    FakeBrevoState,
    Faults,
    tracking_payload,
)

__all__ = [
    "API_KEY",
    "IDEMPOTENCY_TTL",
    "LIST_PATH",
    "SEND_PATH",
    "Accepted",
    "Arrival",
    "FakeBrevo",
    "FakeBrevoState",
    "Faults",
    "tracking_payload",
]

"""The fake Brevo over HTTP, as Brevo documents its API: the list of transactional emails
(`GET /v3/smtp/emails`) that recovery asks, and the idempotency key's time to live."""

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
import time_machine

from fakes.brevo import API_KEY, FakeBrevo

TIMEOUT = 5.0  # seconds; the fake answers on loopback at once


@pytest.fixture
def brevo(esp_server: FakeBrevo) -> Iterator[FakeBrevo]:
    """The fake, fresh, spoken to over HTTP as any Brevo client would."""
    esp_server.state.reset()
    yield esp_server
    esp_server.state.reset()


def post(brevo: FakeBrevo, to: str, *, key: str = "", tags: tuple[str, ...] = ("news",)) -> str:
    """Send one message as a Brevo client would; its message id."""
    body: dict[str, Any] = {
        "sender": {"email": "no-reply@jerseyevents.test", "name": "Jersey Events"},
        "to": [{"email": to}],
        "subject": f"Hello {to}",
        "textContent": "Hello",
        "tags": list(tags),
        "headers": {"idempotencyKey": key} if key else {},
    }
    response = requests.post(
        f"{brevo.api_url}smtp/email", json=body, headers={"api-key": API_KEY}, timeout=TIMEOUT
    )
    assert response.status_code == 201, response.text
    return str(response.json()["messageId"])


def listing(brevo: FakeBrevo, api_key: str | None = API_KEY, **query: Any) -> requests.Response:
    headers = {} if api_key is None else {"api-key": api_key}
    return requests.get(
        f"{brevo.api_url}smtp/emails", params=query, headers=headers, timeout=TIMEOUT
    )


def test_the_list_shows_the_messages_accepted_for_an_address_newest_first(brevo):
    first = post(brevo, "ann@example.com", tags=("sumup_reconnect",))
    post(brevo, "bob@example.com")
    second = post(brevo, "Ann@Example.com")

    answer = listing(brevo, email="ann@example.com").json()

    assert answer["count"] == 2
    assert [entry["messageId"] for entry in answer["transactionalEmails"]] == [second, first]
    entry = answer["transactionalEmails"][1]
    assert entry["email"] == "ann@example.com"
    assert entry["subject"] == "Hello ann@example.com"
    assert entry["from"] == "no-reply@jerseyevents.test"
    assert entry["tags"] == ["sumup_reconnect"]
    assert uuid.UUID(entry["uuid"])
    sent_at = datetime.fromisoformat(entry["date"])
    assert entry["date"].endswith("+00:00") and "." in entry["date"]
    assert abs(sent_at - datetime.now(UTC)) < timedelta(minutes=1)


def test_the_list_sorts_pages_and_filters_by_message_id(brevo):
    ids = [post(brevo, "ann@example.com") for _ in range(3)]

    oldest_first = listing(brevo, email="ann@example.com", sort="asc").json()
    page = listing(brevo, email="ann@example.com", sort="asc", limit=1, offset=1).json()
    by_id = listing(brevo, messageId=ids[1]).json()
    nothing = listing(brevo, email="ann@example.com", limit=0).json()

    assert [e["messageId"] for e in oldest_first["transactionalEmails"]] == ids
    assert (page["count"], [e["messageId"] for e in page["transactionalEmails"]]) == (3, [ids[1]])
    assert (by_id["count"], by_id["transactionalEmails"][0]["messageId"]) == (1, ids[1])
    assert (nothing["count"], nothing["transactionalEmails"]) == (3, [])


def test_the_list_keeps_to_the_dates_asked_for_and_to_the_past_30_days_without(brevo):
    today = datetime.now(UTC).date()
    with time_machine.travel(datetime.now(UTC) - timedelta(days=40)):
        post(brevo, "ann@example.com")
    recent = post(brevo, "ann@example.com")

    default = listing(brevo, email="ann@example.com").json()
    dated = listing(
        brevo,
        email="ann@example.com",
        startDate=str(today - timedelta(days=45)),
        endDate=str(today - timedelta(days=30)),
    ).json()
    this_day = listing(brevo, email="ann@example.com", startDate=today, endDate=today).json()

    assert [e["messageId"] for e in default["transactionalEmails"]] == [recent]
    assert dated["count"] == 1 and dated["transactionalEmails"][0]["messageId"] != recent
    assert [e["messageId"] for e in this_day["transactionalEmails"]] == [recent]


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ({}, "missing_parameter"),
        ({"sort": "asc"}, "missing_parameter"),
        ({"email": "ann@example.com", "startDate": "2026-01-01"}, "missing_parameter"),
        ({"email": "ann@example.com", "endDate": "2026-01-01"}, "missing_parameter"),
        ({"email": "ann@example.com", "startDate": "01/01/2026", "endDate": "2026-01-02"}, None),
        ({"email": "ann@example.com", "startDate": "2026-01-01", "endDate": "2026-03-01"}, None),
        ({"email": "ann@example.com", "startDate": "2026-01-02", "endDate": "2026-01-01"}, None),
        ({"email": "ann@example.com", "sort": "newest"}, None),
        ({"email": "ann@example.com", "limit": "1001"}, None),
        ({"email": "ann@example.com", "limit": "-1"}, None),
        ({"email": "ann@example.com", "offset": "-1"}, None),
        ({"email": "ann@example.com", "limit": "ten"}, None),
        ({"templateId": "seven"}, None),
    ],
)
def test_the_list_refuses_a_query_brevo_refuses_with_400(brevo, query, code):
    response = listing(brevo, **query)

    assert response.status_code == 400
    assert response.json()["code"] == (code or "invalid_parameter")
    assert brevo.state.lookups == [query]


@pytest.mark.parametrize("api_key", [None, "not-the-key"])
def test_the_list_needs_the_api_key(brevo, api_key):
    post(brevo, "ann@example.com")

    response = listing(brevo, api_key=api_key, email="ann@example.com")

    assert response.status_code == 401
    assert "transactionalEmails" not in response.json()


def test_the_list_can_be_made_to_fail_or_to_lag_behind_what_was_accepted(brevo):
    brevo.state.reset(list_status=503)
    message_id = post(brevo, "ann@example.com")
    assert listing(brevo, email="ann@example.com").status_code == 503

    brevo.state.faults.list_status = None
    brevo.state.faults.list_lag = 60.0
    assert listing(brevo, email="ann@example.com").json() == {
        "count": 0,
        "transactionalEmails": [],
    }
    with time_machine.travel(datetime.now(UTC) + timedelta(seconds=61)):
        shown = listing(brevo, email="ann@example.com").json()
    assert [e["messageId"] for e in shown["transactionalEmails"]] == [message_id]


def test_a_repeated_idempotency_key_sends_nothing_for_30_minutes_then_sends_again(brevo):
    key = str(uuid.uuid4())
    first = post(brevo, "ann@example.com", key=key)

    with time_machine.travel(datetime.now(UTC) + timedelta(minutes=29)):
        assert post(brevo, "ann@example.com", key=key) == first
    assert brevo.state.accepted_for("ann@example.com") == 1
    with time_machine.travel(datetime.now(UTC) + timedelta(minutes=31)):
        again = post(brevo, "ann@example.com", key=key)

    assert again != first
    assert brevo.state.accepted_for("ann@example.com") == 2


def test_a_test_can_shorten_the_idempotency_keys_life_until_the_next_reset(brevo):
    brevo.state.reset(idempotency_ttl=5.0)
    key = str(uuid.uuid4())
    first = post(brevo, "ann@example.com", key=key)
    with time_machine.travel(datetime.now(UTC) + timedelta(seconds=6)):
        assert post(brevo, "ann@example.com", key=key) != first

    brevo.state.reset()
    assert brevo.state.idempotency_ttl == 1800.0


def post_batch(
    brevo: FakeBrevo, versions: list[dict[str, Any]], key: str = ""
) -> requests.Response:
    """A batch send as Brevo documents it: a base content, and a version a recipient."""
    body: dict[str, Any] = {
        "sender": {"email": "no-reply@jerseyevents.test"},
        "subject": "Hello {{ params.name }}",
        "htmlContent": "<p>Hello {{ params.name }}, {{params.missing}}</p>",
        "textContent": "Hello {% autoescape off %}{{ params.name }}{% endautoescape %}",
        "params": {"name": "everyone"},
        "messageVersions": versions,
        "headers": {"idempotencyKey": key} if key else {},
    }
    return requests.post(
        f"{brevo.api_url}smtp/email", json=body, headers={"api-key": API_KEY}, timeout=TIMEOUT
    )


def test_a_batch_is_a_message_a_version_with_its_own_params_and_headers(brevo):
    versions = [
        {"to": [{"email": "ann@example.com"}], "params": {"name": "Tom & <Jerry>"}},
        {"to": [{"email": "bob@example.com"}], "headers": {"List-Unsubscribe": "<https://x/>"}},
    ]

    answer = post_batch(brevo, versions)

    assert answer.status_code == 201
    ids = answer.json()["messageIds"]
    ann, bob = brevo.state.accepted
    assert [ann.message_id, bob.message_id] == ids and ids[0] != ids[1]
    assert ann.html == "<p>Hello Tom &amp; &lt;Jerry&gt;, </p>", "escaped in HTML by default"
    assert ann.text == "Hello Tom & <Jerry>", "as written inside autoescape off"
    assert ann.subject == "Hello Tom &amp; &lt;Jerry&gt;"
    assert bob.text == "Hello everyone" and bob.headers == {"List-Unsubscribe": "<https://x/>"}
    assert [(a.to, a.status) for a in brevo.state.arrivals] == [
        ("ann@example.com", 201),
        ("bob@example.com", 201),
    ]
    assert brevo.state.requests == [("ann@example.com", "bob@example.com")]


def test_a_repeated_batch_key_sends_nothing_and_answers_the_first_ids(brevo):
    versions = [{"to": [{"email": f"{name}@example.com"}]} for name in ("ann", "bob")]
    key = str(uuid.uuid4())

    first = post_batch(brevo, versions, key).json()["messageIds"]
    again = post_batch(brevo, versions[1:], key).json()["messageIds"]

    assert again == first[1:]
    assert len(brevo.state.accepted) == 2 and len(brevo.state.requests) == 2


def test_a_batch_is_refused_whole_past_1000_versions_or_for_one_bad_address(brevo):
    versions = [{"to": [{"email": f"a{n}@example.com"}]} for n in range(1001)]
    brevo.state.reset(refuse={"a1@example.com": 400})

    assert post_batch(brevo, versions).status_code == 400
    assert post_batch(brevo, versions[:3]).status_code == 400
    assert brevo.state.accepted == []

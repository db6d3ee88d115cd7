import json
import logging
import subprocess
import sys

import pytest

from events.logging import REDACTED, RedactSecrets, build_logging, redact


@pytest.mark.parametrize(
    ("line", "kept"),
    [
        ("Authorization: Bearer eyJhbGciOi.abcdefgh.ijk", "Authorization: Bearer"),
        ("POST /token grant_type=refresh_token&refresh_token=rt-123456789", "grant_type="),
        ("{'access_token': 'at-abcdefghi', 'expires_in': 3599}", "'expires_in': 3599"),
        ('{"client_secret": "s3cr3t-value"}', '"client_secret": "'),
        ("stored gAAAAABk" + "x" * 60, "stored "),
        ("merchant_code=MH4H92C7", "merchant_code=MH4H92C7"),
        ("lost redis://:hunter2-redis@10.0.0.5:6379/0", "redis://:[REDACTED]@10.0.0.5:6379/0"),
    ],
)
def test_it_redacts_credentials_and_keeps_the_rest(line, kept):
    cleaned = redact(line)
    assert kept in cleaned
    secrets = ("eyJhbGciOi", "rt-123456789", "at-abcdefghi", "s3cr3t-value", "x" * 60, "hunter2")
    for secret in secrets:
        assert secret not in cleaned
    if "merchant_code" not in line:
        assert REDACTED in cleaned


def test_it_redacts_the_configured_client_secret(monkeypatch):
    monkeypatch.setenv("SUMUP_CLIENT_SECRET", "platform-secret-42")
    assert redact("failed with platform-secret-42 in body") == f"failed with {REDACTED} in body"


def test_json_lines_go_to_the_console_and_a_rotating_file(tmp_path):
    log_file = tmp_path / "error.log"
    code = (
        "import logging, logging.config;"
        "from events.logging import build_logging;"
        "logging.config.dictConfig(build_logging("
        f"level='INFO', json_format=True, log_file={str(log_file)!r}));"
        "logging.getLogger('jobs').warning('refresh with %s', 'refresh_token=abcdefgh123')"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    console = json.loads(result.stderr.strip().splitlines()[-1])
    written = json.loads(log_file.read_text().strip().splitlines()[-1])
    for record in (console, written):
        assert record["level"] == "WARNING" and record["logger"] == "jobs"
        assert record["message"] == f"refresh with refresh_token={REDACTED}"


def test_the_default_configuration_has_no_file_and_plain_lines():
    config = build_logging(level="INFO", json_format=False, log_file="")
    assert config["root"]["handlers"] == ["console"]
    assert config["handlers"]["console"]["filters"] == ["expected", "redact"]
    assert "()" not in config["formatters"]["main"]


def test_it_redacts_extra_fields_that_the_json_format_writes():
    record = logging.LogRecord(
        "celery.app.trace", logging.INFO, "", 0, "Task %s received", ("t1",), None
    )
    record.__dict__["data"] = {
        "args": "('refresh_token=rt-123456789',)",
        "kwargs": {"code": "c0de-abcdef"},
        "n": 3,
    }

    RedactSecrets().filter(record)

    assert record.getMessage() == "Task t1 received"
    assert record.__dict__["data"] == {
        "args": f"('refresh_token={REDACTED}',)",
        "kwargs": {"code": REDACTED},
        "n": 3,
    }


def test_it_keeps_request_lines_with_an_address_out_of_a_debug_log():
    # A provider lookup by address (campaigns.reconcile) with LOG_LEVEL=DEBUG: urllib3
    # would write the request line, query string and all.
    code = (
        "import logging, logging.config, threading, requests;"
        "from http.server import HTTPServer, BaseHTTPRequestHandler;"
        "from events.logging import build_logging;"
        "logging.config.dictConfig(build_logging(level='DEBUG', json_format=False, log_file=''));"
        "H = type('H', (BaseHTTPRequestHandler,), {"
        "'do_GET': lambda s: (s.send_response(200), s.end_headers()),"
        "'log_message': lambda s, *a: None});"
        "server = HTTPServer(('127.0.0.1', 0), H);"
        "threading.Thread(target=server.handle_request, daemon=True).start();"
        "requests.get(f'http://127.0.0.1:{server.server_port}/v3/smtp/emails"
        "?email=artist@example.com', timeout=5);"
        "logging.getLogger('campaigns').debug('looked the send up')"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    assert "DEBUG campaigns looked the send up" in result.stderr
    assert "artist@example.com" not in result.stderr

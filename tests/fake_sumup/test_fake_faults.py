"""Fault injection, latency, concurrency, the control API and the CLI."""

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from fakes.sumup import FakeSumUp


def test_injected_503s_answer_then_the_endpoint_recovers(fake, client):
    tokens = client.connect()
    client.control("faults", {"endpoint": "token", "status": 503, "count": 2})
    for _ in range(2):
        response = client.refresh(tokens["refresh_token"])
        assert response.status_code == 503
        assert response.json()["error"] == "temporarily_unavailable"
    assert client.refresh(tokens["refresh_token"]).status_code == 200


def test_injected_429_carries_retry_after(fake, client):
    tokens = client.connect()
    fake.add_fault("token", 429, retry_after=2)
    response = client.refresh(tokens["refresh_token"])
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "2"
    assert "Too many requests" in response.json()["error_description"]


def test_a_fault_can_carry_its_own_body_and_hit_api_endpoints(fake, client):
    token = client.connect()["access_token"]
    client.control(
        "faults",
        {
            "faults": [
                {"endpoint": "memberships", "status": 500, "body": "boom"},
                {"endpoint": "merchants", "status": 502, "body": {"oops": True}},
            ]
        },
    )
    memberships = client.get("/v0.1/memberships", token)
    assert (memberships.status_code, memberships.text) == (500, "boom")
    merchant = client.get("/v1/merchants/MH4H92C7", token)
    assert (merchant.status_code, merchant.json()) == (502, {"oops": True})
    assert client.get("/v0.1/memberships", token).status_code == 200


def test_a_hanging_fault_makes_the_client_time_out(fake, client):
    tokens = client.connect()
    fake.add_fault("token", None, delay_seconds=0.6)  # pass-through after the delay
    with pytest.raises(requests.Timeout):
        client.refresh(tokens["refresh_token"], timeout=0.15)
    assert client.refresh(tokens["refresh_token"], timeout=5).status_code == 200


def test_a_dropped_connection_is_a_connection_error(fake, client):
    fake.add_fault("memberships", drop=True)
    with pytest.raises(requests.ConnectionError):
        requests.get(fake.base_url + "/v0.1/memberships", timeout=5)


def test_faults_can_be_listed_and_cleared(fake, client):
    client.control("faults", {"endpoint": "authorize", "status": 500, "count": 3})
    pending = client.control("faults")
    assert pending["authorize"][0]["count"] == 3
    assert client.consent().status_code == 500
    client.control("faults", {"clear": True})
    assert client.consent().status_code == 302


def test_latency_applies_per_request_and_per_endpoint(fake, client):
    token = client.connect()["access_token"]
    client.control("config", {"latency_ms": 120, "endpoint_latency_ms": {"me": 0}})
    started = time.monotonic()
    assert client.get("/v0.1/memberships", token).status_code == 200
    assert time.monotonic() - started >= 0.12
    started = time.monotonic()
    assert client.get("/v0.1/me", token).status_code == 200
    assert time.monotonic() - started < 0.1


def test_it_serves_concurrent_clients(fake, client):
    tokens = [fake.mint_grant() for _ in range(20)]
    fake.configure(latency_ms=200)

    def refresh(bundle):
        with requests.Session() as http:
            data = {
                "grant_type": "refresh_token",
                "refresh_token": bundle["refresh_token"],
                "client_id": "jersey-events-local",
                "client_secret": "local-secret",
            }
            return http.post(fake.token_url, data=data, timeout=5).status_code

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=20) as pool:
        statuses = list(pool.map(refresh, tokens))
    elapsed = time.monotonic() - started
    assert statuses == [200] * 20
    assert elapsed < 1.5, elapsed  # serially it would take 4 s
    stats = fake.stats()
    assert stats["max_in_flight"]["token"] >= 10
    assert stats["max_concurrent_refreshes_by_user"]["artist@example.com"] >= 10
    assert set(stats["max_concurrent_refreshes_by_grant"].values()) == {1}


def test_the_control_api_changes_the_fake(fake, client):
    config = client.control("config", {"rotation": "never", "reject_reuse": True, "expires_in": 60})
    assert (config["rotation"], config["reject_reuse"], config["expires_in"]) == ("never", True, 60)
    bad = client.http.post(fake.base_url + "/_fake/config", json={"rotation": "sometimes"})
    assert bad.status_code == 400
    users = client.control(
        "users", {"email": "new@example.com", "merchants": [{"code": "MNEW0001", "name": "New"}]}
    )
    assert {"email": "new@example.com", "default_merchant_code": "MNEW0001"}.items() <= next(
        u for u in users["users"] if u["email"] == "new@example.com"
    ).items()
    assert client.callback(user="new@example.com")["merchant_code"] == "MNEW0001"
    assert client.control("clock", {"advance": 90})["offset"] == 90
    client.control("reset", {})
    assert client.control("config")["rotation"] == "sumup"
    assert client.control("clock")["offset"] == 0
    assert "new@example.com" not in fake.state.user_emails()
    assert client.control("stats")["codes_issued"] == 0
    assert client.control("health") == {"ok": True}


def test_stop_wakes_requests_that_hang(client):
    fake = FakeSumUp(latency_ms=5_000)
    fake.start()
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(requests.get, fake.base_url + "/v0.1/me", timeout=5)
        time.sleep(0.1)
        fake.stop()
        assert future.result().status_code == 401
    assert time.monotonic() - started < 2


def test_the_cli_prints_its_url_and_serves(tmp_path):
    env = {**os.environ, "FAKE_SUMUP_CLIENT_SECRET": "from-env"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fakes.sumup",
            "--port",
            "0",
            "--client-id",
            "cli-app",
            "--redirect-uri",
            "http://127.0.0.1:9000/cb",
            "--rotation",
            "always",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        url = line.split()[-1]
        assert line.startswith("Fake SumUp listening on http://127.0.0.1:")
        clients = requests.get(url + "/_fake/clients", timeout=5).json()["clients"]
        assert clients == [{"client_id": "cli-app", "redirect_uris": ["http://127.0.0.1:9000/cb"]}]
        assert requests.get(url + "/_fake/config", timeout=5).json()["rotation"] == "always"
        response = requests.post(
            url + "/token",
            data={"grant_type": "client_credentials"},
            auth=("cli-app", "from-env"),
            timeout=5,
        )
        assert response.status_code == 200
    finally:
        process.terminate()
        assert process.wait(timeout=5) == 0


def test_it_reports_concurrent_refreshes_of_one_grant(fake, client):
    tokens = fake.mint_grant()
    fake.configure(latency_ms=150)
    with ThreadPoolExecutor(max_workers=3) as pool:
        statuses = [f.status_code for f in pool.map(client.refresh, [tokens["refresh_token"]] * 3)]
    assert statuses == [200, 200, 200]
    grant = fake.state.grant_for_token(tokens["refresh_token"])
    assert grant is not None and grant.token_calls == {"refresh_token": 3}
    assert fake.stats()["max_concurrent_refreshes_by_grant"][grant.id] >= 2


def test_only_one_of_several_concurrent_exchanges_of_a_code_wins(fake, client):
    code = client.callback()["code"]

    def exchange(_):
        with requests.Session() as http:
            return http.post(
                fake.token_url,
                data={
                    "grant_type": "authorization_code",
                    "code": code,
                    "redirect_uri": "http://127.0.0.1:8000/accounts/sumup/callback/",
                    "code_verifier": client.verifier,
                },
                auth=("jersey-events-local", "local-secret"),
                timeout=5,
            ).status_code

    with ThreadPoolExecutor(max_workers=5) as pool:
        statuses = sorted(pool.map(exchange, range(5)))
    assert statuses == [200, 400, 400, 400, 400]


def test_revoke_by_token_kills_only_that_grant(fake, client):
    first, second = client.connect(), client.connect()
    assert client.control("revoke", {"refresh_token": first["refresh_token"]}) == {"revoked": 1}
    assert client.refresh(first["refresh_token"]).status_code == 400
    assert client.refresh(second["refresh_token"]).status_code == 200

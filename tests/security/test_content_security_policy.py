"""Every page carries a Content-Security-Policy (Django's own middleware) that allows
scripts and styles from this site's files or with the response's nonce, and nothing
inline besides; the project's templates give their inline code that nonce. The two pages
that need more say so for themselves: the email's HTML in the preview frame, and the
connect page, whose form goes on to SumUp. tests/security/test_csp_in_the_browser.py
shows the pages keep to it in Chromium."""

import re
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse

from accounts.models import User
from campaigns import services
from campaigns.models import Campaign

pytestmark = pytest.mark.django_db

TEMPLATES = sorted(
    path
    for path in Path(settings.WEBAPP_DIR).glob("*/templates/**/*.html")
    if "email" not in path.parts  # mail clients, not browsers, render those
)


def policy(response: Any) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    directives = [part.split() for part in header.split(";") if part.strip()]
    return {name: values for name, *values in directives}


@pytest.fixture
def superuser(client: Client) -> User:
    user = User.objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(user)
    return user


@pytest.fixture
def campaign(make_artist: Any) -> Campaign:
    make_artist(is_approved=True)
    return services.create(Campaign(name="Reconnect", rate_limit=""), actor="test")


def test_the_artists_pages_allow_only_own_files_and_the_pages_nonce(client, make_artist):
    client.force_login(make_artist().user)

    for url in ("/accounts/dashboard/", "/accounts/sumup/connect/"):
        response = client.get(url)
        found = policy(response)
        nonce = re.search(r'<style nonce="([^"]+)">', response.text)
        assert nonce, url
        assert found["script-src"] == ["'self'", f"'nonce-{nonce.group(1)}'"], url
        assert found["style-src"] == ["'self'", f"'nonce-{nonce.group(1)}'"], url
        assert found["object-src"] == ["'none'"] and found["frame-ancestors"] == ["'none'"]
        assert "'unsafe-inline'" not in response["Content-Security-Policy"]


def test_each_response_has_a_nonce_of_its_own(client):
    first, second = (policy(client.get("/accounts/login/"))["script-src"] for _ in range(2))

    assert first[1].startswith("'nonce-") and first != second


def test_the_connect_pages_form_may_go_on_to_sumup_and_nowhere_else(client, make_artist, sumup):
    client.force_login(make_artist().user)

    found = policy(client.get("/accounts/sumup/connect/"))

    assert found["form-action"] == ["'self'", sumup.base_url.rstrip("/")]
    assert policy(client.get("/accounts/dashboard/"))["form-action"] == ["'self'"]


def test_admin_pages_with_inline_code_carry_its_nonce(client, superuser, campaign):
    progress = client.get(reverse("admin:campaigns_campaign_progress", args=[campaign.pk]))
    scripts = re.findall(r"<script([^>]*)>", progress.text)
    nonce = policy(progress)["script-src"][1].removeprefix("'nonce-").removesuffix("'")

    inline = [attributes for attributes in scripts if "src=" not in attributes]
    assert inline == [f' nonce="{nonce}"']
    assert f'<style nonce="{nonce}">' in progress.text
    assert 'style="' not in progress.text


def test_the_email_preview_frames_the_html_under_a_policy_of_its_own(client, superuser, campaign):
    page = client.get(reverse("admin:campaigns_campaign_preview", args=[campaign.pk]))
    frame_url = re.search(r'<iframe[^>]* src="([^"]+)"', page.text)
    assert frame_url and "srcdoc" not in page.text
    assert policy(page)["frame-ancestors"] == ["'none'"]

    frame = client.get(frame_url.group(1).replace("&amp;", "&"))

    assert frame.status_code == 200 and b"Hello " in frame.content
    assert frame["X-Frame-Options"] == "SAMEORIGIN"
    found = policy(frame)
    assert found["frame-ancestors"] == ["'self'"]
    assert found["default-src"] == ["'none'"] and "script-src" not in found
    assert found["sandbox"] == []


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda path: path.name)
def test_no_template_has_inline_code_without_the_nonce(template: Path):
    text = template.read_text()

    for tag, attributes in re.findall(r"<(script|style)\b([^>]*)>", text):
        if "src=" not in attributes:
            assert 'nonce="{{ csp_nonce }}"' in attributes, (tag, attributes)
    assert not re.search(r"\sstyle\s*=", text), "a style attribute: use a class"
    assert not re.search(r"\son[a-z]+\s*=", text), "an event handler attribute"
    assert "javascript:" not in text

"""What the pages say and how they are marked up, as the test client gets them: one
level-one heading a page, a failed login that keeps the username and is announced,
messages in one live region, the email preview's HTML, the admin's name, SumUp spelled
as SumUp, the landing page at `/`, and plain words for a lapsed connection."""

import re
from collections.abc import Callable

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import ArtistProfile, ConnectionStatus, User
from campaigns import services
from campaigns.models import Campaign

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple"


def level_one_headings(html: str) -> list[str]:
    return [
        re.sub(r"<[^>]+>", "", heading).strip()
        for heading in re.findall(r"<h1\b[^>]*>(.*?)</h1>", html, re.S)
    ]


@pytest.fixture
def artist(make_artist: Callable[..., ArtistProfile]) -> ArtistProfile:
    return make_artist(is_approved=True, display_name="Nina Blue")


@pytest.fixture
def staff(client: Client) -> Client:
    client.force_login(User.objects.create_superuser("root", "root@example.com", PASSWORD))
    return client


def test_it_gives_the_login_and_connect_pages_one_level_one_heading(client, artist):
    assert level_one_headings(client.get("/accounts/login/").text) == ["Artist log in"]

    client.force_login(artist.user)
    connect = client.get("/accounts/sumup/connect/")
    assert level_one_headings(connect.text) == ["Connect your SumUp account"]


def test_a_failed_login_keeps_the_username_and_announces_the_error(client, artist):
    username = artist.user.username

    page = client.post("/accounts/login/", {"username": username, "password": "wrong"})

    assert page.status_code == 200
    username_input = re.search(r'<input type="text" name="username"[^>]*>', page.text)
    assert username_input and f'value="{username}"' in username_input.group(0)
    assert re.search(
        r'<p class="error" id="login-error" role="alert">[^<]*did not match', page.text
    )
    for field in ("username", "password"):
        tag = re.search(rf'<input[^>]* name="{field}"[^>]*>', page.text)
        assert tag and 'aria-invalid="true"' in tag.group(0), field
        assert 'aria-describedby="login-error"' in tag.group(0), field


def test_a_first_login_page_marks_no_field_invalid(client):
    page = client.get("/accounts/login/")

    assert "aria-invalid" not in page.text and 'role="alert"' not in page.text
    assert 'value=""' in page.text


def test_messages_are_paragraphs_in_one_status_region_not_list_items(client, artist):
    client.force_login(artist.user)

    # The merchant choice is held in the session only between SumUp and this page.
    page = client.get(reverse("accounts:sumup_choose_merchant"), follow=True)

    region = re.search(r'<div class="messages" role="status">(.*?)</div>', page.text, re.S)
    assert region, page.text
    assert re.fullmatch(
        r'<p class="error">That choice has expired\. Please connect again\.</p>', region.group(1)
    )


def test_the_campaign_preview_frames_the_emails_html_with_a_title(staff, artist):
    campaign = services.create(Campaign(name="Reconnect", rate_limit=""), actor="test")

    page = staff.get(reverse("admin:campaigns_campaign_preview", args=[campaign.pk]))

    frame = re.search(r"<iframe\b[^>]*>", page.text)
    assert frame and "srcdoc" not in page.text
    assert 'title="The email\'s HTML part"' in frame.group(0)
    src = re.search(r' src="([^"]+)"', frame.group(0))
    assert src
    html = staff.get(src.group(1).replace("&amp;", "&"))
    assert html.status_code == 200 and html["Content-Type"].startswith("text/html")
    # The HTML itself, tags and all, not its text escaped into a page.
    assert re.search(r"<p>\s*Hello Nina Blue,\s*</p>", html.text)
    assert re.search(r'<a href="[^"]+"[^>]*>Connect SumUp</a>', html.text)
    assert "&lt;p&gt;" not in html.text


def test_the_admin_calls_itself_jersey_events_admin(staff, client):
    index = staff.get("/admin/")

    assert "<title>Jersey Events admin | Jersey Events admin</title>" in index.text
    assert re.search(
        r'<div id="site-name"><a href="/admin/">Jersey Events admin</a></div>', index.text
    )
    assert level_one_headings(index.text) == ["Jersey Events admin"]
    assert "Django administration" not in index.text
    assert "Django site admin" not in index.text


def test_the_admin_login_page_is_branded_too():
    page = Client().get("/admin/login/")

    assert "Jersey Events admin" in page.text and "Django" not in page.text


def test_staff_and_artists_read_sumup_spelled_sumup(staff, make_artist):
    lapsed = make_artist(sumup_connection_status=ConnectionStatus.EXPIRED, sumup_merchant_code="M1")

    pages = {
        "list": staff.get("/admin/accounts/artistprofile/"),
        "change": staff.get(f"/admin/accounts/artistprofile/{lapsed.pk}/change/"),
    }

    for name, page in pages.items():
        assert page.status_code == 200, name
        assert "Sumup" not in page.text, name
    assert ">SumUp connection status<" in pages["list"].text
    assert " By SumUp connection status " in pages["list"].text
    assert re.search(r"<label>SumUp merchant code:</label>", pages["change"].text)
    dashboard = Client()
    dashboard.force_login(lapsed.user)
    assert "Sumup" not in dashboard.get("/accounts/dashboard/").text


def test_the_landing_page_sends_a_visitor_to_log_in(client):
    page = client.get("/")

    assert page.status_code == 200
    assert level_one_headings(page.text) == ["Jersey Events"]
    assert f'href="{reverse("accounts:login")}"' in page.text
    assert reverse("accounts:dashboard") not in page.text
    assert reverse("admin:index") not in page.text


def test_the_landing_page_sends_an_artist_to_their_dashboard(client, artist):
    client.force_login(artist.user)

    page = client.get("/")

    assert page.status_code == 200
    assert re.search(
        rf'<a [^>]*href="{reverse("accounts:dashboard")}"[^>]*>Go to your dashboard</a>', page.text
    )
    assert reverse("admin:index") not in page.text


def test_the_landing_page_sends_staff_to_the_admin(staff):
    page = staff.get("/")

    assert page.status_code == 200
    assert re.search(
        rf'<a href="{reverse("admin:index")}"[^>]*>Go to the Jersey Events admin</a>', page.text
    )
    assert reverse("accounts:dashboard") not in page.text


def test_a_signed_in_customer_is_told_the_site_is_for_artists(client, django_user_model):
    customer = django_user_model.objects.create_user("fan", "fan@example.com", PASSWORD)
    client.force_login(customer)

    page = client.get("/")

    assert page.status_code == 200
    assert "not an artist account" in page.text
    assert reverse("accounts:dashboard") not in page.text


def test_an_artist_whose_sumup_lapsed_is_told_so_in_plain_words(client, make_artist):
    lapsed = make_artist(sumup_connection_status=ConnectionStatus.EXPIRED, sumup_merchant_code="M1")
    client.force_login(lapsed.user)

    page = client.get("/accounts/dashboard/")

    assert 'id="sumup-status">SumUp needs you to reconnect<' in page.text
    assert "Token expired" not in page.text and "authorisation" not in page.text
    assert 'id="sumup-connect">Reconnect<' in page.text

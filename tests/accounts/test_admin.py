import pytest

from accounts.models import ConnectionStatus


@pytest.fixture
def staff_client(client, django_user_model):
    admin = django_user_model.objects.create_superuser("staff", "staff@example.com", "pw-staff-1")
    client.force_login(admin)
    return client


@pytest.mark.django_db
def test_staff_filter_artists_by_sumup_status_and_search_by_email(staff_client, make_artist):
    expired = make_artist(
        display_name="Expired Act", sumup_connection_status=ConnectionStatus.EXPIRED
    )
    make_artist(display_name="Fresh Act")

    filtered = staff_client.get(
        "/admin/accounts/artistprofile/?sumup_connection_status__exact=expired"
    )
    assert filtered.status_code == 200
    assert "Expired Act" in filtered.text and "Fresh Act" not in filtered.text

    searched = staff_client.get(f"/admin/accounts/artistprofile/?q={expired.user.email}")
    assert "Expired Act" in searched.text and "Fresh Act" not in searched.text


@pytest.mark.django_db
def test_the_admin_never_shows_a_token(staff_client, make_artist):
    profile = make_artist()
    profile.update_sumup_connection(
        {
            "access_token": "secret-access-abc",
            "refresh_token": "secret-refresh-def",
            "expires_in": 60,
        }
    )
    for url in (
        "/admin/accounts/artistprofile/",
        f"/admin/accounts/artistprofile/{profile.pk}/change/",
    ):
        page = staff_client.get(url)
        assert page.status_code == 200
        assert "secret-access-abc" not in page.text
        assert "secret-refresh-def" not in page.text
    change = staff_client.get(f"/admin/accounts/artistprofile/{profile.pk}/change/")
    assert "Access token held" in change.text

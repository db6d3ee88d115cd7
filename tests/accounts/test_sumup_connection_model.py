from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection

from accounts.models import ArtistProfile, ConnectionStatus, User
from accounts.sumup.connection import cleared_connection

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.mark.django_db
def test_a_profile_can_be_created_right_after_its_user_as_the_runbook_does():
    user = User.objects.create_user(
        username="test_artist", email="test@example.com", user_type="artist"
    )
    profile = ArtistProfile.objects.create(user=user, display_name="Test Artist")

    assert profile.is_sumup_connected is False
    assert profile.sumup_connection_status == "not_connected"

    profile.update_sumup_connection(
        {"access_token": "test_token", "refresh_token": "test_refresh", "expires_in": 3600}
    )
    assert profile.is_sumup_connected is True
    user.delete()
    assert not ArtistProfile.objects.filter(pk=profile.pk).exists()


@pytest.mark.django_db
@time_machine.travel(NOW, tick=False)
def test_update_accepts_expires_in_and_sets_connected_since_only_once(make_artist):
    profile = make_artist()
    profile.update_sumup_connection(
        {"access_token": "a1", "refresh_token": "r1", "expires_in": 3599}
    )
    profile.refresh_from_db()
    assert profile.sumup_expires_at == NOW + timedelta(seconds=3599)
    assert profile.sumup_connected_at == NOW
    assert profile.sumup_token_type == "Bearer"

    with time_machine.travel(NOW + timedelta(hours=2), tick=False):
        profile.update_sumup_connection({"access_token": "a2", "expires_in": 3599})
    profile.refresh_from_db()
    assert profile.sumup_connected_at == NOW
    assert profile.sumup_access_token == "a2"
    assert profile.sumup_refresh_token == "r1", "a response without refresh_token keeps the old one"


@pytest.mark.django_db
def test_a_reconnect_after_a_lapse_is_connected_since_the_reconnect_same_merchant_or_not(
    make_artist,
):
    profile = make_artist()
    grant = {"access_token": "a1", "refresh_token": "r1", "expires_in": 60, "merchant_code": "M1"}
    with time_machine.travel(NOW, tick=False):
        profile.update_sumup_connection(grant)
    ArtistProfile.objects.filter(pk=profile.pk).update(
        **cleared_connection(profile, ConnectionStatus.EXPIRED)
    )
    profile.refresh_from_db()
    assert (profile.sumup_merchant_code, profile.sumup_connected_at) == ("M1", NOW)

    later = NOW + timedelta(days=3)
    with time_machine.travel(later, tick=False):
        profile.update_sumup_connection({**grant, "access_token": "a2", "refresh_token": "r2"})
    profile.refresh_from_db()
    assert profile.sumup_connection_status == ConnectionStatus.CONNECTED
    assert profile.sumup_connected_at == later


@pytest.mark.django_db
def test_update_accepts_expires_at_as_datetime_iso_string_or_epoch(make_artist):
    profile = make_artist()
    at = datetime(2027, 1, 1, 9, 30, tzinfo=UTC)
    for value in (at, at.isoformat(), at.timestamp()):
        profile.update_sumup_connection({"access_token": "a", "expires_at": value})
        profile.refresh_from_db()
        assert profile.sumup_expires_at == at


@pytest.mark.django_db
def test_update_refuses_a_response_without_an_access_token_and_changes_nothing(make_artist):
    profile = make_artist()
    with pytest.raises(ValueError, match="no access_token"):
        profile.update_sumup_connection({"refresh_token": "r"})
    profile.refresh_from_db()
    assert profile.sumup_connection_status == ConnectionStatus.NOT_CONNECTED
    assert profile.sumup_refresh_token is None


@pytest.mark.django_db
def test_token_expired_follows_the_clock(make_artist):
    profile = make_artist()
    assert profile.sumup_token_expired is False, "no token held, nothing expired"
    with time_machine.travel(NOW, tick=False):
        profile.update_sumup_connection({"access_token": "a", "expires_in": 60})
        assert profile.sumup_token_expired is False
    with time_machine.travel(NOW + timedelta(seconds=61), tick=False):
        assert profile.sumup_token_expired is True


@pytest.mark.django_db
def test_disconnect_clears_tokens_and_merchant(make_artist):
    profile = make_artist()
    profile.update_sumup_connection(
        {"access_token": "a", "refresh_token": "r", "expires_in": 60, "merchant_code": "MH4H92C7"}
    )
    profile.disconnect_sumup()
    profile.refresh_from_db()
    assert profile.sumup_connection_status == ConnectionStatus.NOT_CONNECTED
    assert profile.is_sumup_connected is False
    assert (profile.sumup_access_token, profile.sumup_refresh_token) == (None, None)
    assert (profile.sumup_merchant_code, profile.sumup_connected_at) == (None, None)


@pytest.mark.django_db
def test_tokens_are_stored_encrypted_and_read_back_in_clear(make_artist):
    profile = make_artist()
    profile.update_sumup_connection(
        {"access_token": "plain-access-123", "refresh_token": "plain-refresh-456", "expires_in": 60}
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT sumup_access_token, sumup_refresh_token FROM accounts_artistprofile "
            "WHERE id = %s",
            [profile.pk],
        )
        raw_access, raw_refresh = cursor.fetchone()
    assert "plain-access-123" not in raw_access
    assert "plain-refresh-456" not in raw_refresh
    reloaded = ArtistProfile.objects.get(pk=profile.pk)
    assert reloaded.sumup_access_token == "plain-access-123"
    assert reloaded.sumup_refresh_token == "plain-refresh-456"
    assert "plain-access" not in str(reloaded) and "plain-access" not in repr(reloaded)


@pytest.mark.django_db
def test_rotating_keys_reencrypts_every_token_with_the_newest(make_artist, settings, capsys):
    from cryptography.fernet import Fernet
    from django.core.management import call_command

    from accounts.sumup import crypto

    configured = settings.SUMUP_TOKEN_KEYS
    old_key = configured[0]
    profile = make_artist()
    profile.update_sumup_connection(
        {"access_token": "acc-1", "refresh_token": "ref-1", "expires_in": 60}
    )

    new_key = Fernet.generate_key().decode()
    try:
        settings.SUMUP_TOKEN_KEYS = [new_key, old_key]
        crypto.reset_keys()
        call_command("reencrypt_sumup_tokens")
        assert "Re-encrypted the tokens of 1 artist(s)" in capsys.readouterr().out

        settings.SUMUP_TOKEN_KEYS = [new_key]  # the old key is gone now
        crypto.reset_keys()
        reloaded = ArtistProfile.objects.get(pk=profile.pk)
        assert (reloaded.sumup_access_token, reloaded.sumup_refresh_token) == ("acc-1", "ref-1")
    finally:
        settings.SUMUP_TOKEN_KEYS = configured
        crypto.reset_keys()

"""Campaigns as the admin's tests need them: the admin's addresses, a draft made through
the services, and recipients worked to each outcome."""

from datetime import datetime

from django.urls import reverse

from campaigns import services
from campaigns.models import Campaign, Recipient


def admin_url(name: str, *args: object) -> str:
    return reverse(f"admin:campaigns_campaign_{name}", args=args)


def draft(**fields: object) -> Campaign:
    fields.setdefault("name", "Reconnect")
    return services.create(Campaign(**fields), actor="test")


def one_of_each_outcome(campaign: Campaign, now: datetime) -> None:
    """Four of the campaign's recipients worked at `now`, as workers would leave them:
    one sent, one delivered, one failed and one whose outcome is unknown."""
    first, second, third, fourth, *_ = campaign.recipients.all()
    worked = {"claimed_at": now, "updated_at": now}
    status = Recipient.Status
    Recipient.objects.filter(pk=first.pk).update(status=status.SENT, sent_at=now, **worked)
    Recipient.objects.filter(pk=second.pk).update(status=status.DELIVERED, sent_at=now, **worked)
    Recipient.objects.filter(pk=third.pk).update(status=status.FAILED, **worked)
    Recipient.objects.filter(pk=fourth.pk).update(status=status.UNKNOWN, **worked)

from django.apps import AppConfig


class CampaignsConfig(AppConfig):
    name = "campaigns"
    verbose_name = "Email campaigns"

    def ready(self) -> None:
        from anymail.signals import tracking

        from accounts.signals import sumup_grant_lapsed
        from campaigns import checks
        from campaigns.services import on_sumup_grant_lapsed
        from campaigns.tracking import on_tracking

        tracking.connect(on_tracking, dispatch_uid="campaigns.tracking")
        # The token refresh found a grant dead: ask the artist to reconnect.
        sumup_grant_lapsed.connect(on_sumup_grant_lapsed, dispatch_uid="campaigns.lapse_notice")
        checks.register()

from django.apps import AppConfig


class CampaignsConfig(AppConfig):
    name = "campaigns"
    verbose_name = "Email campaigns"

    def ready(self) -> None:
        from anymail.signals import tracking

        from campaigns import checks
        from campaigns.tracking import on_tracking

        tracking.connect(on_tracking, dispatch_uid="campaigns.tracking")
        checks.register()

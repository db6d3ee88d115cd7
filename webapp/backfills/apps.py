from django.apps import AppConfig


class BackfillsConfig(AppConfig):
    name = "backfills"
    verbose_name = "Data backfills"

    def ready(self) -> None:
        from backfills import registry

        registry.autodiscover()

from typing import Any

from django.core.checks import CheckMessage, Error, Tags, register
from django.core.exceptions import ImproperlyConfigured

from accounts.sumup import crypto


@register(Tags.security, deploy=True)
def token_keys_configured(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    try:
        crypto.reset_keys()
        crypto.encrypt("check")
    except ImproperlyConfigured as exc:
        return [Error(str(exc), id="accounts.E001")]
    return []

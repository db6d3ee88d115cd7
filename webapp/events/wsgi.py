import os

from django.core.wsgi import get_wsgi_application

from events.startup import settings_or_exit

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "events.settings")

# 4 is gunicorn's "App failed to load": its master stops instead of booting the worker
# again and again, each time failing on the same setting.
settings_or_exit(status=4)
application = get_wsgi_application()

# gunicorn configuration for `Procfile`'s web process: `gunicorn -c config/gunicorn.conf.py`.
# Every value comes from YABOT's settings (see .env.example), through the same function
# `yabot run` uses.
import sys

from yabot.errors import ConfigError
from yabot.serving import gunicorn_config

try:
    globals().update(gunicorn_config())
except ConfigError as exc:
    sys.exit(f"yabot: {exc}")

# gunicorn configuration by file, for `gunicorn -c config/gunicorn.conf.py` from a checkout:
# the same as the Procfile's `gunicorn -c python:yabot.gunicorn_conf` (every value from
# YABOT's settings; see yabot/gunicorn_conf.py).
from yabot.gunicorn_conf import *  # noqa: F403

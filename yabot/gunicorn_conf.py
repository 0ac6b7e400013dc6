"""gunicorn's configuration for the Procfile's web process:
``gunicorn -c python:yabot.gunicorn_conf`` (every value from YABOT's settings).

Settings are read and checked before the application is imported, so a bad value is one line
and exit code 2 at once. Run from a checkout with the package installed elsewhere, gunicorn
has put the checkout first on ``sys.path``; this module then steps aside for the installed
copy (see `_installed_copy_elsewhere`), so the installed package is what runs.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import sys
from pathlib import Path


def _installed_copy_elsewhere() -> Path | None:
    """The folder of the installed `yabot` package when it is not the one running this file
    (an editable install, or no install, counts as this one). The checkout itself is not
    searched: a build leaves its own ``yabot.egg-info`` there."""
    checkout = Path(__file__).resolve().parents[1]
    elsewhere = [entry for entry in sys.path if _resolved(entry) != checkout]
    distribution = next(iter(importlib.metadata.distributions(name="yabot", path=elsewhere)),
                        None)
    if distribution is None:
        return None
    installed = Path(str(distribution.locate_file("yabot/__init__.py"))).resolve().parent
    here = Path(__file__).resolve().parent
    return installed if installed.is_dir() and installed != here else None


def _resolved(entry: str) -> Path:
    return Path(os.path.abspath(entry or ".")).resolve()


_installed = _installed_copy_elsewhere()
if _installed is not None:
    _checkout = Path(__file__).resolve().parents[1]
    sys.path[:] = [entry for entry in sys.path if _resolved(entry) != _checkout]
    for _name in [n for n in sys.modules if n.split(".")[0] in ("yabot", "actors")]:
        del sys.modules[_name]
    # The import system takes whatever `sys.modules` holds under this name once this file has
    # run: the installed module, with its settings and hooks, is what gunicorn reads.
    importlib.import_module(__name__)
else:
    from yabot.errors import ConfigError
    from yabot.settings import load_settings
    from yabot.startup import config_failure

    try:
        _settings = load_settings()
    except ConfigError as _error:
        _failure = config_failure(_error)
        print(_failure.line(), file=sys.stderr)
        sys.exit(_failure.exit_code)

    from yabot.logs import configure_logging
    from yabot.serving import gunicorn_config

    configure_logging(_settings)  # the master's own lines, as the workers'
    globals().update(gunicorn_config(_settings))

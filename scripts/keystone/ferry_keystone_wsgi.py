"""Keystone's WSGI app for gunicorn (lib/keystone.ts).

Keystone's config parser reads sys.argv, which under gunicorn holds gunicorn's own flags: trim it
before the app is imported. The config file comes from OS_KEYSTONE_CONFIG_FILES.
"""
import sys

sys.argv = sys.argv[:1]

from keystone.wsgi.api import application  # noqa: E402,F401

"""The web console: static files (``static/``) that ``tusk serve`` hands to a browser.

The console is one HTML page, one vanilla JavaScript module and one stylesheet, with no build
step and nothing fetched from elsewhere. Everything it shows comes from the same ``/v1`` API the
CLI and the SDK call, with the same bearer token; ``tusk.api.console`` serves these files.
"""

from __future__ import annotations

from pathlib import Path

STATIC_DIR = Path(__file__).resolve().parent / "static"

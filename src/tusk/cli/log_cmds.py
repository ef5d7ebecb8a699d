"""'tusk logs' and 'inspect datum': what user code printed, per datum, with timestamps."""

from __future__ import annotations

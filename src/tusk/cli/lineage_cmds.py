"""'tusk lineage' and 'tusk explain': where an output file came from, and why each datum ran."""

from __future__ import annotations

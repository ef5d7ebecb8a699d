"""tusk: versioned data and data-driven pipelines, Pachyderm-style, with no cluster.

The user-code API (``tusk.next_datum``, ``tusk.batch_all_datums``) is loaded on first use, so
``import tusk`` (which every ``tusk`` command does) stays free.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tusk.batching import batch_all_datums, next_datum

__all__ = ["batch_all_datums", "next_datum"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from tusk import batching

        return getattr(batching, name)
    raise AttributeError(f"module 'tusk' has no attribute {name!r}")

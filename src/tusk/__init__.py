"""tusk: versioned data and data-driven pipelines, Pachyderm-style, with no cluster.

The SDK (``tusk.Client``) and the user-code API (``tusk.next_datum``, ``tusk.batch_all_datums``)
are loaded on first use, so ``import tusk`` (which every ``tusk`` command does) stays free.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tusk.api.client import Client
    from tusk.batching import batch_all_datums, next_datum

__all__ = ["Client", "batch_all_datums", "next_datum"]


def __getattr__(name: str) -> Any:
    if name == "Client":
        from tusk.api.client import Client

        return Client
    if name in __all__:
        from tusk import batching

        return getattr(batching, name)
    raise AttributeError(f"module 'tusk' has no attribute {name!r}")

"""The old home of the runtimes, kept so ``tusk.runners.<module>`` imports keep working.

Runtimes now live in ``tusk.workers`` (``base``, ``limits``, ``user_env``) and
``tusk.workers.runtimes`` (``process``, ``sandbox``, ``view``); import them from there. Each old
module name is the very same module object, so nothing is loaded or configured twice.
"""

from __future__ import annotations

import sys

from tusk.workers import base, limits, user_env
from tusk.workers.runtimes import process, sandbox, view

for _name, _module in {"base": base, "limits": limits, "user_env": user_env, "process": process,
                       "sandbox": sandbox, "view": view}.items():
    sys.modules[f"{__name__}.{_name}"] = _module

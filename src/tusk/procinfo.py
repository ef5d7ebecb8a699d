"""Processes by pid and start time, as Linux's ``/proc`` describes them.

A pid alone is reused by the kernel; a pid with its start time names one process for good.
The supervisor (spouts and services) and the scratch-file owners of the store both rely on it.
"""

from __future__ import annotations


def proc_stat(pid: int) -> tuple[str, int, int] | None:
    """(state, process group, start time in clock ticks since boot) of ``pid``, or None when
    there is no such process (or no ``/proc``)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    fields = data[data.rindex(b")") + 2:].split()
    return fields[0].decode(), int(fields[2]), int(fields[19])  # fields 3, 5 and 22 of proc(5)

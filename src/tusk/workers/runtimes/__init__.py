"""Runtimes: the implementations of ``tusk.workers.base.Runtime`` (process, sandbox)."""

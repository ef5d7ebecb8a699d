"""Runners: how a datum's user code is executed (sandbox, process; container and Ray later)."""

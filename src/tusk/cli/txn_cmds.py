"""Transactions: 'start transaction' ... 'finish transaction' batch commits into one commit set."""

from __future__ import annotations

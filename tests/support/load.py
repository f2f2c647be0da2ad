"""Concurrent HTTP clients that record every answer: pooltender's own load generator
(the one behind ``pooltender bench``), re-exported for the fault tests."""

from pooltender.cli._load import Answer, Load, Request

__all__ = ["Answer", "Load", "Request"]

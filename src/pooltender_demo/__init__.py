"""The demo service: an ordinary user of pooltender's public API."""

from .app import create_app as create_app
from .app import demo_defaults as demo_defaults

__all__ = ["create_app", "demo_defaults"]

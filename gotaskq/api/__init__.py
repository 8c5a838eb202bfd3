"""The HTTP API of gotaskq (Starlette): ``create_app(App(...))``."""

from .app import create_app

__all__ = ["create_app"]

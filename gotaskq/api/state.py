"""Where a request finds its gotaskq App: ``starlette_app.state.gotaskq``, set by create_app."""

from __future__ import annotations

from starlette.requests import Request

from ..app import App


def gotaskq_app(request: Request) -> App:
    app: App = request.app.state.gotaskq
    return app

"""The config API application: routers, error handlers, and the collaborators they share."""

from __future__ import annotations

from typing import cast

from fastapi import FastAPI, Request
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from router import __version__
from router.broker import BrokerAdmin
from router.settings import Settings

DESCRIPTION = (
    "Manage webhook subscriptions and read their delivery logs. "
    "Authenticate with `Authorization: Bearer <api key>`."
)


def create_app(settings: Settings, engine: Engine, admin: BrokerAdmin) -> FastAPI:
    """The FastAPI app, its collaborators kept on ``app.state``."""
    # Imported here: the route modules read app.state through the accessors below.
    from fastapi.staticfiles import StaticFiles

    from config import health, logs, replay, ui, webhooks
    from config.auth_throttle import FailedAuthThrottle
    from config.body_limit import BodyLimitMiddleware
    from config.errors import EXCEPTION_HANDLERS, error_responses
    from config.ui_pages import STATIC_DIR

    app = FastAPI(
        title="webhook-router",
        version=__version__,
        description=DESCRIPTION,
        exception_handlers=dict(EXCEPTION_HANDLERS),
        # Any request may carry a body, and any body may be over the limit.
        responses=error_responses(413),
    )
    app.add_middleware(BodyLimitMiddleware)
    app.state.settings = settings
    # Per app, hence per API process: see config/auth_throttle.py.
    app.state.failed_auth = FailedAuthThrottle()
    app.state.engine = engine
    app.state.sessions = sessionmaker(engine, expire_on_commit=False)
    app.state.admin = admin
    app.include_router(webhooks.router)
    app.include_router(logs.router)
    app.include_router(replay.router)
    app.include_router(health.router)
    # The admin web pages: HTML, kept out of the OpenAPI schema of the JSON API. The
    # stylesheet is mounted first: the pages' catch-all 404 would shadow it otherwise.
    app.mount("/ui/static", StaticFiles(directory=STATIC_DIR), name="ui-static")
    app.include_router(ui.router)
    return app


def get_settings(request: Request) -> Settings:
    """The app's settings."""
    return cast(Settings, request.app.state.settings)


def get_engine(request: Request) -> Engine:
    """The app's database engine."""
    return cast(Engine, request.app.state.engine)


def get_sessions(request: Request) -> sessionmaker[Session]:
    """The app's session factory (objects stay usable after commit)."""
    return cast("sessionmaker[Session]", request.app.state.sessions)


def get_admin(request: Request) -> BrokerAdmin:
    """The app's RabbitMQ admin client."""
    return cast(BrokerAdmin, request.app.state.admin)

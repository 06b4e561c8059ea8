"""Liveness, readiness and Prometheus metrics: unauthenticated, for orchestrators and scrapers."""

from __future__ import annotations

import logging
from typing import Literal

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from config.app import get_admin, get_engine
from router.errors import BrokerUnavailable
from router.metrics import render_metrics


class Health(BaseModel):
    """Liveness."""

    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    """Readiness: each dependency is ``ok`` or ``unavailable``."""

    status: Literal["ready", "unavailable"]
    database: Literal["ok", "unavailable"]
    broker: Literal["ok", "unavailable"]


logger = logging.getLogger(__name__)

router = APIRouter(tags=["operations"])


@router.get("/healthz")
def healthz() -> Health:
    """The process is up and serving requests."""
    return Health()


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "Not ready"}},
)
def readyz(request: Request) -> Response:
    """Ready when both the database and the broker answer."""
    readiness = Readiness(
        status="ready",
        database="ok" if _database_ok(request) else "unavailable",
        broker="ok" if _broker_ok(request) else "unavailable",
    )
    ready = readiness.database == "ok" and readiness.broker == "ok"
    if not ready:
        readiness.status = "unavailable"
    return JSONResponse(readiness.model_dump(), status_code=200 if ready else 503)


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus exposition"}},
)
def metrics() -> Response:
    """Prometheus metrics, merged over worker processes when several run."""
    body, content_type = render_metrics()
    return Response(content=body, media_type=content_type)


def _database_ok(request: Request) -> bool:
    try:
        with get_engine(request).connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        logger.warning("readiness: database unavailable: %s", exc)
        return False
    return True


def _broker_ok(request: Request) -> bool:
    try:
        with get_admin(request).channel():
            pass
    except (BrokerUnavailable, OSError) as exc:
        logger.warning("readiness: broker unavailable: %s", exc)
        return False
    return True

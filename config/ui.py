"""The admin web pages under ``/ui``: server-rendered HTML (Jinja2), no JavaScript build.

config/ui_sign_in.py      sign in and out (the API key in a cookie: ui_session.py)
config/ui_webhooks.py     the webhooks list, the "+"/edit form, delete, send test
config/ui_logs.py         a webhook's attempts, one attempt, the replay buttons
config/ui_forms.py        the webhook form <-> the API's pydantic models
config/ui_pages.py        rendering, flash messages, HTML error pages
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from config import ui_logs, ui_sign_in, ui_webhooks
from config.errors import ApiError
from config.ui_pages import WEBHOOKS_PATH, PageRoute, redirect
from config.ui_session import User

router = APIRouter(prefix="/ui", include_in_schema=False, route_class=PageRoute)
router.include_router(ui_sign_in.router)
router.include_router(ui_webhooks.router)
router.include_router(ui_logs.router)


@router.get("")
@router.get("/")
def home() -> Response:
    """The webhooks list is the home page."""
    return redirect(WEBHOOKS_PATH)


@router.get("/{path:path}")
def unknown_page(path: str, user: User) -> Response:
    """Any other address under /ui: an HTML 404 (registered last, so it matches last)."""
    raise ApiError(404, "there is no such page")

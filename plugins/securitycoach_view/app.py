"""The SecurityCoach view's FastAPI app: routes → ``securitycoach.console`` pages, Airflow's auth on all."""

from __future__ import annotations

import logging
from functools import cache
from urllib.parse import quote

from airflow.api_fastapi.app import get_auth_manager
from airflow.api_fastapi.core_api.security import GetUserDep
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from operators.warehouse_hook import WarehouseHook
from securitycoach import console
from securitycoach.html_report import ReportError
from securitycoach.warehouse.migrate import SchemaNotCurrent, check_schema

log = logging.getLogger(__name__)

URL_PREFIX = "/securitycoach"
RESOURCE = "SecurityCoach"
HEADERS = {
    "Content-Security-Policy": console.CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",  # the pages name people: no copy in any cache
}


def authorized(user: GetUserDep) -> None:
    """The caller is logged in to Airflow (else 401 from ``get_user``) and may see the view."""
    if not get_auth_manager().is_authorized_custom_view(method="GET", resource_name=RESOURCE, user=user):
        raise HTTPException(status_code=403, detail=f"user {user.get_name()!r} may not open the {RESOURCE} view")


app = FastAPI(title=RESOURCE, dependencies=[Depends(authorized)], docs_url=None, redoc_url=None, openapi_url=None)


@cache
def _warehouse() -> Engine:
    return WarehouseHook().get_engine()


def _engine() -> Engine:
    engine = _warehouse()
    check_schema(engine)  # a version read: the view never migrates
    return engine


def _base(request: Request) -> str:
    return request.scope.get("root_path", "").rstrip("/")


def _page(html: str) -> HTMLResponse:
    return HTMLResponse(html, headers=HEADERS)


@app.exception_handler(StarletteHTTPException)
def _http_error(request: Request, exc: StarletteHTTPException):
    if exc.status_code == 401 and "text/html" in request.headers.get("accept", ""):
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(get_auth_manager().get_url_login(next_url=here), status_code=303)
    return HTMLResponse(console.error_page(exc.status_code, str(exc.detail), base=_base(request)),
                        status_code=exc.status_code, headers=HEADERS)


@app.exception_handler(console.NotFound)
def _not_found(request: Request, exc: console.NotFound):
    return HTMLResponse(console.error_page(404, str(exc), base=_base(request)), status_code=404, headers=HEADERS)


@app.exception_handler(ReportError)
def _bad_period(request: Request, exc: ReportError):
    return HTMLResponse(console.error_page(400, str(exc), base=_base(request)), status_code=400, headers=HEADERS)


@app.exception_handler(SchemaNotCurrent)
def _not_current(request: Request, exc: SchemaNotCurrent):
    return HTMLResponse(console.error_page(503, str(exc).splitlines()[0], base=_base(request)), status_code=503,
                        headers=HEADERS)


@app.exception_handler(SQLAlchemyError)
def _warehouse_down(request: Request, exc: SQLAlchemyError):
    log.error("SecurityCoach view: the warehouse query failed: %s", type(exc).__name__)
    return HTMLResponse(console.error_page(503, "the warehouse cannot be read now (see the api-server log)",
                                           base=_base(request)), status_code=503, headers=HEADERS)


@app.get("/", response_class=HTMLResponse)
def tenants(request: Request) -> HTMLResponse:
    return _page(console.tenants_page(_engine(), base=_base(request)))


@app.get("/t/{tenant_id}", response_class=HTMLResponse)
def tenant(request: Request, tenant_id: str) -> RedirectResponse:
    return RedirectResponse(f"{_base(request)}/t/{quote(tenant_id, safe='')}/report", status_code=303)


@app.get("/t/{tenant_id}/people/{ksat_user_id}", response_class=HTMLResponse)
def timeline(request: Request, tenant_id: str, ksat_user_id: int) -> HTMLResponse:
    return _page(console.timeline_page(_engine(), tenant_id, ksat_user_id, base=_base(request)))


@app.get("/t/{tenant_id}/report", response_class=HTMLResponse)
def report(request: Request, tenant_id: str, start: str | None = None, end: str | None = None) -> HTMLResponse:
    return _page(console.report_page(_engine(), tenant_id, start, end, base=_base(request)))


@app.get("/t/{tenant_id}/{page}", response_class=HTMLResponse)
def tenant_page(request: Request, tenant_id: str, page: str) -> HTMLResponse:
    return _page(console.tenant_page(_engine(), tenant_id, page, base=_base(request)))

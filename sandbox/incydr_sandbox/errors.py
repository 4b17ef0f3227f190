"""Error answers: RFC 7807 problem details, with the status a real API gateway would use."""

from __future__ import annotations

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException


class ApiError(Exception):
    def __init__(self, status: int, title: str, detail: str, extra: dict | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail, self.extra = status, title, detail, extra or {}
        self.headers = headers or {}


def problem(request: Request, status: int, title: str, detail: str, extra: dict | None = None) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail,
            "instance": request.url.path, **(extra or {})}
    return JSONResponse(body, status_code=status)


async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
    response = problem(request, exc.status, exc.title, exc.detail, exc.extra)
    response.headers.update(exc.headers)
    return response


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    details = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:]) or e['loc'][0]}: {e['msg']}" for e in exc.errors())
    return problem(request, 400, "Bad Request", details)


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    return problem(request, exc.status_code, "Not Found" if exc.status_code == 404 else "Error", str(exc.detail))


def install(app) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)

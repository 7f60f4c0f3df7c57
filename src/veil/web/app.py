"""The review app's routes: a thin HTTP layer over Library, behind the Guard."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from .._errors import VeilError
from .guard import TOKEN_COOKIE, TOKEN_PARAM, Guard
from .library import Library, RequestError

MAX_JSON_BYTES = 1024 * 1024  # an export request: a few kB per hundred regions
MAX_PLAN_BYTES = 2 * 1024 * 1024  # an uploaded plan file for one picture
# The only files served from the package; anything else under /static/ is a 404.
STATIC_FILES = {"app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8"}


def _static(name: str) -> bytes:
    return resources.files("veil.web").joinpath("static", name).read_bytes()


async def _read_limited(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it is over `limit` bytes."""
    length = request.headers.get("content-length")
    if length is not None:
        if not length.isdigit():
            raise RequestError("bad Content-Length")
        if int(length) > limit:
            raise RequestError(f"upload too large (limit {limit // 1024} kB)", 413)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise RequestError(f"upload too large (limit {limit // 1024} kB)", 413)
    return bytes(body)


def create_app(library: Library, token: str, port: int) -> Guard:
    """The ASGI app for one run: routes over `library`, wrapped in the token and host checks."""

    async def index(request: Request) -> Response:
        if TOKEN_PARAM in request.query_params:
            # The Guard has checked the token: keep it in a cookie the page's scripts cannot read,
            # and take it out of the address bar and history.
            response: Response = RedirectResponse("/", status_code=303)
            response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict", path="/")
            return response
        page = _static("index.html").decode().replace("{{TOKEN}}", token)
        return HTMLResponse(page)

    async def static(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in STATIC_FILES:
            raise HTTPException(404)
        return Response(_static(name), media_type=STATIC_FILES[name])

    async def files(request: Request) -> Response:
        return JSONResponse(library.listing())

    async def picture(request: Request) -> Response:
        data = await run_in_threadpool(library.picture, request.path_params["item"])
        return Response(data, media_type="image/jpeg")

    async def regions(request: Request) -> Response:
        return JSONResponse(await run_in_threadpool(library.regions, request.path_params["item"]))

    async def video(request: Request) -> Response:
        return JSONResponse(await run_in_threadpool(library.video, request.path_params["item"]))

    async def video_frame(request: Request) -> Response:
        data = library.video_frame(request.path_params["item"], request.path_params["frame"])
        return Response(data, media_type="image/jpeg")

    async def upload_plan(request: Request) -> Response:
        library.item(request.path_params["item"])
        body = await _read_limited(request, MAX_PLAN_BYTES)
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise RequestError("the plan file is not UTF-8 text") from None
        result = await run_in_threadpool(library.load_plan, request.path_params["item"], text)
        return JSONResponse(result)

    async def export(request: Request) -> Response:
        library.item(request.path_params["item"])
        body = await _read_limited(request, MAX_JSON_BYTES)
        try:
            data: Any = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise RequestError("expected JSON") from None
        job = await run_in_threadpool(library.start_export, request.path_params["item"], data)
        return JSONResponse(job.to_json(), status_code=202)

    async def job(request: Request) -> Response:
        return JSONResponse(library.job(request.path_params["job"]))

    async def request_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestError)
        return JSONResponse({"error": exc.message}, status_code=exc.status)

    async def veil_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, VeilError)
        return JSONResponse({"error": exc.message}, status_code=422)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return PlainTextResponse(exc.detail, status_code=exc.status_code)

    routes = [
        Route("/", index, methods=["GET"]),
        Route("/static/{name}", static, methods=["GET"]),
        Route("/api/files", files, methods=["GET"]),
        Route("/api/files/{item:int}/picture", picture, methods=["GET"]),
        Route("/api/files/{item:int}/regions", regions, methods=["GET"]),
        Route("/api/files/{item:int}/video", video, methods=["GET"]),
        Route("/api/files/{item:int}/frames/{frame:int}", video_frame, methods=["GET"]),
        Route("/api/files/{item:int}/plan", upload_plan, methods=["POST"]),
        Route("/api/files/{item:int}/export", export, methods=["POST"]),
        Route("/api/jobs/{job}", job, methods=["GET"]),
    ]
    app = Starlette(routes=routes, exception_handlers={
        RequestError: request_error, VeilError: veil_error, HTTPException: http_error})
    return Guard(app, token, port)


__all__ = ["create_app", "MAX_JSON_BYTES", "MAX_PLAN_BYTES"]

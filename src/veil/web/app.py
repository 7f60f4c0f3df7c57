"""The review app's routes: a thin HTTP layer over Library, behind the Guard."""

from __future__ import annotations

import json
import re
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
from .errors import RequestError
from .library import Library

MAX_JSON_BYTES = 1024 * 1024  # an export request: a few kB per hundred regions
MAX_PLAN_BYTES = 2 * 1024 * 1024  # an uploaded plan file for one picture
# The only files served from the package; anything else under /static/ is a 404.
STATIC_FILES = {"app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8"}
# File and frame numbers in paths: longer ones are refused before int() is asked to convert
# them (Python refuses over 4300 digits with a ValueError, which would be a 500).
MAX_NUMBER_DIGITS = 9
_NUMBERED = {"item": "file", "frame": "frame"}  # path parameter -> what the user calls it


def _static(name: str) -> bytes:
    return resources.files("veil.web").joinpath("static", name).read_bytes()


def _number(request: Request, name: str) -> int:
    """A file or frame number from the path: digits only (else 404), at most MAX_NUMBER_DIGITS (else 400)."""
    text, what = request.path_params[name], _NUMBERED[name]
    if not re.fullmatch(r"[0-9]+", text):
        raise RequestError(f"no such {what}", 404)
    if len(text) > MAX_NUMBER_DIGITS:
        raise RequestError(f"{what} number too long (at most {MAX_NUMBER_DIGITS} digits)")
    return int(text)


def _json(body: bytes) -> Any:
    """The body as JSON; anything Python's decoder refuses is a 400, never a 500."""
    try:
        return json.loads(body)
    except RecursionError:
        raise RequestError("expected JSON (this is nested too deeply)") from None
    except ValueError:  # not JSON, not UTF-8, or an integer of over 4300 digits
        raise RequestError("expected JSON") from None


async def _read_limited(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it is over `limit` bytes."""
    length = request.headers.get("content-length")
    if length is not None:
        # ASCII digits only: str.isdigit() also accepts digits such as "²" that int() refuses.
        if not re.fullmatch(r"[0-9]{1,15}", length):
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
        data = await run_in_threadpool(library.picture, _number(request, "item"))
        return Response(data, media_type="image/jpeg")

    async def regions(request: Request) -> Response:
        return JSONResponse(await run_in_threadpool(library.regions, _number(request, "item")))

    async def video(request: Request) -> Response:
        return JSONResponse(await run_in_threadpool(library.video, _number(request, "item")))

    async def video_frame(request: Request) -> Response:
        data = library.video_frame(_number(request, "item"), _number(request, "frame"))
        return Response(data, media_type="image/jpeg")

    async def upload_plan(request: Request) -> Response:
        item = library.item(_number(request, "item")).id
        body = await _read_limited(request, MAX_PLAN_BYTES)
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise RequestError("the plan file is not UTF-8 text") from None
        result = await run_in_threadpool(library.load_plan, item, text)
        return JSONResponse(result)

    async def export(request: Request) -> Response:
        item = library.item(_number(request, "item")).id
        data = _json(await _read_limited(request, MAX_JSON_BYTES))
        job = await run_in_threadpool(library.start_export, item, data)
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
        Route("/api/files/{item}/picture", picture, methods=["GET"]),
        Route("/api/files/{item}/regions", regions, methods=["GET"]),
        Route("/api/files/{item}/video", video, methods=["GET"]),
        Route("/api/files/{item}/frames/{frame}", video_frame, methods=["GET"]),
        Route("/api/files/{item}/plan", upload_plan, methods=["POST"]),
        Route("/api/files/{item}/export", export, methods=["POST"]),
        Route("/api/jobs/{job}", job, methods=["GET"]),
    ]
    app = Starlette(routes=routes, exception_handlers={
        RequestError: request_error, VeilError: veil_error, HTTPException: http_error})
    return Guard(app, token, port)


__all__ = ["create_app", "MAX_JSON_BYTES", "MAX_PLAN_BYTES"]

"""The studio's web layer: the page and the JSON API under /api/ (Starlette).

Each endpoint translates one HTTP request into one call of `service.Studio` (or `blind`),
and every `PieceError` (a ValueError with an HTTP status) into `{"error": "one line"}` with
a 4xx — never a traceback. Blocking work (reading MIDI, rendering audio) runs in Starlette's
thread pool; generation runs on the job queue's own worker.

Requests that change something must say what they send (`application/json`, or
`audio/midi` / `application/octet-stream` for an upload): a browser cannot send those
to another origin without asking first, and we never answer that question, so no web page
elsewhere can drive the studio. When bound to loopback, a Host header that is not loopback
is refused too (DNS rebinding).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from ..checkpoint import package_version
from . import blind
from .jobs import FINISHED
from .pieces import ROOT, PieceError, check_id
from .primers import bundled_primer, bundled_primers
from .service import Studio, public_node

HERE = Path(__file__).parent
LOOPBACK_HOSTS = ["127.0.0.1", "localhost", "[::1]", "::1"]
UPLOAD_TYPES = ("audio/midi", "audio/x-midi", "application/octet-stream")
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "media-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'none'"
)
KEEP_ALIVE = 10.0  # seconds between comments on an idle event stream


def error(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def json_body(request: Request) -> Any:
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        raise PieceError("send the request body as application/json", 415)
    try:
        return json.loads(await request.body() or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise PieceError(f"the request body is not JSON ({e})") from None


async def read_upload(request: Request, limit: int) -> bytes:
    """The request body, refused (413) as soon as it passes `limit` bytes."""
    kind = request.headers.get("content-type", "").split(";")[0].strip()
    if kind not in UPLOAD_TYPES:
        raise PieceError(f"send the MIDI file as one of {', '.join(UPLOAD_TYPES)}", 415)
    # A file a little over the limit is read to its end before the 413 is sent, so the
    # client hears the reason instead of a connection reset mid-upload; past twice the limit
    # the connection is cut at once.
    too_big = PieceError(
        f"the file is larger than the {limit / 2**20:g} MiB a MIDI file may have (set "
        "MUSIC_TRANSFORMER_MAX_MIDI_MB to raise it)", 413,
    )  # fmt: skip
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > 2 * limit:
        raise too_big
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > 2 * limit:
            break
        if size <= limit:
            chunks.append(chunk)
    if size > limit:
        raise too_big
    return b"".join(chunks)


def piece_view(studio: Studio, piece: dict[str, Any]) -> dict[str, Any]:
    """A piece for the API: its tree (tokens counted, blind takes' models hidden until
    revealed), the current take and the blind trials."""
    revealed = {t["id"] for t in piece["blind"] if t["revealed"]}
    nodes = {}
    for node_id, node in piece["nodes"].items():
        label = node.get("blind")
        nodes[node_id] = public_node(node, hide=bool(label) and label.split(":")[0] not in revealed)
    view = {k: piece[k] for k in ("id", "name", "created", "primer", "current")}
    return {**view, "nodes": nodes, "blind": blind.trials(piece),
            "folder": str(studio.pieces.folder(piece["id"]))}  # fmt: skip


def build_app(studio: Studio, hosts: list[str] | None = None) -> Starlette:
    """The ASGI app serving `studio` (the page, /static/ and /api/); with `hosts`, only
    requests whose Host header names one of them are answered."""
    templates = Jinja2Templates(directory=str(HERE / "templates"))

    async def page(request: Request) -> Response:
        context = {"version": package_version()}
        response = templates.TemplateResponse(request, "index.html", context)
        response.headers["Content-Security-Policy"] = CSP
        return response

    async def api_index(request: Request) -> Response:
        return JSONResponse({"version": package_version(), "endpoints": API_DOC})

    async def models(request: Request) -> Response:
        catalog = await run_in_threadpool(studio.models.catalog)
        return JSONResponse({"models": catalog, "default": studio.models.default,
                             "blind_default": blind.default_pair(studio)})  # fmt: skip

    async def primers(request: Request) -> Response:
        return JSONResponse({"primers": bundled_primers()})

    async def pieces(request: Request) -> Response:
        if request.method == "GET":
            return JSONResponse({"pieces": await run_in_threadpool(studio.pieces.list)})
        if "bundled" in request.query_params:
            name, data = await run_in_threadpool(bundled_primer, request.query_params["bundled"])
        else:
            from midi_data.midi_io import max_midi_bytes

            data = await read_upload(request, max_midi_bytes())
            name = request.query_params.get("name", "")
        piece = await run_in_threadpool(studio.pieces.create, data, name)
        return JSONResponse(piece_view(studio, piece), status_code=201)

    async def piece(request: Request) -> Response:
        found = await run_in_threadpool(studio.pieces.load, request.path_params["piece"])
        return JSONResponse(piece_view(studio, found))

    async def current(request: Request) -> Response:
        body = await json_body(request)
        node = body.get("node") if isinstance(body, dict) else None
        chosen = await run_in_threadpool(studio.select, request.path_params["piece"], node)
        return JSONResponse(piece_view(studio, chosen))

    def take_args(request: Request) -> tuple[str, str]:
        return request.path_params["piece"], check_id(request.path_params["take"], "take")

    async def notes(request: Request) -> Response:
        return JSONResponse(await run_in_threadpool(studio.notes, *take_args(request)))

    async def audio(request: Request) -> Response:
        path = await run_in_threadpool(studio.audio, *take_args(request))
        return FileResponse(path, media_type="audio/wav")

    async def midi(request: Request) -> Response:
        piece_id, node = take_args(request)
        path = await run_in_threadpool(studio.take_file, piece_id, node)
        name = "primer" if node == ROOT else node
        return FileResponse(path, media_type="audio/midi", filename=f"{piece_id}-{name}.mid")

    async def export_audio(request: Request) -> Response:
        piece_id, node = take_args(request)
        path = await run_in_threadpool(studio.audio, piece_id, node, "mp3")
        name = "primer" if node == ROOT else node
        return FileResponse(path, media_type="audio/mpeg", filename=f"{piece_id}-{name}.mp3")

    async def command(request: Request) -> Response:
        line = await run_in_threadpool(studio.command, *take_args(request))
        return JSONResponse({"command": line})

    async def submit(request: Request) -> Response:
        body = await json_body(request)
        job = await run_in_threadpool(studio.submit, request.path_params["piece"], body)
        return JSONResponse(job.summary(), status_code=202)

    def find_job(request: Request):
        job = studio.jobs.get(request.path_params["job"])
        if job is None:
            raise PieceError(f"no job {request.path_params['job']!r}", 404)
        return job

    async def jobs(request: Request) -> Response:
        return JSONResponse({"jobs": [j.summary() for j in studio.jobs.jobs.values()]})

    async def job(request: Request) -> Response:
        found = find_job(request)
        found.seen()
        return JSONResponse(found.summary())

    async def cancel(request: Request) -> Response:
        found = find_job(request)
        studio.jobs.cancel(found)
        return JSONResponse(found.summary())

    async def events(request: Request) -> Response:
        found = find_job(request)
        start = request.headers.get("last-event-id") or request.query_params.get("from", "0")
        sent = int(start) if start.isdigit() else 0
        return StreamingResponse(
            event_stream(found, sent), media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )  # fmt: skip

    async def trials(request: Request) -> Response:
        piece_id = request.path_params["piece"]
        if request.method == "GET":
            found = await run_in_threadpool(studio.pieces.load, piece_id)
            return JSONResponse({"trials": blind.trials(found)})
        body = await json_body(request)
        job = await run_in_threadpool(blind.submit_trial, studio, piece_id, body)
        return JSONResponse(job.summary(), status_code=202)

    async def choose(request: Request) -> Response:
        body = await json_body(request)
        choice = body.get("choice") if isinstance(body, dict) else None
        args = (studio, request.path_params["piece"], request.path_params["trial"], choice)
        return JSONResponse(await run_in_threadpool(blind.choose, *args))

    async def reveal(request: Request) -> Response:
        await json_body(request)
        found = await run_in_threadpool(blind.reveal, studio, request.path_params["piece"])
        return JSONResponse({"trials": found})

    async def export(request: Request) -> Response:
        await json_body(request)
        return JSONResponse(
            await run_in_threadpool(blind.export, studio, request.path_params["piece"])
        )

    async def on_piece_error(request: Request, exc: Exception) -> Response:
        return error(str(exc), getattr(exc, "status", 400))

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return error(exc.detail or "error", exc.status_code)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        yield
        await run_in_threadpool(studio.jobs.stop)  # Ctrl-C: the running job stops too

    P, T = "/api/pieces/{piece}", "/api/pieces/{piece}/takes/{take}"
    routes = [
        Route("/", page),
        Route("/api", api_index),
        Route("/api/models", models),
        Route("/api/primers", primers),
        Route("/api/pieces", pieces, methods=["GET", "POST"]),
        Route(P, piece),
        Route(P + "/current", current, methods=["POST"]),
        Route(P + "/jobs", submit, methods=["POST"]),
        Route(T + "/notes", notes),
        Route(T + "/audio", audio),
        Route(T + "/midi", midi),
        Route(T + "/export.mp3", export_audio),
        Route(T + "/command", command),
        Route(P + "/blind", trials, methods=["GET", "POST"]),
        Route(P + "/blind/reveal", reveal, methods=["POST"]),
        Route(P + "/blind/export", export, methods=["POST"]),
        Route(P + "/blind/{trial}", choose, methods=["POST"]),
        Route("/api/jobs", jobs),
        Route("/api/jobs/{job}", job),
        Route("/api/jobs/{job}/cancel", cancel, methods=["POST"]),
        Route("/api/jobs/{job}/events", events),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    middleware = [Middleware(TrustedHostMiddleware, allowed_hosts=hosts)] if hosts else []
    handlers = {PieceError: on_piece_error, HTTPException: on_http_error}
    return Starlette(routes=routes, middleware=middleware, exception_handlers=handlers,
                     lifespan=lifespan)  # fmt: skip


async def event_stream(job, sent: int):
    """Server-sent events of `job` from event number `sent` until it finishes; the job
    counts this stream as a watcher while it is open (`Job.orphaned`)."""
    job.watchers += 1
    beat = time.monotonic()
    try:
        while True:
            while sent < len(job.events):
                name, data = job.events[sent]
                sent += 1
                yield f"id: {sent}\nevent: {name}\ndata: {json.dumps(data)}\n\n"
                beat = time.monotonic()
            if job.state in FINISHED and sent >= len(job.events):
                return
            if time.monotonic() - beat > KEEP_ALIVE:
                yield ": keep-alive\n\n"
                beat = time.monotonic()
            await asyncio.sleep(0.2)
    finally:
        job.watchers -= 1
        job.seen()


# The API at a glance (GET /api returns it; README documents it).
API_DOC = {
    "GET /api/models": "models on offer: name, kind, what it suits, its default temperature",
    "GET /api/primers": "bundled primers",
    "GET /api/pieces": "pieces kept on disk",
    "POST /api/pieces?name=F.mid": "new piece from the MIDI file in the body (audio/midi)",
    "POST /api/pieces?bundled=NAME": "new piece from a bundled primer",
    "GET /api/pieces/{piece}": "the piece: its tree of takes, current take, blind trials",
    "POST /api/pieces/{piece}/current": '{"node": ID}: the take to continue from',
    "POST /api/pieces/{piece}/jobs": "generate: {node, model, seconds, candidates, "
    "temperature, top_k, top_p, seed, primer_seconds} → a job (202)",
    "GET /api/pieces/{piece}/takes/{take}/notes": "notes, cuts, bar lines (seconds)",
    "GET /api/pieces/{piece}/takes/{take}/audio": "WAV of the take (FluidSynth), to listen",
    "GET /api/pieces/{piece}/takes/{take}/midi": "the take as MIDI (primer file verbatim + "
    "continuation tracks)",
    "GET /api/pieces/{piece}/takes/{take}/export.mp3": "MP3 of the take, as a download",
    "GET /api/pieces/{piece}/takes/{take}/command": "the `continue` line that makes it again",
    "POST /api/pieces/{piece}/blind": "a blind A/B trial: settings + models [x, y] → a job",
    "POST /api/pieces/{piece}/blind/{trial}": '{"choice": "A" | "B" | "none"}',
    "POST /api/pieces/{piece}/blind/reveal": "reveal the answered trials",
    "POST /api/pieces/{piece}/blind/export": "write key.json + answers.json as compare does",
    "GET /api/jobs/{job}": "a job's state and progress",
    "GET /api/jobs/{job}/events": "its progress as server-sent events",
    "POST /api/jobs/{job}/cancel": "stop it (the decoding loop stops within a step)",
}

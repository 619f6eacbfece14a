"""``human serve``: the web server raters use to fill in a study.

Raters arrive in one of two ways. A hand-made link ``/r/<token>/`` (one per rater slot, tokens in
key.json) opens that slot's form. The recruitment link ``/join/<study-link>?PROLIFIC_PID=…`` (or
MTurk's ``workerId``/``assignmentId``), pasted into a crowdsourcing platform, gives each arriving
participant the next free slot under a token of their own, gives a returning participant the
same slot, reassigns slots abandoned for longer than ``abandon_after_s`` and, on submission, sends
the participant to the platform's completion URL (``harness.human.store``,
``harness.human.recruitment``). Every answer is stored in SQLite (``<study>/responses.sqlite``)
as it is given, committed before the server says so, so a reload resumes and ``kill -9`` loses
nothing that was acknowledged. The form shows one item at a time and loads images by URL:
``/img/<content digest>.png``, cached by the browser for good (``harness.human.images``).
``/admin/<token>/`` shows per-slot progress, attention-check failures as they happen and time
per item (``harness.human.admin``); ``/admin/<token>/export`` returns all responses in the
format ``human score`` reads. Anything else, a wrong token or method included, gets an empty
404. Nothing is served from the disk but the study's images: the forms are rendered in memory
from study.json, so key.json can never be fetched.

It runs on Starlette under uvicorn (both already installed with MLflow) rather than the standard
library's ``http.server``, which Python documents as unfit for the open web: one thread per
connection, no timeouts. Here an idle or slow connection costs no thread, every body is validated
against a strict schema (400 otherwise), and the security headers (CSP with ``frame-ancestors``)
come with every response; no version banner is sent.

Idle and slow clients cannot take the server down (``harness.human.guards``): uvicorn's own
``limit_concurrency`` counts open connections, idle ones included, and runs no timer before a
first request, so 1000 sockets that sent nothing made every rater get 503 for as long as they
stayed open. Here a request's headers must arrive within ``HEADER_TIMEOUT_S`` of the connection
(or of the previous response), its body within ``BODY_TIMEOUT_S``; only requests being handled
count against ``MAX_ACTIVE_REQUESTS`` (503 beyond it); open connections are capped at
``MAX_OPEN_CONNECTIONS`` (new ones beyond it are closed at once), with the file-descriptor limit
raised to fit. No per-client cap: raters behind one proxy or campus NAT share an address.
"""

from __future__ import annotations

import asyncio
import gzip
import hmac
import html
import ipaddress
import json
import secrets
import socket
import threading
import time
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from harness.human import guards
from harness.human.admin import render_admin
from harness.human.form import render_form
from harness.human.images import CACHE_CONTROL, ImageIndex
from harness.human.recruitment import NotAParticipant, arrival, prolific_link
from harness.human.responses import Rejected, check_answers, check_body
from harness.human.store import ResponseStore, Seat
from harness.human.study import load_study

MAX_BODY = 256 * 1024  # an answer is a few hundred bytes
# A submission carries every answer: at the paper's protocol (2,502 items, ranks and both
# ratings) about 600 kB, so its cap grows with the study.
SUBMISSION_BYTES_PER_ITEM = 512
BODY_TIMEOUT_S = 10.0
MAX_ACTIVE_REQUESTS = 64  # being handled at once; each is a few ms of work
KEEP_ALIVE_S = 5

Id = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
Rank = Annotated[int, Field(ge=1, le=1000)]
Rating = Annotated[int, Field(ge=1, le=5)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Answer(_Strict):
    ranks: dict[Id, Rank]
    alignment: dict[Id, Rating] | None = None
    realism: dict[Id, Rating] | None = None


class AnswerRequest(_Strict):
    item_id: Id
    answer: Answer


class Submission(_Strict):
    format: Annotated[str, StringConstraints(max_length=64)]
    study_id: Id
    rater_id: Id
    answers: dict[Id, Answer]
    complete: bool
    saved_at: Annotated[str, StringConstraints(max_length=64)]
    checksum: Annotated[str, StringConstraints(max_length=16)]


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _BadRequest(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


DEFAULT_ABANDON_AFTER_S = 3600.0


class StudyServer:
    def __init__(self, folder: str | Path, host: str = "127.0.0.1", port: int = 8765,
                 completion_url: str | None = None,
                 abandon_after_s: float = DEFAULT_ABANDON_AFTER_S):
        import uvicorn

        from harness.errors import UserError

        self.folder = Path(folder)
        self.study, self.key = load_study(self.folder)
        if completion_url is not None and not completion_url.startswith(("https://", "http://")):
            raise UserError(f"--completion-url {completion_url!r}: expected an http(s) URL")
        if abandon_after_s <= 0:
            raise UserError("--abandon-after must be positive")
        self.completion_url, self.abandon_after_s = completion_url, float(abandon_after_s)
        self.store = ResponseStore(self.folder / "responses.sqlite")
        self.images = ImageIndex(self.study, self.folder / "share" / "images")
        self.tokens = dict(self.key["tokens"])  # rater -> token
        # The recruitment link's secret: made on the first start, the same on every restart.
        self.study_link = self.store.setting("study_link", lambda: secrets.token_urlsafe(16))
        self.slots = [r["rater_id"] for r in self.study["raters"]]
        self._items = {it["item_id"]: it for it in self.study["items"]}
        self.max_submission = MAX_BODY + SUBMISSION_BYTES_PER_ITEM * len(self._items)
        self._forms: dict[str, tuple[bytes, bytes]] = {}  # rater -> (page, gzipped page)
        self._form_lock = threading.Lock()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._socket = socket.socket(family, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self._socket.listen(2048)
        self.host, self.port = host, self._socket.getsockname()[1]
        guards.raise_file_limit(guards.MAX_OPEN_CONNECTIONS + 256)
        config = uvicorn.Config(guards.ActiveRequestLimit(self._app(), MAX_ACTIVE_REQUESTS),
                                log_level="warning", access_log=False,  # tokens in paths
                                server_header=False, lifespan="off", http=guards.guarded_protocol(),
                                timeout_keep_alive=KEEP_ALIVE_S)
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def rater_url(self, rater_id: str) -> str:
        return f"{self.url}/r/{self.tokens[rater_id]}/"

    def export_url(self) -> str:
        return f"{self.url}/admin/{self.key['admin_token']}/export"

    def admin_url(self) -> str:
        return f"{self.url}/admin/{self.key['admin_token']}/"

    def join_url(self) -> str:
        """The recruitment link (without the platform's parameters)."""
        return f"{self.url}/join/{self.study_link}"

    def prolific_url(self) -> str:
        return prolific_link(self.join_url())

    # ------------------------------------------------------------------ the application
    def _app(self):
        from starlette.applications import Starlette
        from starlette.exceptions import HTTPException
        from starlette.routing import Route

        routes = [Route("/r/{token}/", self._form_page, methods=["GET"]),
                  Route("/r/{token}/api/state", self._state, methods=["GET"]),
                  Route("/r/{token}/api/answer", self._answer, methods=["POST"]),
                  Route("/r/{token}/api/submit", self._submit, methods=["POST"]),
                  Route("/join/{link}", self._join, methods=["GET"]),
                  Route("/img/{name}", self._image, methods=["GET"]),
                  Route("/admin/{token}/", self._admin, methods=["GET"]),
                  Route("/admin/{token}/export", self._export, methods=["GET"])]
        app = Starlette(routes=routes, exception_handlers={HTTPException: self._not_found})
        return guards.SecurityHeaders(app)

    async def _not_found(self, request, exc):
        from starlette.responses import Response

        return Response(status_code=404)  # a wrong method too: the routes are nobody's business

    def _seat_for(self, token: str) -> Seat | None:
        found = None
        for rater, expected in self.tokens.items():  # every token compared: no timing signal
            if hmac.compare_digest(token.encode(), expected.encode()):
                found = Seat(rater)
        if found is None and len(token) <= 64:
            found = self.store.seat_for_token(token)  # a recruited participant's own token
        return found

    def _form(self, rater_id: str) -> tuple[bytes, bytes]:
        # One page per slot whoever holds it: the API path is relative to the page's own URL.
        # Kept gzipped too: at the paper's protocol the item list makes the page a few MB.
        with self._form_lock:
            if rater_id not in self._forms:
                page = render_form(self.study, rater_id, self.folder / "share" / "images",
                                   mode="served", api="api/", image_url=self.images.url)
                raw = page.encode("utf-8")
                self._forms[rater_id] = (raw, gzip.compress(raw, compresslevel=6, mtime=0))
            return self._forms[rater_id]

    @staticmethod
    def _page(status: int, title: str, text: str):
        from starlette.responses import HTMLResponse

        body = (f"<!DOCTYPE html><html lang=en><meta charset=utf-8><title>{html.escape(title)}"
                f"</title><body style='font-family:system-ui,sans-serif;max-width:40em;margin:3em auto'>"
                f"<h1>{html.escape(title)}</h1><p>{html.escape(text)}</p></body></html>")
        return HTMLResponse(body, status_code=status)

    @staticmethod
    def _json(status: int, data):
        from starlette.responses import JSONResponse

        return JSONResponse(data, status_code=status)

    @staticmethod
    async def _body(request, limit: int = MAX_BODY) -> bytes:
        length = request.headers.get("content-length")
        if length is None or not length.isdigit():
            raise _BadRequest(411, "a Content-Length is required")
        if int(length) > limit:
            raise _BadRequest(413, "request too large")

        async def read() -> bytes:
            chunks, size = [], 0
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise _BadRequest(413, "request too large")
                chunks.append(chunk)
            return b"".join(chunks)

        try:
            return await asyncio.wait_for(read(), BODY_TIMEOUT_S)
        except TimeoutError as exc:
            raise _BadRequest(408, "the request body did not arrive in time") from exc

    async def _parse(self, request, schema: type[BaseModel],
                     limit: int = MAX_BODY) -> tuple[BaseModel, dict]:
        raw = await self._body(request, limit)
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            # RecursionError: a body nested thousands of levels deep (json.loads recurses).
            raise _BadRequest(400, "the request is not JSON") from exc
        try:
            return schema.model_validate(data), data
        except ValidationError as exc:
            problems = [f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"
                        for e in exc.errors()[:5]]
            raise _BadRequest(400, "; ".join(problems)) from None

    def _guarded(handler):  # noqa: N805 - a decorator over the handlers below
        async def wrapped(self, request):
            from starlette.concurrency import run_in_threadpool
            from starlette.responses import Response

            seat = self._seat_for(request.path_params["token"])
            if seat is None:
                return Response(status_code=404)
            if seat.revoked:
                why = ("this place in the study was given to another participant after "
                       f"{self.abandon_after_s / 60:g} minutes without activity")
                if request.url.path.endswith("/api/state") or request.method == "POST":
                    return self._json(410, {"error": why})
                return self._page(410, "Your session expired", why + ".")
            try:
                return await handler(self, request, seat, run_in_threadpool)
            except (_BadRequest, Rejected) as exc:
                return self._json(getattr(exc, "status", 400), {"error": str(exc)})
        return wrapped

    @_guarded
    async def _form_page(self, request, seat, in_thread):
        from starlette.responses import Response

        await in_thread(self.store.touch, seat)
        raw, packed = await in_thread(self._form, seat.rater_id)
        headers = {"vary": "Accept-Encoding"}
        accepted = {e.split(";")[0].strip() for e in request.headers.get("accept-encoding", "").split(",")}
        if "gzip" in accepted:
            raw, headers["content-encoding"] = packed, "gzip"
        return Response(raw, media_type="text/html; charset=utf-8", headers=headers)

    @_guarded
    async def _state(self, request, seat, in_thread):
        await in_thread(self.store.touch, seat)
        return self._json(200, {"answers": await in_thread(self.store.answers, seat)})

    @_guarded
    async def _answer(self, request, seat, in_thread):
        parsed, data = await self._parse(request, AnswerRequest)
        item = self._items.get(parsed.item_id)
        if item is None:
            raise Rejected("unknown item")
        groups = {g["group_id"] for g in item["groups"]}
        if not set(parsed.answer.ranks) <= groups:
            raise Rejected("unknown group")
        for scale in (parsed.answer.alignment, parsed.answer.realism):
            if scale and not set(scale) <= groups:
                raise Rejected("unknown group")
        if any(r > self.study["models"] for r in parsed.answer.ranks.values()):
            raise Rejected(f"ranks run from 1 to {self.study['models']}")
        await in_thread(self.store.save_answer, seat, parsed.item_id, data["answer"])
        return self._json(200, {"ok": True})

    @_guarded
    async def _submit(self, request, seat, in_thread):
        parsed, body = await self._parse(request, Submission, self.max_submission)
        if parsed.rater_id != seat.rater_id:
            raise Rejected("a response of another rater")
        check_body(body, self.study)
        # Attention checks are scored later, not here: a rater is not told they failed one.
        check_answers(self.study, {"checks": {}}, seat.rater_id, body["answers"])
        await in_thread(self.store.submit, seat, body)
        redirect = self.completion_url if seat.token else None  # recruited participants only
        return self._json(200, {"ok": True, "redirect": redirect})

    async def _join(self, request):
        from starlette.concurrency import run_in_threadpool
        from starlette.responses import RedirectResponse, Response

        if not hmac.compare_digest(request.path_params["link"].encode(), self.study_link.encode()):
            return Response(status_code=404)
        try:
            who = arrival(dict(request.query_params))
        except NotAParticipant as exc:
            return self._page(400, "This link is incomplete", f"{exc}. Open the study from the "
                              "platform that sent you here.")
        result = await run_in_threadpool(self.store.join, self.slots, who.platform,
                                         who.participant, who.study, who.session,
                                         self.abandon_after_s)
        if result.status == "full":
            return self._page(200, "The study is full", "Every place in this study is taken. "
                              "Please return the study on your platform; thank you.")
        if result.status == "expired":
            return self._page(410, "Your session expired", "You did not answer for "
                              f"{self.abandon_after_s / 60:g} minutes, and your place was given to "
                              "another participant. Please return the study on your platform.")
        return RedirectResponse(f"/r/{result.seat.token}/", status_code=303)

    async def _image(self, request):
        from starlette.concurrency import run_in_threadpool
        from starlette.responses import Response

        path = self.images.file(request.path_params["name"])
        if path is None:
            return Response(status_code=404)
        etag = f'"{request.path_params["name"].partition(".")[0]}"'  # the content digest
        headers = {"cache-control": CACHE_CONTROL.decode(), "etag": etag}
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
        data = await run_in_threadpool(path.read_bytes)
        return Response(data, media_type="image/png", headers=headers)

    def _is_admin(self, request) -> bool:
        return hmac.compare_digest(request.path_params["token"].encode(),
                                   self.key["admin_token"].encode())

    async def _admin(self, request):
        from starlette.concurrency import run_in_threadpool
        from starlette.responses import HTMLResponse, Response

        if not self._is_admin(request):
            return Response(status_code=404)
        page = await run_in_threadpool(render_admin, self.study, self.key, self.store,
                                       self.abandon_after_s)
        return HTMLResponse(page)

    async def _export(self, request):
        from starlette.concurrency import run_in_threadpool
        from starlette.responses import Response

        if not self._is_admin(request):
            return Response(status_code=404)
        return self._json(200, await run_in_threadpool(self.store.export))

    # ------------------------------------------------------------------ running it
    def serve_forever(self) -> None:
        """In the foreground until Ctrl-C (uvicorn handles the signal and shuts down cleanly)."""
        self._server.run(sockets=[self._socket])

    def start_background(self) -> threading.Thread:
        def serve() -> None:
            asyncio.run(self._server.serve(sockets=[self._socket]))

        self._thread = threading.Thread(target=serve, daemon=True)
        self._thread.start()
        deadline = time.time() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.time() > deadline:
                raise RuntimeError("the study server did not start")
            time.sleep(0.01)
        return self._thread

    def shutdown(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=30)
        self._socket.close()

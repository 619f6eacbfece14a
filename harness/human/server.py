"""``human serve``: a small web server for running a study on a lab network.

Each rater opens ``/r/<token>/`` and sees only their own form; every answer is stored in SQLite
(``<study>/responses.sqlite``) as it is given, so a reload resumes; ``/admin/<token>/export``
returns all submitted responses in the format ``human score`` reads. Anything else, a wrong
token included, gets an empty 404. Nothing is served from the disk: the forms are rendered in
memory from study.json and share/images, so key.json can never be fetched.

The standard library's ThreadingHTTPServer is enough for a handful of raters and five routes, so
no web framework is added as a dependency.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import sqlite3
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from harness.human.form import render_form
from harness.human.responses import Rejected, check_answers, check_body
from harness.human.study import load_study

MAX_BODY = 2 * 1024 * 1024


class ResponseStore:
    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("CREATE TABLE IF NOT EXISTS answers (rater_id TEXT, item_id TEXT, answer TEXT, "
                       "updated REAL, PRIMARY KEY (rater_id, item_id))")
            db.execute("CREATE TABLE IF NOT EXISTS submissions (rater_id TEXT PRIMARY KEY, body TEXT, "
                       "submitted REAL)")

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30)

    def save_answer(self, rater_id: str, item_id: str, answer: dict) -> None:
        with self._lock, self._connect() as db:
            db.execute("INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?)",
                       (rater_id, item_id, json.dumps(answer), time.time()))

    def answers(self, rater_id: str) -> dict:
        with self._connect() as db:
            rows = db.execute("SELECT item_id, answer FROM answers WHERE rater_id = ?", (rater_id,))
            return {item: json.loads(a) for item, a in rows}

    def submit(self, rater_id: str, body: dict) -> None:
        with self._lock, self._connect() as db:
            db.execute("INSERT OR REPLACE INTO submissions VALUES (?, ?, ?)",
                       (rater_id, json.dumps(body), time.time()))

    def export(self) -> dict:
        with self._connect() as db:
            submitted = [json.loads(b) for (b,) in
                         db.execute("SELECT body FROM submissions ORDER BY rater_id")]
            partial = {}
            for rater, item, answer in db.execute("SELECT rater_id, item_id, answer FROM answers"):
                partial.setdefault(rater, {})[item] = json.loads(answer)
        done = {b["rater_id"] for b in submitted}
        return {"responses": submitted,
                "in_progress": {r: a for r, a in partial.items() if r not in done}}


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class StudyServer:
    def __init__(self, folder: str | Path, host: str = "127.0.0.1", port: int = 8765):
        self.folder = Path(folder)
        self.study, self.key = load_study(self.folder)
        self.store = ResponseStore(self.folder / "responses.sqlite")
        self.tokens = dict(self.key["tokens"])  # rater -> token
        self._forms: dict[str, str] = {}
        self._form_lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, fmt, *args):  # tokens are in the paths: keep them out of logs
                pass

            def do_GET(self):
                server._handle(self, "GET")

            def do_POST(self):
                server._handle(self, "POST")

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.host, self.port = host, self.httpd.server_address[1]

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def rater_url(self, rater_id: str) -> str:
        return f"{self.url}/r/{self.tokens[rater_id]}/"

    def export_url(self) -> str:
        return f"{self.url}/admin/{self.key['admin_token']}/export"

    def _rater_for(self, token: str) -> str | None:
        found = None
        for rater, expected in self.tokens.items():
            if hmac.compare_digest(token.encode(), expected.encode()):
                found = rater
        return found

    def _form(self, rater_id: str) -> str:
        with self._form_lock:
            if rater_id not in self._forms:
                self._forms[rater_id] = render_form(
                    self.study, rater_id, self.folder / "share" / "images", mode="served",
                    api=f"/r/{self.tokens[rater_id]}/api/")
            return self._forms[rater_id]

    @staticmethod
    def _reply(handler, status: int, body: bytes = b"", ctype: str = "application/json") -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", ctype)
        handler.send_header("Content-Length", str(len(body)))
        handler.send_header("Cache-Control", "no-store")
        handler.send_header("X-Content-Type-Options", "nosniff")
        handler.send_header("Referrer-Policy", "no-referrer")
        handler.end_headers()
        if body:
            handler.wfile.write(body)

    def _json(self, handler, status: int, data) -> None:
        self._reply(handler, status, json.dumps(data).encode("utf-8"))

    def _read_json(self, handler):
        length = int(handler.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise Rejected("request too large")
        try:
            return json.loads(handler.rfile.read(length).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise Rejected("the request is not JSON") from exc

    def _handle(self, handler, method: str) -> None:
        parts = [p for p in handler.path.split("?")[0].split("/") if p]
        try:
            if len(parts) == 3 and parts[0] == "admin" and parts[2] == "export" and method == "GET" \
                    and hmac.compare_digest(parts[1].encode(), self.key["admin_token"].encode()):
                return self._json(handler, 200, self.store.export())
            rater = self._rater_for(parts[1]) if len(parts) >= 2 and parts[0] == "r" else None
            if rater is None:
                return self._reply(handler, 404)
            route = (method, "/".join(parts[2:]))
            if route == ("GET", ""):
                return self._reply(handler, 200, self._form(rater).encode("utf-8"),
                                   "text/html; charset=utf-8")
            if route == ("GET", "api/state"):
                return self._json(handler, 200, {"answers": self.store.answers(rater)})
            if route == ("POST", "api/answer"):
                data = self._read_json(handler)
                item_id, answer = data.get("item_id"), data.get("answer")
                items = {it["item_id"]: it for it in self.study["items"]}
                if item_id not in items or not isinstance(answer, dict):
                    raise Rejected("unknown item")
                groups = {g["group_id"] for g in items[item_id]["groups"]}
                if not set(answer.get("ranks") or {}) <= groups:
                    raise Rejected("unknown group")
                self.store.save_answer(rater, item_id, answer)
                return self._json(handler, 200, {"ok": True})
            if route == ("POST", "api/submit"):
                body = self._read_json(handler)
                if body.get("rater_id") != rater:
                    raise Rejected("a response of another rater")
                check_body(body, self.study)
                # Attention checks are scored later, not here: a rater is not told they failed one.
                check_answers(self.study, {"checks": {}}, rater, body["answers"])
                self.store.submit(rater, body)
                return self._json(handler, 200, {"ok": True})
            return self._reply(handler, 404)
        except Rejected as exc:
            return self._json(handler, 400, {"error": str(exc)})

    def serve_forever(self) -> None:
        self.httpd.serve_forever()

    def start_background(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, daemon=True)
        thread.start()
        return thread

    def shutdown(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

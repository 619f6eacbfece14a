"""The rating server (``human serve``) against hostile requests, and under load."""

import http.client
import json
import socket
import threading
import time

import pytest

from harness.human import guards
from harness.human import server as server_mod
from harness.human.server import StudyServer
from harness.human.study import StudyOptions, load_study, make_study


def _study(two_runs, out, raters):
    make_study(StudyOptions(sources=[str(two_runs / "modelA"), str(two_runs / "modelB")], out=str(out),
                            captions=3, per_model=1, raters=raters, seed=3, progress=False))
    return out


@pytest.fixture
def served(two_runs, tmp_path):
    study = _study(two_runs, tmp_path / "study", raters=2)
    server = StudyServer(study, "127.0.0.1", 0)
    server.start_background()
    yield server, *load_study(study)
    server.shutdown()


def _request(server, method, path, body=None, headers=None):
    conn = http.client.HTTPConnection(server.host, server.port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        reply = conn.getresponse()
        return reply.status, dict(reply.getheaders()), reply.read()
    finally:
        conn.close()


def _answer_for(doc, item_id, reverse=False):
    item = next(i for i in doc["items"] if i["item_id"] == item_id)
    gids = [g["group_id"] for g in item["groups"]]
    ranks = list(range(1, len(gids) + 1))
    return {"ranks": dict(zip(gids, ranks[::-1] if reverse else ranks, strict=True))}


def test_every_response_carries_the_security_headers_and_no_banner(served):
    server, doc, key = served
    status, headers, body = _request(server, "GET", f"/r/{key['tokens']['r01']}/")
    assert status == 200 and b"<html" in body.lower()
    headers = {k.lower(): v for k, v in headers.items()}
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY" and headers["cache-control"] == "no-store"
    assert "server" not in headers
    for method, path in (("GET", "/r/wrong/"), ("POST", f"/r/{key['tokens']['r01']}/"),
                         ("GET", "/key.json"), ("GET", f"/r/{key['tokens']['r01']}/api/answer"),
                         ("GET", "/admin/wrong/export")):
        status, headers, body = _request(server, method, path)
        assert (status, body) == (404, b""), (method, path)
        assert "content-security-policy" in {k.lower() for k in headers}


@pytest.mark.parametrize("body, expected", [
    (b"[1, 2]", "Input should be a valid dictionary"),
    (b'{"item_id": ["a"], "answer": {"ranks": {}}}', "item_id"),
    (b'{"item_id": "ITEM", "answer": {"ranks": {"g": {"x": 1}}}}', "answer.ranks.g"),
    (b'{"item_id": "ITEM", "answer": {"ranks": {}}, "extra": "x"}', "extra"),
    (b'{"item_id": "ITEM", "answer": {"ranks": {}, "note": "' + b"x" * 5000 + b'"}}', "answer.note"),
    (b'{"item_id": "ITEM", "answer": {"ranks": {"g": true}}}', "answer.ranks.g"),
    (b'{"item_id": "ITEM", "answer": {"ranks": {"g": 1}, "alignment": {"g": 9}}}', "alignment.g"),
    (b"{not json", "not JSON"),
    (b"\xff\xfe", "not JSON"),
])
def test_malformed_answers_get_a_400_naming_the_field(served, body, expected):
    server, doc, key = served
    item = doc["items"][0]["item_id"]
    status, _, reply = _request(server, "POST", f"/r/{key['tokens']['r01']}/api/answer",
                                body.replace(b"ITEM", item.encode()),
                                {"Content-Type": "application/json"})
    assert status == 400 and expected in json.loads(reply)["error"]


def test_a_body_nested_200k_deep_is_a_400_not_a_server_error(served):
    server, _, key = served
    token = key["tokens"]["r01"]
    deep = b"[" * 100_000 + b"]" * 100_000  # 200 kB: under the body cap
    for route in ("answer", "submit"):
        status, _, reply = _request(server, "POST", f"/r/{token}/api/{route}", deep,
                                    {"Content-Type": "application/json"})
        assert status == 400 and json.loads(reply)["error"] == "the request is not JSON"


def test_submissions_are_checked_and_nothing_bad_is_stored(served):
    server, doc, key = served
    token = key["tokens"]["r01"]
    path = f"/r/{token}/api/submit"
    for body, expected in ((b'{"format": "stackgan-bench-response/1"}', "answers"),
                           (b'{"rater_id": "r01", "answers": 5}', "answers")):
        status, _, reply = _request(server, "POST", path, body)
        assert status == 400 and expected in json.loads(reply)["error"]
    unknown = json.dumps({"item_id": "nosuchitem", "answer": {"ranks": {}}}).encode()
    assert _request(server, "POST", f"/r/{token}/api/answer", unknown)[0] == 400
    item = doc["items"][0]
    wrong_group = json.dumps({"item_id": item["item_id"], "answer": {"ranks": {"zz": 1}}}).encode()
    assert _request(server, "POST", f"/r/{token}/api/answer", wrong_group)[0] == 400
    too_high = {g["group_id"]: 9 for g in item["groups"]}
    body = json.dumps({"item_id": item["item_id"], "answer": {"ranks": too_high}}).encode()
    status, _, reply = _request(server, "POST", f"/r/{token}/api/answer", body)
    assert status == 400 and "ranks run from 1 to 2" in json.loads(reply)["error"]
    assert server.store.export() == {"responses": [], "in_progress": {}}


def test_lengths_and_slow_bodies_cannot_pin_the_server(served, monkeypatch):
    server, doc, key = served
    monkeypatch.setattr(server_mod, "BODY_TIMEOUT_S", 0.5)
    path = f"/r/{key['tokens']['r01']}/api/answer"

    def raw(request: bytes) -> bytes:
        with socket.create_connection((server.host, server.port), timeout=30) as s:
            s.sendall(request)
            return s.recv(65536)

    head = f"POST {path} HTTP/1.1\r\nHost: x\r\n".encode()
    assert raw(head + b"Content-Length: -1\r\n\r\n").startswith(b"HTTP/1.1 400")
    assert raw(head + b"Content-Length: abc\r\n\r\n").startswith(b"HTTP/1.1 400")
    start = time.time()
    assert raw(head + b"Content-Length: 100\r\n\r\n{\"item").startswith(b"HTTP/1.1 408")
    assert time.time() - start < 10
    big = server_mod.MAX_BODY + 1
    assert raw(head + f"Content-Length: {big}\r\n\r\n".encode()).startswith(b"HTTP/1.1 413")
    assert _request(server, "GET", f"/r/{key['tokens']['r01']}/api/state")[0] == 200  # still serving


def test_ipv6_loopback(two_runs, tmp_path):
    if not socket.has_ipv6:
        pytest.skip("no IPv6 in this Python")
    try:
        socket.socket(socket.AF_INET6).bind(("::1", 0))
    except OSError as exc:
        pytest.skip(f"no IPv6 loopback here ({exc})")
    study = _study(two_runs, tmp_path / "study6", raters=1)
    server = StudyServer(study, "::1", 0)
    server.start_background()
    try:
        assert server.url.startswith("http://[::1]:")
        key = load_study(study)[1]
        assert _request(server, "GET", f"/r/{key['tokens']['r01']}/api/state")[0] == 200
    finally:
        server.shutdown()


@pytest.mark.integration
def test_under_load_every_answer_is_stored_once_and_the_server_stays_responsive(two_runs, tmp_path, capsys):
    """200 idle connections held open, then 20 raters x 50 answers over keep-alive connections."""
    study = _study(two_runs, tmp_path / "load", raters=20)
    doc, key = load_study(study)
    server = StudyServer(study, "127.0.0.1", 0)
    server.start_background()
    idle = [socket.create_connection((server.host, server.port), timeout=30) for _ in range(200)]
    items = [i["item_id"] for i in doc["items"]]
    latencies, failures, last = [], [], {}
    lock = threading.Lock()

    def rater(rater_id):
        conn = http.client.HTTPConnection(server.host, server.port, timeout=30)
        path = f"/r/{key['tokens'][rater_id]}/api/answer"
        for n in range(50):
            item = items[n % len(items)]
            answer = _answer_for(doc, item, reverse=(n // len(items)) % 2 == 1)
            t0 = time.perf_counter()
            conn.request("POST", path, json.dumps({"item_id": item, "answer": answer}),
                         {"Content-Type": "application/json"})
            reply = conn.getresponse()
            reply.read()
            with lock:
                latencies.append(time.perf_counter() - t0)
                if reply.status != 200:
                    failures.append(reply.status)
                last[(rater_id, item)] = answer
        conn.close()

    try:
        threads = [threading.Thread(target=rater, args=(r,)) for r in key["tokens"]]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - start
        t0 = time.perf_counter()
        assert _request(server, "GET", f"/r/{key['tokens']['r01']}/api/state")[0] == 200
        after = time.perf_counter() - t0
        stored = server.store.export()["in_progress"]
    finally:
        for s in idle:
            s.close()
        server.shutdown()
    assert failures == [] and len(latencies) == 20 * 50
    assert {(r, i): a for r, answers in stored.items() for i, a in answers.items()} == last
    latencies.sort()
    p95 = latencies[int(0.95 * len(latencies))]
    with capsys.disabled():
        print(f"\nrating server: 1000 answers from 20 raters with 200 idle connections open in {wall:.1f} s;"
              f" latency median {latencies[len(latencies) // 2] * 1e3:.1f} ms, p95 {p95 * 1e3:.1f} ms,"
              f" max {latencies[-1] * 1e3:.1f} ms; a request after the load {after * 1e3:.1f} ms")
    assert after < 5  # responsive: not a timing target, a hang detector


def test_raters_are_served_while_1000_idle_sockets_and_slow_headers_are_open(two_runs, tmp_path,
                                                                             monkeypatch, capsys):
    """uvicorn's limit_concurrency counted idle connections and timed none out before a first
    request: 1000 sockets that sent nothing made every rater get 503. Bounded: 1000 + 20
    loopback sockets, 3 raters x 20 answers, a shortened header timeout."""
    monkeypatch.setattr(guards, "HEADER_TIMEOUT_S", 4.0)
    study = _study(two_runs, tmp_path / "idle", raters=3)
    doc, key = load_study(study)
    server = StudyServer(study, "127.0.0.1", 0)
    server.start_background()
    idle, slow = [], []
    items = [i["item_id"] for i in doc["items"]]
    latencies, statuses = [], []
    lock = threading.Lock()

    def rater(rater_id):
        path = f"/r/{key['tokens'][rater_id]}/api/answer"
        for n in range(20):
            item = items[n % len(items)]
            t0 = time.perf_counter()
            body = json.dumps({"item_id": item, "answer": _answer_for(doc, item)})
            status = _request(server, "POST", path, body, {"Content-Type": "application/json"})[0]
            with lock:
                latencies.append(time.perf_counter() - t0)
                statuses.append(status)

    try:
        opened = time.perf_counter()
        idle = [socket.create_connection((server.host, server.port), timeout=30) for _ in range(1000)]
        for _ in range(20):  # half a header, never finished
            s = socket.create_connection((server.host, server.port), timeout=30)
            s.sendall(b"GET /r/x/ HTTP/1.1\r\nHost: x\r\nX-Slow: a")
            slow.append(s)
        threads = [threading.Thread(target=rater, args=(r,)) for r in key["tokens"]]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        served_within = time.perf_counter() - opened
        # Then the server closes every one of them: recv sees the end of the stream.
        time.sleep(max(0.0, guards.HEADER_TIMEOUT_S + 2 - (time.perf_counter() - opened)))
        closed = 0
        for s in idle + slow:
            s.settimeout(5)
            try:
                closed += s.recv(1) == b""
            except ConnectionResetError:
                closed += 1
            except TimeoutError:
                pass
        stored = server.store.export()["in_progress"]
    finally:
        for s in idle + slow:
            s.close()
        server.shutdown()
    assert statuses == [200] * 60, sorted(set(statuses))
    assert served_within < guards.HEADER_TIMEOUT_S  # served while the sockets were open
    assert closed == 1020
    assert sum(len(a) for a in stored.values()) == 3 * len(set(items[:20]))
    latencies.sort()
    with capsys.disabled():
        print(f"\nrating server with 1000 idle + 20 half-header sockets open: 60 answers from 3 raters, "
              f"latency median {latencies[30] * 1e3:.1f} ms, p95 {latencies[57] * 1e3:.1f} ms, "
              f"max {latencies[-1] * 1e3:.1f} ms; all 1020 closed by the {guards.HEADER_TIMEOUT_S:.0f} s "
              "header timeout")


def test_requests_beyond_the_active_limit_get_503_and_connections_beyond_the_cap_are_closed(
        two_runs, tmp_path, monkeypatch):
    """The two bounds the guarded server adds: requests being handled at once (a limit of 0:
    every request is over it; 503 with the security headers) and open connections (a cap of 3:
    the fourth is closed at once, while the first three stay open)."""
    monkeypatch.setattr(server_mod, "MAX_ACTIVE_REQUESTS", 0)
    monkeypatch.setattr(guards, "MAX_OPEN_CONNECTIONS", 3)
    study = _study(two_runs, tmp_path / "limits", raters=1)
    _, key = load_study(study)
    server = StudyServer(study, "127.0.0.1", 0)
    server.start_background()
    held = []
    try:
        status, headers, _ = _request(server, "GET", f"/r/{key['tokens']['r01']}/api/state")
        assert status == 503 and headers.get("x-frame-options") == "DENY"
        time.sleep(0.5)  # that request's connection is gone before the count starts
        held = [socket.create_connection((server.host, server.port), timeout=5) for _ in range(4)]
        assert held[3].recv(1) == b""  # closed by the server straight away
        held[0].settimeout(1.0)
        with pytest.raises(TimeoutError):  # still open: nothing to read, no end of stream
            held[0].recv(1)
    finally:
        for s in held:
            s.close()
        server.shutdown()

"""Recruitment through a platform link, served images, the admin page, split offline forms, and
answers surviving ``kill -9`` of the server."""

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

from harness.human.form import render_form_parts
from harness.human.recruitment import NotAParticipant, arrival, prolific_link
from harness.human.responses import attention_failures, checksum, read_responses
from harness.human.store import ResponseStore, Seat
from harness.human.study import StudyOptions, load_study, make_study

SLOTS = ["r01", "r02", "r03"]


# ----------------------------------------------------------------------------- the slot store
def test_join_assigns_free_slots_in_order_and_a_returning_participant_gets_theirs(tmp_path):
    store = ResponseStore(tmp_path / "r.sqlite")
    a = store.join(SLOTS, "prolific", "A", "st", "s1", abandon_after_s=60, now=0)
    b = store.join(SLOTS, "prolific", "B", "st", "s2", abandon_after_s=60, now=1)
    assert (a.status, a.seat.rater_id, b.seat.rater_id) == ("assigned", "r01", "r02")
    again = store.join(SLOTS, "prolific", "A", "st", "s3", abandon_after_s=60, now=2)
    assert (again.status, again.seat) == ("returning", a.seat)
    # The same id on another platform is another person.
    other = store.join(SLOTS, "mturk", "A", "h", "as", abandon_after_s=60, now=3)
    assert other.seat.rater_id == "r03"
    assert store.join(SLOTS, "prolific", "D", "st", "s4", abandon_after_s=60, now=4).status == "full"


def test_an_abandoned_slot_is_reassigned_and_its_answers_kept_under_the_first_participant(tmp_path):
    store = ResponseStore(tmp_path / "r.sqlite")
    a = store.join(SLOTS[:2], "prolific", "A", "st", "s", abandon_after_s=60, now=0).seat
    b = store.join(SLOTS[:2], "prolific", "B", "st", "s", abandon_after_s=60, now=0).seat
    store.save_answer(a, "item1", {"ranks": {"g": 1}}, now=10)
    store.save_answer(b, "item1", {"ranks": {"g": 2}}, now=50)
    store.submit(b, {"rater_id": "r02"}, now=55)
    # At t=69 A was seen 59 s ago: not yet free. At t=71 r01 goes to C; r02 is completed.
    assert store.join(SLOTS[:2], "prolific", "C", "st", "s", abandon_after_s=60, now=69).status == "full"
    c = store.join(SLOTS[:2], "prolific", "C", "st", "s", abandon_after_s=60, now=71)
    assert (c.status, c.seat.rater_id) == ("assigned", "r01") and c.seat.token != a.token
    assert store.seat_for_token(a.token).revoked and not store.seat_for_token(c.seat.token).revoked
    assert store.answers(c.seat) == {}  # C starts afresh ...
    exported = store.export()
    assert exported["abandoned"] == [{"rater_id": "r01", "participant": "A",
                                      "answers": {"item1": {"ranks": {"g": 1}}}}]  # ... A's kept
    assert exported["participants"]["r02"]["participant"] == "B"
    # A comes back: refused a second slot.
    assert store.join(SLOTS[:2], "prolific", "A", "st", "s", abandon_after_s=60, now=80).status == "expired"


def test_a_retried_answer_replaces_the_stored_one(tmp_path):
    store = ResponseStore(tmp_path / "r.sqlite")
    seat = Seat("r01")
    for rank in (1, 2, 2):
        store.save_answer(seat, "i", {"ranks": {"g": rank}})
    assert store.answer_log()[0][3] == {"ranks": {"g": 2}} and len(store.answer_log()) == 1


def test_platform_parameters():
    assert arrival({"PROLIFIC_PID": "p1", "STUDY_ID": "s", "SESSION_ID": "x"}).platform == "prolific"
    m = arrival({"workerId": "W1", "assignmentId": "A1", "hitId": "H1"})
    assert (m.platform, m.participant, m.session) == ("mturk", "W1", "A1")
    for bad, why in (({}, "no participant id"), ({"PROLIFIC_PID": ""}, "empty"),
                     ({"PROLIFIC_PID": "<script>"}, "PROLIFIC_PID"),
                     ({"workerId": "W", "assignmentId": "ASSIGNMENT_ID_NOT_AVAILABLE"}, "preview")):
        with pytest.raises(NotAParticipant, match=why):
            arrival(bad)
    assert prolific_link("http://h/join/x") == ("http://h/join/x?PROLIFIC_PID={{%PROLIFIC_PID%}}"
                                                "&STUDY_ID={{%STUDY_ID%}}&SESSION_ID={{%SESSION_ID%}}")


# ----------------------------------------------------------------------------- study fixtures
@pytest.fixture(scope="module")
def study(two_runs, tmp_path_factory):
    out = tmp_path_factory.mktemp("recruit") / "s"
    make_study(StudyOptions(sources=[str(two_runs / "modelA"), str(two_runs / "modelB")],
                            out=str(out), captions=4, per_model=2, raters=3, seed=7, progress=False))
    return out


def _good_answers(doc, key):
    answers = {}
    for item in doc["items"]:
        labels = {g["group_id"]: key["groups"][g["group_id"]] for g in item["groups"]}
        order = ["__real__", "modelA", "modelB", "__noise__"]
        ranked = sorted(labels, key=lambda g: order.index(labels[g]))
        answers[item["item_id"]] = {"ranks": {g: n + 1 for n, g in enumerate(ranked)}}
    return answers


def test_attention_failures_are_judged_as_soon_as_their_items_are_answered(study):
    doc, key = load_study(study)
    answers = _good_answers(doc, key)
    real_check = next(i for i, c in key["checks"].items() if c["type"] == "real_vs_noise")
    assert attention_failures(key, {}) == []
    flipped = {g: 3 - r for g, r in answers[real_check]["ranks"].items()}
    assert "real photos" in attention_failures(key, {real_check: {"ranks": flipped}})[0]
    assert attention_failures(key, answers) == []


def test_a_split_offline_form_scores_as_one_rater(study, tmp_path):
    doc, key = load_study(study)
    whole = render_form_parts(doc, "r02", study / "share" / "images", None)[0]
    limit = len(whole.encode()) - 1  # one byte too many for one part
    parts = render_form_parts(doc, "r02", study / "share" / "images", limit)
    assert len(parts) >= 2 and all(len(p.encode()) <= limit for p in parts)
    shown = []
    for page in parts:
        data = json.loads(re.search(r'id="study-data">(.*?)</script>', page, re.S).group(1))
        shown += [it["item_id"] for it in data["items"]]
    rater = next(r for r in doc["raters"] if r["rater_id"] == "r02")
    assert shown == rater["order"]  # whole items, in the rater's order, each once
    answers = _good_answers(doc, key)
    files = []
    for n, page in enumerate(parts, 1):
        data = json.loads(re.search(r'id="study-data">(.*?)</script>', page, re.S).group(1))
        body = {"format": "stackgan-bench-response/1", "study_id": doc["study_id"],
                "rater_id": "r02", "answers": {i["item_id"]: answers[i["item_id"]]
                                               for i in data["items"]},
                "complete": True, "saved_at": "x", "part": n, "parts": len(parts)}
        body["checksum"] = checksum(body)
        files.append(tmp_path / f"p{n}.json")
        files[-1].write_text(json.dumps(body))
    read = read_responses(doc, key, files)
    assert read.rejected == [] and [r.rater_id for r in read.accepted] == ["r02"]
    assert read.accepted[0].answers == answers
    missing = read_responses(doc, key, files[:-1])
    assert missing.accepted == [] and f"part(s) [{len(parts)}] missing" in missing.rejected[0][1]
    twice = read_responses(doc, key, [*files, files[0]])
    assert any("part 1 of rater r02 twice" in why for _, why in twice.rejected)


def test_make_writes_parts_below_the_size_and_reports_them(two_runs, tmp_path):
    sources = [str(two_runs / "modelA"), str(two_runs / "modelB")]
    whole = make_study(StudyOptions(sources=sources, out=str(tmp_path / "w"), captions=4,
                                    per_model=2, raters=2, seed=7, progress=False))
    assert whole["form_parts"] == 2  # one form.html per rater
    limit = whole["largest_form_bytes"] - 1
    out = make_study(StudyOptions(sources=sources, out=str(tmp_path / "s"), captions=4, per_model=2,
                                  raters=2, seed=7, progress=False, part_mb=limit / 1e6))
    files = sorted((tmp_path / "s" / "share" / "r01").glob("form-part*.html"))
    assert len(files) >= 2 and out["largest_form_bytes"] <= limit
    assert out["form_parts"] == 2 * len(files) and not (tmp_path / "s/share/r01/form.html").exists()
    served = make_study(StudyOptions(sources=[str(two_runs / "modelA"), str(two_runs / "modelB")],
                                     out=str(tmp_path / "t"), captions=2, per_model=1, raters=1,
                                     seed=7, progress=False, offline_forms=False))
    assert served["form_parts"] == 0 and not list((tmp_path / "t" / "share").rglob("*.html"))


# ----------------------------------------------------------------------------- the server
def _request(url_base, method, path, body=None, headers=None):
    host, port = url_base.split("//")[1].rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        reply = conn.getresponse()
        return reply.status, {k.lower(): v for k, v in reply.getheaders()}, reply.read()
    finally:
        conn.close()


@pytest.fixture
def server(study, tmp_path):
    import shutil

    from harness.human.server import StudyServer

    copy = tmp_path / "study"
    shutil.copytree(study, copy, ignore=shutil.ignore_patterns("responses.sqlite*"))
    srv = StudyServer(copy, "127.0.0.1", 0, completion_url="https://example.org/done?cc=C0DE",
                      abandon_after_s=2)
    srv.start_background()
    yield srv
    srv.shutdown()


def _join(server, pid):
    link = server.join_url().split(server.url)[1]
    return _request(server.url, "GET", f"{link}?PROLIFIC_PID={pid}&STUDY_ID=st&SESSION_ID=se")


def test_join_serves_images_by_content_url_and_completes_with_the_platform_redirect(server):
    doc, key = server.study, server.key
    status, headers, _ = _join(server, "P1")
    assert status == 303 and headers["location"].startswith("/r/")
    page_path = headers["location"]
    status, _, page = _request(server.url, "GET", page_path)
    assert status == 200 and b"data:image" not in page
    urls = sorted(set(re.findall(rb"/img/[0-9a-f]{32}\.png", page)))
    assert urls and len(urls) <= len(server.images.path_of)
    status, headers, png = _request(server.url, "GET", urls[0].decode())
    assert status == 200 and png[:4] == b"\x89PNG" and "immutable" in headers["cache-control"]
    again = _request(server.url, "GET", urls[0].decode(), headers={"If-None-Match": headers["etag"]})
    assert again[0] == 304 and again[2] == b""
    for path in ("/img/" + "0" * 32 + ".png", "/img/key.json", f"{server.join_url()[len(server.url):]}x"):
        assert _request(server.url, "GET", path)[0] == 404
    # Answer everything, submit: the reply names the completion URL.
    answers = _good_answers(doc, key)
    for item_id, answer in answers.items():
        body = json.dumps({"item_id": item_id, "answer": answer}).encode()
        assert _request(server.url, "POST", page_path + "api/answer", body,
                        {"Content-Type": "application/json"})[0] == 200
    rater = server.store.seat_for_token(page_path.split("/")[2]).rater_id
    sub = {"format": "stackgan-bench-response/1", "study_id": doc["study_id"], "rater_id": rater,
           "answers": answers, "complete": True, "saved_at": "x"}
    sub["checksum"] = checksum(sub)
    status, _, reply = _request(server.url, "POST", page_path + "api/submit", json.dumps(sub).encode(),
                                {"Content-Type": "application/json"})
    assert status == 200 and json.loads(reply)["redirect"] == "https://example.org/done?cc=C0DE"
    # The admin page shows the slot as completed, with its participant.
    admin = server.admin_url()[len(server.url):]
    status, _, html_page = _request(server.url, "GET", admin)
    assert status == 200 and b"P1" in html_page and b"completed" in html_page
    exported = json.loads(_request(server.url, "GET", admin + "export")[2])
    assert exported["participants"][rater]["participant"] == "P1"
    assert _request(server.url, "GET", "/admin/wrong/")[0] == 404


def test_the_form_page_is_sent_gzipped_to_browsers_that_accept_it(server):
    import gzip

    path = server.rater_url("r01")[len(server.url):]
    _, plain_headers, plain = _request(server.url, "GET", path)
    status, headers, packed = _request(server.url, "GET", path,
                                       headers={"Accept-Encoding": "gzip, deflate, br"})
    assert status == 200 and headers["content-encoding"] == "gzip" and headers["vary"] == "Accept-Encoding"
    assert gzip.decompress(packed) == plain and len(packed) < len(plain)
    assert "content-encoding" not in plain_headers
    assert "frame-ancestors 'none'" in headers["content-security-policy"]


def test_the_new_routes_refuse_bad_input_with_the_same_guards(server):
    link = server.join_url()[len(server.url):]
    for query, why in (("", b"no participant id"), ("?PROLIFIC_PID=%3Cscript%3E", b"PROLIFIC_PID"),
                       ("?workerId=W&assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE", b"preview")):
        status, headers, body = _request(server.url, "GET", link + query)
        assert status == 400 and why in body and b"<script" not in body
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert headers["cache-control"] == "no-store"
    for method, path in (("POST", link), ("POST", "/img/x.png"), ("GET", "/join/wrong?PROLIFIC_PID=a"),
                         ("GET", "/admin/x/"), ("GET", "/img/"), ("GET", "/img/../key.json")):
        status, _, body = _request(server.url, method, path)
        assert (status, body) == (404, b""), (method, path)
    assert server.store.assignments() == []  # nothing above took a slot


def test_an_abandoned_participant_loses_the_slot_and_is_told_so(server):
    _, headers, _ = _join(server, "P1")
    first = headers["location"]
    for pid in ("P2", "P3"):
        _join(server, pid)
    assert b"full" in _join(server, "P4")[2]
    time.sleep(2.5)  # the (shortened) abandon timeout
    _request(server.url, "GET", _join(server, "P2")[1]["location"] + "api/state")  # P2 alive
    status, headers, _ = _join(server, "P4")
    assert status == 303 and headers["location"] != first
    answer = json.dumps({"item_id": server.study["items"][0]["item_id"],
                         "answer": {"ranks": {}}}).encode()
    status, _, body = _request(server.url, "POST", first + "api/answer", answer,
                               {"Content-Type": "application/json"})
    assert status == 410 and b"another participant" in body
    assert _join(server, "P1")[0] == 410  # no second slot for the same participant


# ----------------------------------------------------------------------------- kill -9
@pytest.mark.integration
def test_no_acknowledged_answer_is_lost_when_the_server_is_killed(study, tmp_path):
    """Five raters answer concurrently; the server is killed with SIGKILL mid-stream and
    restarted; every answer it acknowledged is stored, exactly once, with its last value."""
    import shutil

    copy = tmp_path / "study"
    shutil.copytree(study, copy, ignore=shutil.ignore_patterns("responses.sqlite*"))
    doc, key = load_study(copy)

    def start():
        proc = subprocess.Popen([sys.executable, "-m", "harness.cli.main", "human", "serve",
                                 str(copy), "--port", "0"], stdout=subprocess.PIPE, text=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        for line in proc.stdout:
            if line.startswith("export:"):
                return proc, line.split()[1].split("/admin/")[0]
        raise AssertionError("the server did not start")

    proc, base = start()
    acknowledged: dict[tuple[str, str], dict] = {}
    acks = [0]
    lock = threading.Lock()
    items = [it for it in doc["items"]]
    stop = threading.Event()

    def rater(rid):
        token, n = key["tokens"][rid], 0
        while not stop.is_set():
            item = items[n % len(items)]
            gids = [g["group_id"] for g in item["groups"]]
            value = n // len(items)  # the same item answered again later with another value
            ranks = {g: (i + value) % len(gids) + 1 for i, g in enumerate(gids)}
            body = json.dumps({"item_id": item["item_id"], "answer": {"ranks": ranks}}).encode()
            try:
                status = _request(current["base"], "POST", f"/r/{token}/api/answer", body,
                                  {"Content-Type": "application/json"})[0]
            except OSError:
                time.sleep(0.05)
                continue  # the server is down: the rater retries
            if status == 200:
                with lock:
                    acknowledged[(rid, item["item_id"])] = ranks
                    acks[0] += 1
                n += 1

    current = {"base": base}
    threads = [threading.Thread(target=rater, args=(r,)) for r in key["tokens"]]
    for t in threads:
        t.start()
    time.sleep(1.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = acks[0]
    proc, current["base"] = start()
    time.sleep(1.0)
    stop.set()
    for t in threads:
        t.join()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    store = ResponseStore(copy / "responses.sqlite")
    stored = {(r, i): a["ranks"] for r, _, i, a, _, _ in store.answer_log()}
    assert before > 0 and acks[0] > before  # answers were given before the kill and after it
    assert stored == acknowledged
    assert len(store.answer_log()) == len(stored)  # once each


def test_old_response_databases_are_moved_over(tmp_path):
    import sqlite3

    path = tmp_path / "responses.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE answers (rater_id TEXT, item_id TEXT, answer TEXT, updated REAL, "
               "PRIMARY KEY (rater_id, item_id))")
    db.execute("CREATE TABLE submissions (rater_id TEXT PRIMARY KEY, body TEXT, submitted REAL)")
    db.execute("INSERT INTO answers VALUES ('r01', 'i', '{\"ranks\": {}}', 5.0)")
    db.execute("INSERT INTO submissions VALUES ('r02', '{\"rater_id\": \"r02\"}', 6.0)")
    db.commit()
    db.close()
    store = ResponseStore(path)
    assert store.answers(Seat("r01")) == {"i": {"ranks": {}}}
    assert store.export()["responses"] == [{"rater_id": "r02"}]

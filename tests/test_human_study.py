"""Human study: make, the offline and served forms in a real headless browser, scoring."""

import json
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest import required

from harness.human.form import render_form
from harness.human.responses import checksum, read_responses
from harness.human.score_study import score_study
from harness.human.study import NOISE, REAL, StudyOptions, load_study, make_study

PREFERENCE = ["modelA", "modelB"]  # the simulated raters' taste: modelA is better


@pytest.fixture(scope="module")
def study(two_runs, tmp_path_factory):
    out = tmp_path_factory.mktemp("study") / "s"
    make_study(StudyOptions(sources=[str(two_runs / "modelA"), str(two_runs / "modelB")],
                            out=str(out), captions=3, per_model=2, raters=3, seed=5, progress=False))
    return out


def desired_ranks(key, item_groups):
    """Ranks an attentive rater with PREFERENCE gives: real first, noise last."""
    order = [REAL, *PREFERENCE, NOISE]
    labels = {g: key["groups"][g] for g in item_groups}
    ranked = sorted(item_groups, key=lambda g: (order.index(labels[g]), g))
    return {g: n + 1 for n, g in enumerate(ranked)}


def simulated_response(study_doc, key, rater_id, tweak=None):
    answers = {}
    for item in study_doc["items"]:
        gids = [g["group_id"] for g in item["groups"]]
        answers[item["item_id"]] = {"ranks": desired_ranks(key, gids)}
    if tweak:
        tweak(answers)
    body = {"format": "stackgan-bench-response/1", "study_id": study_doc["study_id"],
            "rater_id": rater_id, "answers": answers, "complete": True, "saved_at": "2026-01-01"}
    body["checksum"] = checksum(body)
    return body


def test_study_is_blinded_and_reproducible(study, two_runs, tmp_path):
    doc, key = load_study(study)
    assert len([i for i in doc["items"] if i["kind"] == "regular"]) == 3
    assert len(doc["items"]) == 5  # + real-vs-noise and a repeated item
    shared = [p for p in (study / "share").rglob("*") if p.is_file()]
    assert not any(p.name == "key.json" for p in shared)
    for p in shared:
        data = p.read_bytes()
        assert b"modelA" not in data and b"modelB" not in data, p
    assert len(list((study / "share").glob("r0*/form.html"))) == 3
    orders = [tuple(r["order"]) for r in doc["raters"]]
    assert len(set(orders)) > 1  # item order differs per rater
    for r in doc["raters"]:  # the repeat comes after its original
        rep = next(i for i, c in key["checks"].items() if c["type"] == "repeat")
        assert r["order"].index(rep) > r["order"].index(key["checks"][rep]["of"])
    # Blinding: each rater sees the models of an item in a shuffled order, so no slot belongs to
    # one model (3 raters x 3 items: modelA in slot 1 every time has probability 2^-8).
    slots = {r["rater_id"]: [[key["groups"][g] for g in r["positions"][item["item_id"]]]
                             for item in doc["items"] if item["kind"] == "regular"] for r in doc["raters"]}
    first = [s[0] for rater in slots.values() for s in rater]
    assert set(first) == {"modelA", "modelB"}, slots
    form = (study / "share" / "r01" / "form.html").read_text(encoding="utf-8")
    item = next(i for i in doc["items"] if i["kind"] == "regular")
    shown = list(doc["raters"][0]["positions"][item["item_id"]])
    assert form.index(shown[0]) < form.index(shown[1])  # the form follows the rater's positions
    again = tmp_path / "again"
    make_study(StudyOptions(sources=[str(two_runs / "modelA"), str(two_runs / "modelB")],
                            out=str(again), captions=3, per_model=2, raters=3, seed=5, progress=False))
    assert (again / "study.json").read_bytes() == (study / "study.json").read_bytes()
    assert load_study(again)[1]["tokens"] != key["tokens"]  # secrets are not seeded


def test_responses_are_validated_and_failures_excluded_with_reasons(study, tmp_path):
    doc, key = load_study(study)
    good = simulated_response(doc, key, "r01")
    files = {}
    files["good"] = tmp_path / "good.json"
    files["good"].write_text(json.dumps(good))
    text = json.dumps(simulated_response(doc, key, "r02"))
    files["truncated"] = tmp_path / "trunc.json"
    files["truncated"].write_text(text[: len(text) // 2])
    tampered = simulated_response(doc, key, "r03")
    first = next(iter(tampered["answers"].values()))["ranks"]
    a, b = list(first)
    first[a], first[b] = first[b], first[a]  # edited after saving: the checksum no longer matches
    files["tampered"] = tmp_path / "tampered.json"
    files["tampered"].write_text(json.dumps(tampered))
    files["duplicate"] = tmp_path / "dup.json"
    files["duplicate"].write_text(json.dumps(good))
    other = dict(good, study_id="ffffffffffff")
    other["checksum"] = checksum(other)
    files["other"] = tmp_path / "other.json"
    files["other"].write_text(json.dumps(other))

    def fail_attention(answers):
        check = next(i for i, c in key["checks"].items() if c["type"] == "real_vs_noise")
        ranks = answers[check]
        ranks["ranks"] = {g: len(ranks["ranks"]) + 1 - r for g, r in ranks["ranks"].items()}

    files["inattentive"] = tmp_path / "inattentive.json"
    files["inattentive"].write_text(json.dumps(simulated_response(doc, key, "r02", fail_attention)))

    def incomplete(answers):
        answers.pop(next(iter(answers)))

    files["incomplete"] = tmp_path / "incomplete.json"
    files["incomplete"].write_text(json.dumps(simulated_response(doc, key, "r03", incomplete)))
    result = read_responses(doc, key, [str(p) for p in files.values()])
    reasons = {Path(s).stem: why for s, why in result.rejected}
    assert [r.rater_id for r in result.accepted] == ["r01"]
    assert "not valid JSON" in reasons["trunc"]
    assert "checksum mismatch" in reasons["tampered"]
    assert "duplicate response for rater r01" in reasons["dup"]
    assert "another study" in reasons["other"]
    assert "failed attention check" in reasons["inattentive"]
    assert "incomplete: 4 of 5 items answered" in reasons["incomplete"]
    out = score_study(study, [str(p) for p in files.values()], bootstrap=100, track=False)
    assert out["models"]["modelA"]["mean_rank"] == 1.0 and len(out["excluded"]) == 6

    def inconsistent(answers):  # the repeated item ranked the other way round
        rep = next(i for i, c in key["checks"].items() if c["type"] == "repeat")
        ranks = answers[rep]["ranks"]
        answers[rep]["ranks"] = {g: len(ranks) + 1 - r for g, r in ranks.items()}

    path = tmp_path / "inconsistent.json"
    path.write_text(json.dumps(simulated_response(doc, key, "r02", inconsistent)))
    rejected = read_responses(doc, key, [str(path)]).rejected
    assert len(rejected) == 1 and "failed consistency check" in rejected[0][1]


def test_filled_csv_sheet_scores(study, tmp_path):
    import csv

    doc, key = load_study(study)
    rows = list(csv.DictReader(open(study / "share" / "r02" / "sheet.csv", newline="")))
    by_item: dict = {}
    for row in rows:
        by_item.setdefault(row["item_id"], []).append(row["group_id"])
    for row in rows:
        row["rank"] = desired_ranks(key, by_item[row["item_id"]])[row["group_id"]]
        row["realism"] = 4
    sheet = tmp_path / "r02.csv"
    with open(sheet, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    out = score_study(study, [str(sheet)], bootstrap=50, track=False)
    assert out["excluded"] == [] and out["models"]["modelB"]["mean_rank"] == 2.0
    assert out["models"]["modelA"]["realism"] == 4.0


def test_score_logs_to_mlflow(study, tmp_path, monkeypatch):
    doc, key = load_study(study)
    path = tmp_path / "r01.json"
    path.write_text(json.dumps(simulated_response(doc, key, "r01")))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    out = score_study(study, [str(path)], bootstrap=50, tracking_uri=uri)
    from mlflow.tracking import MlflowClient

    run = MlflowClient(tracking_uri=uri).get_run(out["mlflow_run_id"])
    assert run.data.metrics["human_rank.modelA"] == 1.0
    assert run.data.params["study_id"] == doc["study_id"]


# ----------------------------------------------------------------------------- the browser
def _browser(download_dir: Path):
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        if required("STACKGAN_BENCH_REQUIRE_BROWSER"):
            pytest.fail("chromium/chromedriver not found but STACKGAN_BENCH_REQUIRE_BROWSER is set")
        pytest.skip("needs chromium and chromedriver (apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(arg)
    options.binary_location = chromium
    options.add_experimental_option("prefs", {"download.default_directory": str(download_dir),
                                              "download.prompt_for_download": False})
    return webdriver.Chrome(service=Service(driver), options=options)


def _fill_form(browser, key, reload_after=None):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    total = int(browser.find_element(By.ID, "total").text)
    for n in range(total):
        WebDriverWait(browser, 20).until(
            lambda b, at=str(n + 1): b.find_element(By.ID, "position").text == at)
        groups = browser.find_elements(By.CSS_SELECTOR, "#groups .group")
        gids = [g.get_attribute("data-group") for g in groups]
        ranks = desired_ranks(key, gids)
        for g in groups:
            Select(g.find_element(By.CSS_SELECTOR, "select[aria-label=Rank]")).select_by_value(
                str(ranks[g.get_attribute("data-group")]))
            Select(g.find_element(By.CSS_SELECTOR, "select[aria-label=Alignment]")).select_by_value("3")
        if reload_after is not None and n == reload_after:
            # Chromium commits localStorage to its store in batches (about a second); a reload
            # within milliseconds of the last answer, which no rater manages, can precede it.
            time.sleep(3)
            browser.refresh()  # progress survives a reload
            WebDriverWait(browser, 20).until(
                lambda b, done=str(n + 1): b.find_element(By.ID, "answered").text == done)
            assert browser.find_element(By.ID, "position").text == str(n + 1)
        if n < total - 1:
            # Keyboard navigation: "n" outside a form control moves to the next item.
            browser.execute_script("document.activeElement.blur()")
            ActionChains(browser).send_keys("n").perform()
    browser.find_element(By.ID, "save").click()


@pytest.mark.integration
def test_offline_form_in_a_headless_browser(study, tmp_path):
    doc, key = load_study(study)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    browser = _browser(downloads)
    try:
        browser.get((study / "share" / "r02" / "form.html").resolve().as_uri())
        _fill_form(browser, key, reload_after=1)
        deadline = time.time() + 30
        while time.time() < deadline and not list(downloads.glob("response-*.json")):
            time.sleep(0.2)
    finally:
        browser.quit()
    saved = list(downloads.glob("response-*.json"))
    assert [p.name for p in saved] == [f"response-{doc['study_id']}-r02.json"]
    out = score_study(study, [str(saved[0])], bootstrap=50, track=False)
    assert out["excluded"] == [], out["excluded"]
    assert out["models"]["modelA"]["mean_rank"] == 1.0
    assert out["models"]["modelB"]["alignment"] == 3.0


@pytest.mark.integration
def test_served_form_in_a_headless_browser(study, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from harness.human.server import StudyServer

    doc, key = load_study(study)
    server = StudyServer(study, "127.0.0.1", 0)
    server.start_background()
    browser = _browser(tmp_path)
    try:
        # A wrong token, the key file and paths outside the routes get an empty 404.
        for path in ("/r/not-a-token/", "/key.json", f"/r/{key['tokens']['r01']}/../../key.json",
                     "/admin/wrong/export", "/share/images/"):
            with pytest.raises(urllib.error.HTTPError) as err:
                urllib.request.urlopen(server.url + path)
            assert err.value.code == 404 and err.value.read() == b""
        browser.get(server.rater_url("r01"))
        _fill_form(browser, key, reload_after=2)
        WebDriverWait(browser, 30).until(
            lambda b: "submitted" in b.find_element(By.ID, "done-text").text)
        export = json.loads(urllib.request.urlopen(server.export_url()).read())
    finally:
        browser.quit()
        server.shutdown()
    assert [r["rater_id"] for r in export["responses"]] == ["r01"]
    path = tmp_path / "export.json"
    path.write_text(json.dumps(export))
    out = score_study(study, [str(path)], bootstrap=50, track=False)
    assert out["excluded"] == [] and out["models"]["modelA"]["mean_rank"] == 1.0


@pytest.mark.integration
def test_caption_with_markup_is_shown_as_text(tmp_path):
    from PIL import Image
    from selenium.webdriver.common.by import By

    images = tmp_path / "images"
    images.mkdir()
    Image.new("RGB", (8, 8)).save(images / "i1.png")
    caption = ("""</script><script>window.pwned = 1</script>"""
               """<img src=x onerror="window.pwned=2"> 'q' "dq" &amp;""")
    study_doc = {"study_id": "s1", "title": "t <b>", "models": 1, "ratings": False,
                 "items": [{"item_id": "x", "caption": caption,
                            "groups": [{"group_id": "g", "images": ["i1"]}]}],
                 "raters": [{"rater_id": "r01", "order": ["x"], "positions": {"x": ["g"]}}]}
    html = render_form(study_doc, "r01", images)
    assert "<script>window.pwned" not in html
    page = tmp_path / "form.html"
    page.write_text(html)
    browser = _browser(tmp_path)
    try:
        browser.get(page.as_uri())
        assert browser.find_element(By.ID, "caption").text == caption
        assert browser.execute_script("return window.pwned === undefined")
        assert browser.find_element(By.ID, "title").text == "t <b>"
    finally:
        browser.quit()


@pytest.mark.integration
def test_participants_join_through_the_recruitment_link(study, tmp_path):
    """Two participants join with Prolific-style parameters and get different slots; one
    abandons and the slot goes to a newcomer after the (shortened) timeout; the other finishes
    and lands on the completion redirect; joining again with the same id gives the same slot.
    Every image is fetched from the server at most once."""
    from collections import Counter

    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from harness.human.server import StudyServer

    copy = tmp_path / "study"
    shutil.copytree(study, copy, ignore=shutil.ignore_patterns("responses.sqlite*"))
    doc, key = load_study(copy)
    server = StudyServer(copy, "127.0.0.1", 0, abandon_after_s=4)
    server.completion_url = f"{server.url}/complete?cc=C0DE"  # the port is known once bound
    fetched = Counter()
    image_file = server.images.file
    server.images.file = lambda name: (fetched.update([name]), image_file(name))[1]
    server.start_background()
    browser = _browser(tmp_path)

    def join(pid):
        browser.get(f"{server.join_url()}?PROLIFIC_PID={pid}&STUDY_ID=s1&SESSION_ID=x{pid}")
        WebDriverWait(browser, 20).until(lambda b: b.find_element(By.ID, "rater").text)
        return browser.current_url, browser.find_element(By.ID, "rater").text

    try:
        url_a, slot_a = join("PA")
        from selenium.webdriver.support.ui import Select

        groups = browser.find_elements(By.CSS_SELECTOR, "#groups .group")
        ranks = desired_ranks(key, [g.get_attribute("data-group") for g in groups])
        for g in groups:
            Select(g.find_element(By.CSS_SELECTOR, "select[aria-label=Rank]")).select_by_value(
                str(ranks[g.get_attribute("data-group")]))
        WebDriverWait(browser, 20).until(lambda b: b.find_element(By.ID, "answered").text == "1")
        WebDriverWait(browser, 20).until(lambda b: server.store.answer_log())  # the POST arrived
        url_b, slot_b = join("PB")  # A walks away after one answer
        assert slot_b != slot_a and url_b != url_a
        started = time.time()
        _fill_form(browser, key)
        WebDriverWait(browser, 30).until(lambda b: "/complete?cc=C0DE" in b.current_url)
        time.sleep(max(0.0, 4.5 - (time.time() - started)))
        url_c, slot_c = join("PC")
        assert slot_c == slot_a and url_c != url_a  # A's slot, under C's own link
        browser.get(url_a)  # A's old link now says what happened
        assert "expired" in browser.find_element(By.TAG_NAME, "h1").text
        url_b2, slot_b2 = join("PB")
        assert (url_b2, slot_b2) == (url_b, slot_b)
        admin = urllib.request.urlopen(server.admin_url()).read().decode()
        export = json.loads(urllib.request.urlopen(server.export_url()).read())
    finally:
        browser.quit()
        server.shutdown()
    assert fetched and max(fetched.values()) == 1, fetched.most_common(3)
    assert "PA" in admin and "abandoned" in admin and "completed" in admin
    assert [r["rater_id"] for r in export["responses"]] == [slot_b]
    assert export["participants"][slot_b]["participant"] == "PB"
    assert export["abandoned"][0]["participant"] == "PA"


@pytest.mark.integration
def test_a_split_offline_form_filled_in_a_browser_scores_as_one_rater(study, tmp_path):
    from harness.human.form import render_form_parts

    doc, key = load_study(study)
    whole = render_form_parts(doc, "r03", study / "share" / "images", None)[0]
    parts = render_form_parts(doc, "r03", study / "share" / "images", len(whole.encode()) - 1)
    assert len(parts) >= 2
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    browser = _browser(downloads)
    try:
        for n, page in enumerate(parts, 1):
            path = tmp_path / f"form-part{n:02d}.html"
            path.write_text(page, encoding="utf-8")
            browser.get(path.as_uri())
            _fill_form(browser, key)
            deadline = time.time() + 30
            name = f"response-{doc['study_id']}-r03-part{n:02d}.json"
            while time.time() < deadline and not (downloads / name).exists():
                time.sleep(0.2)
    finally:
        browser.quit()
    saved = sorted(downloads.glob("response-*.json"))
    assert len(saved) == len(parts)
    out = score_study(study, [str(p) for p in saved], bootstrap=50, track=False)
    assert out["excluded"] == [] and out["raters"] == 1, out["excluded"]
    assert out["models"]["modelA"]["mean_rank"] == 1.0

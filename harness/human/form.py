"""The rater materials of a study: a self-contained HTML form (images inlined as data URIs, no
network, no external assets; split into parts of bounded size for big studies), the served form
(images by URL from the study server), and a CSV sheet with the same ids for spreadsheet-based
studies.

The caption and every other string reach the page as JSON inside a ``<script
type="application/json">`` block, with ``<``, ``>`` and ``&`` escaped, and are put on the page with
``textContent``: a caption holding ``<script>`` or quotes is shown as text, never run. A
Content-Security-Policy forbids any network access other than the page's own server.
"""

from __future__ import annotations

import base64
import csv
import io
import json
from importlib import resources
from pathlib import Path

from harness.cells import spreadsheet_cell

SHEET_COLUMNS = ("study_id", "rater_id", "position", "item_id", "caption", "slot", "group_id",
                 "images", "rank", "alignment", "realism")


def _template() -> str:
    return resources.files("harness.human").joinpath("templates/form.html").read_text(encoding="utf-8")


def _script_safe_json(data) -> str:
    text = json.dumps(data, ensure_ascii=False)
    return (text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def rater_view(study: dict, rater_id: str) -> dict:
    """The items of one rater in their order, groups in their positions (no model names)."""
    rater = next((r for r in study["raters"] if r["rater_id"] == rater_id), None)
    if rater is None:
        raise KeyError(rater_id)
    by_id = {it["item_id"]: it for it in study["items"]}
    items = []
    for item_id in rater["order"]:
        item = by_id[item_id]
        groups = {g["group_id"]: g for g in item["groups"]}
        items.append({"item_id": item_id, "caption": item["caption"],
                      "groups": [groups[gid] for gid in rater["positions"][item_id]]})
    return {"study_id": study["study_id"], "rater_id": rater_id, "title": study["title"],
            "models": study["models"], "ratings": study["ratings"], "items": items}


def render_form(study: dict, rater_id: str, images_dir: Path, mode: str = "offline",
                api: str | None = None, image_url=None) -> str:
    """One rater's form. Offline (the default), every image is inlined as a data URI; served,
    ``image_url(image_id)`` gives each image's URL on the server and ``api`` the answer API."""
    parts = render_form_parts(study, rater_id, images_dir, None, mode=mode, api=api,
                              image_url=image_url)
    return parts[0]


def render_form_parts(study: dict, rater_id: str, images_dir: Path, max_bytes: int | None,
                      mode: str = "offline", api: str | None = None, image_url=None) -> list[str]:
    """One rater's form, split into parts of at most ``max_bytes`` each (None: one part). Every
    part holds whole items in the rater's order; its response names the part, and ``human
    score`` joins a rater's parts into one response."""
    view = rater_view(study, rater_id)
    cache: dict[str, str] = {}

    def inline(image_id: str) -> str:
        if image_id not in cache:
            raw = (Path(images_dir) / f"{image_id}.png").read_bytes()
            cache[image_id] = "data:image/png;base64," + base64.b64encode(raw).decode("ascii")
        return cache[image_id]

    source = image_url or inline
    for item in view["items"]:
        item["groups"] = [{"group_id": g["group_id"], "images": [source(i) for i in g["images"]]}
                          for g in item["groups"]]
    view["mode"] = mode
    if api:
        view["api"] = api
    template = _template().replace("__IMG_SRC__", "'self'" if image_url else "data:")
    chunks = _split(view["items"], max_bytes, len(template) + 1024)
    pages = []
    for number, items in enumerate(chunks, 1):
        page_view = dict(view, items=items)
        if len(chunks) > 1:
            page_view.update(part=number, parts=len(chunks))
        pages.append(template.replace("__STUDY_DATA__", _script_safe_json(page_view)))
    return pages


def _split(items: list[dict], max_bytes: int | None, overhead: int) -> list[list[dict]]:
    """Whole items in order, each run of them at most ``max_bytes`` once rendered (an image
    repeated within a part counted once, as the page holds it once per use: the bound is safe)."""
    if max_bytes is None:
        return [items]
    chunks: list[list[dict]] = [[]]
    size = overhead
    for item in items:
        cost = len(_script_safe_json(item).encode("utf-8")) + 2
        if overhead + cost > max_bytes:
            raise ValueError(f"one item needs {overhead + cost} bytes, more than the part size "
                             f"{max_bytes}")
        if chunks[-1] and size + cost > max_bytes:
            chunks.append([])
            size = overhead
        chunks[-1].append(item)
        size += cost
    return chunks


def render_sheet(study: dict, rater_id: str) -> str:
    view = rater_view(study, rater_id)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(SHEET_COLUMNS)
    for position, item in enumerate(view["items"], 1):
        for slot, group in enumerate(item["groups"]):
            writer.writerow([study["study_id"], rater_id, position, item["item_id"],
                             spreadsheet_cell(item["caption"]), "ABCDEFGHIJKLMNOPQRSTUVWXYZ"[slot],
                             group["group_id"], " ".join(f"../images/{i}.png" for i in group["images"]),
                             "", "", ""])
    return buf.getvalue()

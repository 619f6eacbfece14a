"""Reads rater responses (the form's JSON files, the server's export, or filled CSV sheets) and
checks each against its study. A response that fails is excluded with the reason; the others
still score."""

from __future__ import annotations

import csv
import json
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from harness.human.form import SHEET_COLUMNS

RESPONSE_FORMAT = "stackgan-bench-response/1"


@dataclass
class Response:
    source: str
    rater_id: str
    answers: dict  # item_id -> {"ranks": {group_id: rank}, "alignment": {...}, "realism": {...}}


@dataclass
class ReadResult:
    accepted: list[Response] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (source, reason)


class Rejected(Exception):
    pass


def checksum(body: dict) -> str:
    """CRC-32 of the canonical JSON (sorted keys, no spaces) of everything but the checksum,
    computed the same way by the form."""
    payload = {k: v for k, v in body.items() if k != "checksum"}
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return f"{zlib.crc32(text.encode('utf-8')):08x}"


def _no_duplicate_keys(pairs):
    seen = {}
    for k, v in pairs:
        if k in seen:
            raise Rejected(f"duplicate id {k!r} in the file")
        seen[k] = v
    return seen


def _int(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise Rejected(f"{what}: {value!r} is not a whole number")
    return value


def check_answers(study: dict, key: dict, rater_id: str, answers) -> dict:
    """The answers if complete and valid for this rater, else raises Rejected with the reason."""
    if not isinstance(answers, dict):
        raise Rejected("answers: expected a mapping of item ids")
    items = {it["item_id"]: it for it in study["items"]}
    unknown = sorted(set(answers) - set(items))
    if unknown:
        raise Rejected(f"unknown item id(s) {unknown[:3]} (not in study {study['study_id']})")
    missing = [i for i in items if not answers.get(i)]
    if missing:
        raise Rejected(f"incomplete: {len(items) - len(missing)} of {len(items)} items answered")
    m = study["models"]
    for item_id, answer in answers.items():
        groups = {g["group_id"] for g in items[item_id]["groups"]}
        ranks = answer.get("ranks") if isinstance(answer, dict) else None
        if not isinstance(ranks, dict):
            raise Rejected(f"item {item_id}: no ranks")
        if set(ranks) != groups:
            extra, absent = sorted(set(ranks) - groups), sorted(groups - set(ranks))
            raise Rejected(f"item {item_id}: ranks for unknown group(s) {extra} / missing {absent}")
        values = sorted(_int(v, f"item {item_id} rank") for v in ranks.values())
        if values != list(range(1, m + 1)):
            raise Rejected(f"item {item_id}: ranks {values} are not 1..{m} without ties")
        for scale in ("alignment", "realism"):
            ratings = answer.get(scale) or {}
            if not isinstance(ratings, dict) or not set(ratings) <= groups:
                raise Rejected(f"item {item_id}: {scale} ratings for unknown groups")
            for v in ratings.values():
                if not 1 <= _int(v, f"item {item_id} {scale}") <= 5:
                    raise Rejected(f"item {item_id}: {scale} rating {v} is outside 1..5")
    _attention(key, answers)
    return answers


def _attention(key: dict, answers: dict) -> None:
    failures = attention_failures(key, answers)
    if failures:
        raise Rejected(failures[0])


def attention_failures(key: dict, answers: dict) -> list[str]:
    """The attention checks these answers fail, each with its reason; a check whose items are
    not all answered yet is not judged (so a study's admin page can show failures as they
    happen)."""
    failures = []
    for item_id, check in key.get("checks", {}).items():
        if not isinstance(answers.get(item_id), dict):
            continue
        ranks = answers[item_id].get("ranks") or {}
        if check["type"] == "real_vs_noise" and check["real_group"] in ranks \
                and ranks[check["real_group"]] != 1:
            failures.append(f"failed attention check (item {item_id}): real photos were not "
                            "ranked above pure noise")
        if check["type"] == "repeat" and isinstance(answers.get(check["of"]), dict):
            first = answers[check["of"]].get("ranks") or {}
            again = {check["groups"][g]: r for g, r in ranks.items() if g in check["groups"]}
            if len(first) > 1 and set(again) == set(first):
                best_first = min(first, key=first.get)
                if again[best_first] == max(first.values()):
                    failures.append(f"failed consistency check (item {item_id}): the group ranked "
                                    f"best in item {check['of']} was ranked worst when shown again")
    return failures


def _from_json(path: Path, study: dict) -> list[tuple[str, dict]]:
    """(rater_id, body) pairs of a response file or a server export (a list of responses)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise Rejected(f"cannot read ({exc.strerror or exc})") from exc
    except UnicodeDecodeError as exc:
        raise Rejected("not UTF-8 text") from exc
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except json.JSONDecodeError as exc:
        raise Rejected(f"not valid JSON, truncated or damaged ({exc.msg} at line {exc.lineno})") from exc
    bodies = data["responses"] if isinstance(data, dict) and "responses" in data else [data]
    if not isinstance(bodies, list):
        raise Rejected(f"\"responses\": expected a list of responses, found a "
                       f"{type(bodies).__name__}")
    out = []
    for b in bodies:
        rater_id = b.get("rater_id", "?") if isinstance(b, dict) else "?"
        out.append((rater_id if isinstance(rater_id, str) else repr(rater_id)[:40], b))
    return out


def check_body(body, study: dict) -> None:
    if not isinstance(body, dict) or body.get("format") != RESPONSE_FORMAT:
        raise Rejected(f"not a {RESPONSE_FORMAT} response")
    if body.get("study_id") != study["study_id"]:
        raise Rejected(f"a response for another study ({body.get('study_id')!r}, "
                       f"this is {study['study_id']!r})")
    if "checksum" not in body:
        raise Rejected("no checksum: not written by the study's form")
    if checksum(body) != body["checksum"]:
        raise Rejected("checksum mismatch: the file was edited or damaged after it was saved")
    if not body.get("complete"):
        raise Rejected("the form was not completed")
    if "parts" in body or "part" in body:
        part, parts = body.get("part"), body.get("parts")
        if not (isinstance(parts, int) and isinstance(part, int) and not isinstance(part, bool)
                and 1 <= part <= parts):
            raise Rejected(f"part {part!r} of {parts!r}: not a part of a split form")


def _from_sheet(path: Path, study: dict) -> tuple[str, dict]:
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise Rejected(f"unreadable CSV ({exc})") from exc
    if not rows or set(SHEET_COLUMNS) - set(rows[0]):
        raise Rejected(f"not a rating sheet: needs columns {', '.join(SHEET_COLUMNS)}")
    if {r["study_id"] for r in rows} != {study["study_id"]}:
        raise Rejected("a sheet for another study")
    raters = {r["rater_id"] for r in rows}
    if len(raters) != 1:
        raise Rejected(f"rows of several raters {sorted(raters)}")
    answers: dict[str, dict] = {}
    for n, row in enumerate(rows, 2):
        ans = answers.setdefault(row["item_id"], {"ranks": {}})
        if row["group_id"] in ans["ranks"]:
            raise Rejected(f"line {n}: group {row['group_id']} appears twice")
        for col, fieldname in (("rank", "ranks"), ("alignment", "alignment"), ("realism", "realism")):
            value = (row.get(col) or "").strip()
            if not value:
                if col == "rank":
                    raise Rejected(f"incomplete: line {n} has no rank")
                continue
            try:
                number = int(float(value)) if float(value).is_integer() else float(value)
            except ValueError as exc:
                raise Rejected(f"line {n}: {col} {value!r} is not a number") from exc
            ans.setdefault(fieldname, {})[row["group_id"]] = number
    return raters.pop(), answers


def read_responses(study: dict, key: dict, paths: list[str | Path]) -> ReadResult:
    result = ReadResult()
    raters = {r["rater_id"] for r in study["raters"]}
    seen: dict[str, str] = {}
    # A split offline form comes back as one file per part: joined per rater, then checked whole.
    parts: dict[str, dict[int, tuple[str, dict]]] = {}

    def judge(source: str, rater_id: str, answers_of) -> None:
        """Accept one rater's answers (``answers_of()`` may itself reject) or record why not."""
        try:
            if rater_id in seen:
                raise Rejected(f"duplicate response for rater {rater_id} (already read from "
                               f"{seen[rater_id]})")
            answers = check_answers(study, key, rater_id, answers_of())
        except Rejected as exc:
            result.rejected.append((source, str(exc)))
            return
        seen[rater_id] = source
        result.accepted.append(Response(source, rater_id, answers))

    for path in map(Path, paths):
        try:
            if path.suffix.lower() == ".csv":
                candidates = [(*_from_sheet(path, study), None)]
            else:
                candidates = [(rid, None, body) for rid, body in _from_json(path, study)]
        except Rejected as exc:
            result.rejected.append((str(path), str(exc)))
            continue
        for rater_id, answers, body in candidates:
            source = str(path) if len(candidates) == 1 else f"{path} [{rater_id}]"
            try:
                if body is not None:
                    check_body(body, study)
                    answers = body.get("answers")
                if rater_id not in raters:
                    raise Rejected(f"unknown rater {rater_id!r}")
                if body is not None and "parts" in body:
                    got = parts.setdefault(rater_id, {})
                    if body["part"] in got:
                        raise Rejected(f"part {body['part']} of rater {rater_id} twice (already "
                                       f"read from {got[body['part']][0]})")
                    if not isinstance(answers, dict):
                        raise Rejected("answers: expected a mapping of item ids")
                    got[body["part"]] = (source, dict(body, answers=answers))
                    continue
            except Rejected as exc:
                result.rejected.append((source, str(exc)))
                continue
            judge(source, rater_id, lambda answers=answers: answers)
    for rater_id, got in parts.items():
        judge(" + ".join(got[k][0] for k in sorted(got)), rater_id,
              lambda got=got, rater_id=rater_id: _join_parts(rater_id, got))
    return result


def _join_parts(rater_id: str, got: dict[int, tuple[str, dict]]) -> dict:
    expected = {b["parts"] for _, b in got.values()}
    if len(expected) != 1:
        raise Rejected(f"parts disagree on how many parts the form has ({sorted(expected)})")
    missing = sorted(set(range(1, expected.pop() + 1)) - set(got))
    if missing:
        raise Rejected(f"rater {rater_id}: part(s) {missing} missing")
    answers: dict = {}
    for _, b in got.values():
        overlap = set(answers) & set(b["answers"])
        if overlap:
            raise Rejected(f"item {sorted(overlap)[0]} answered in two parts")
        answers.update(b["answers"])
    return answers

"""What a served study keeps: every answer as it is given, submissions, and the rater slots that
recruited participants hold — one SQLite file (``<study>/responses.sqlite``).

Durability: every write is one transaction committed with ``synchronous=FULL`` before the server
answers, so an answer the rater was told is saved survives ``kill -9`` of the server (and a power
cut). Answers are keyed by (slot, participant, item): a repeated or retried answer replaces the
earlier one, never adds a row.

A *seat* is who is answering: a slot (rater id of the study) and a participant — ``""`` for the
hand-made token links of ``key.json``, the platform's participant id for someone who joined
through the recruitment link. A slot whose participant stopped answering for longer than the
abandon timeout is given to the next participant who joins; the first participant's answers are
kept under their own id (exported as abandoned), and their link stops working.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS seat_answers (rater_id TEXT, participant TEXT, item_id TEXT,
    answer TEXT, first REAL, updated REAL, PRIMARY KEY (rater_id, participant, item_id));
CREATE TABLE IF NOT EXISTS seat_submissions (rater_id TEXT, participant TEXT, body TEXT,
    submitted REAL, PRIMARY KEY (rater_id, participant));
CREATE TABLE IF NOT EXISTS assignments (token TEXT PRIMARY KEY, rater_id TEXT, platform TEXT,
    participant TEXT, platform_study TEXT, platform_session TEXT, assigned REAL, last_seen REAL,
    completed REAL, revoked REAL);
CREATE INDEX IF NOT EXISTS assignments_by_participant ON assignments (platform, participant);
CREATE TABLE IF NOT EXISTS settings (name TEXT PRIMARY KEY, value TEXT);
"""


@dataclass(frozen=True)
class Seat:
    rater_id: str
    participant: str = ""  # "" for a hand-made token link
    token: str | None = None  # the assignment's token (None for a hand-made link)
    revoked: bool = False


@dataclass(frozen=True)
class JoinResult:
    status: str  # "assigned" | "returning" | "expired" | "full"
    seat: Seat | None = None


class ResponseStore:
    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)
            self._migrate_v1(db)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30)
        db.execute("PRAGMA synchronous=FULL")
        return db

    @staticmethod
    def _migrate_v1(db: sqlite3.Connection) -> None:
        """Studies served before recruitment stored answers per rater only: moved over once, as
        hand-made-link answers (participant "")."""
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "answers" in tables:
            db.execute("INSERT OR IGNORE INTO seat_answers SELECT rater_id, '', item_id, answer, "
                       "updated, updated FROM answers")
            db.execute("DROP TABLE answers")
        if "submissions" in tables:
            db.execute("INSERT OR IGNORE INTO seat_submissions SELECT rater_id, '', body, submitted "
                       "FROM submissions")
            db.execute("DROP TABLE submissions")

    # ------------------------------------------------------------------ settings
    def setting(self, name: str, make) -> str:
        """The stored value of ``name``, created once with ``make()``: stable across restarts."""
        with self._lock, self._connect() as db:
            row = db.execute("SELECT value FROM settings WHERE name = ?", (name,)).fetchone()
            if row:
                return row[0]
            value = make()
            db.execute("INSERT INTO settings VALUES (?, ?)", (name, value))
            return value

    # ------------------------------------------------------------------ answers
    def save_answer(self, seat: Seat, item_id: str, answer: dict, now: float | None = None) -> None:
        now = time.time() if now is None else now
        with self._lock, self._connect() as db:
            db.execute("INSERT INTO seat_answers VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT "
                       "(rater_id, participant, item_id) DO UPDATE SET answer = excluded.answer, "
                       "updated = excluded.updated",
                       (seat.rater_id, seat.participant, item_id, json.dumps(answer), now, now))
            if seat.token:
                db.execute("UPDATE assignments SET last_seen = ? WHERE token = ?", (now, seat.token))

    def answers(self, seat: Seat) -> dict:
        with self._connect() as db:
            rows = db.execute("SELECT item_id, answer FROM seat_answers WHERE rater_id = ? AND "
                              "participant = ?", (seat.rater_id, seat.participant))
            return {item: json.loads(a) for item, a in rows}

    def touch(self, seat: Seat, now: float | None = None) -> None:
        if seat.token:
            with self._lock, self._connect() as db:
                db.execute("UPDATE assignments SET last_seen = ? WHERE token = ?",
                           (time.time() if now is None else now, seat.token))

    def submit(self, seat: Seat, body: dict, now: float | None = None) -> None:
        now = time.time() if now is None else now
        with self._lock, self._connect() as db:
            db.execute("INSERT OR REPLACE INTO seat_submissions VALUES (?, ?, ?, ?)",
                       (seat.rater_id, seat.participant, json.dumps(body), now))
            if seat.token:
                db.execute("UPDATE assignments SET completed = ?, last_seen = ? WHERE token = ?",
                           (now, now, seat.token))

    # ------------------------------------------------------------------ recruitment
    def seat_for_token(self, token: str) -> Seat | None:
        with self._connect() as db:
            row = db.execute("SELECT rater_id, participant, revoked FROM assignments WHERE token = ?",
                             (token,)).fetchone()
        if row is None:
            return None
        return Seat(row[0], row[1], token, row[2] is not None)

    def join(self, slots: list[str], platform: str, participant: str, platform_study: str,
             platform_session: str, abandon_after_s: float, now: float | None = None) -> JoinResult:
        """The seat of a participant arriving through the recruitment link: theirs again if they
        have one; else the first slot nobody holds, a slot whose holder gave no sign of life for
        ``abandon_after_s`` counting as free (their link is revoked, their answers kept)."""
        now = time.time() if now is None else now
        with self._lock, self._connect() as db:
            db.execute("BEGIN IMMEDIATE")  # one join at a time, across processes too
            mine = db.execute("SELECT token, rater_id, revoked FROM assignments WHERE platform = ? "
                              "AND participant = ? ORDER BY assigned DESC LIMIT 1",
                              (platform, participant)).fetchone()
            if mine is not None:
                token, rater_id, revoked = mine
                if revoked is not None:
                    return JoinResult("expired", Seat(rater_id, participant, token, True))
                db.execute("UPDATE assignments SET last_seen = ? WHERE token = ?", (now, token))
                return JoinResult("returning", Seat(rater_id, participant, token))
            held = {rater: (token, last_seen, completed) for token, rater, last_seen, completed in
                    db.execute("SELECT token, rater_id, last_seen, completed FROM assignments "
                               "WHERE revoked IS NULL")}
            # Slots used through a hand-made link are not handed to anyone else.
            by_hand = {r for (r,) in db.execute(
                "SELECT rater_id FROM seat_answers WHERE participant = '' UNION "
                "SELECT rater_id FROM seat_submissions WHERE participant = ''")}
            for rater_id in slots:
                if rater_id in by_hand:
                    continue
                holder = held.get(rater_id)
                if holder is not None:
                    token, last_seen, completed = holder
                    if completed is not None or now - last_seen < abandon_after_s:
                        continue
                    db.execute("UPDATE assignments SET revoked = ? WHERE token = ?", (now, token))
                token = secrets.token_urlsafe(16)
                db.execute("INSERT INTO assignments VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL)",
                           (token, rater_id, platform, participant, platform_study,
                            platform_session, now, now))
                return JoinResult("assigned", Seat(rater_id, participant, token))
            return JoinResult("full")

    def assignments(self) -> list[dict]:
        cols = ("token", "rater_id", "platform", "participant", "platform_study", "platform_session",
                "assigned", "last_seen", "completed", "revoked")
        with self._connect() as db:
            rows = db.execute(f"SELECT {', '.join(cols)} FROM assignments ORDER BY assigned")
            return [dict(zip(cols, row, strict=True)) for row in rows]

    def submitted_seats(self) -> list[tuple[str, str]]:
        with self._connect() as db:
            return list(db.execute("SELECT rater_id, participant FROM seat_submissions"))

    def answer_log(self) -> list[tuple[str, str, str, dict, float, float]]:
        """(rater, participant, item, answer, first answered, last updated) of every answer."""
        with self._connect() as db:
            return [(r, p, i, json.loads(a), f, u) for r, p, i, a, f, u in db.execute(
                "SELECT rater_id, participant, item_id, answer, first, updated FROM seat_answers")]

    # ------------------------------------------------------------------ export
    def export(self) -> dict:
        """``responses`` in the format ``human score`` reads; who held each scored slot
        (``participants``); answers of seats that did not submit (``in_progress`` per slot for the
        current holder, ``abandoned`` for revoked ones)."""
        with self._connect() as db:
            submitted = db.execute("SELECT rater_id, participant, body FROM seat_submissions "
                                   "ORDER BY rater_id, submitted").fetchall()
            revoked = {(r, p) for r, p in db.execute(
                "SELECT rater_id, participant FROM assignments WHERE revoked IS NOT NULL")}
            platform = {(r, p): (pl, st, se) for r, p, pl, st, se in db.execute(
                "SELECT rater_id, participant, platform, platform_study, platform_session "
                "FROM assignments")}
            partial: dict[tuple[str, str], dict] = {}
            for rater, participant, item, answer in db.execute(
                    "SELECT rater_id, participant, item_id, answer FROM seat_answers"):
                partial.setdefault((rater, participant), {})[item] = json.loads(answer)
        done = {(r, p) for r, p, _ in submitted}
        out: dict = {"responses": [json.loads(b) for _, _, b in submitted], "in_progress": {},
                     "abandoned": [], "participants": {}}
        for rater, participant, _ in submitted:
            if participant:
                pl, st, se = platform.get((rater, participant), ("", "", ""))
                out["participants"][rater] = {"platform": pl, "participant": participant,
                                              "study": st, "session": se}
        for (rater, participant), answers in sorted(partial.items()):
            if (rater, participant) in done:
                continue
            if (rater, participant) in revoked:
                out["abandoned"].append({"rater_id": rater, "participant": participant,
                                         "answers": answers})
            else:
                out["in_progress"][rater] = answers
        if not out["abandoned"]:
            del out["abandoned"]
        if not out["participants"]:
            del out["participants"]
        return out

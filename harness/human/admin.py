"""The study's admin page (``/admin/<token>/``): who holds which slot, how far each is, which
attention checks they have failed so far, and how long they take per item.

Time per item is the gap between the first answers of consecutive items (the first item's own
time is unknown: the page load is not recorded). A seat is flagged *fast* when its median gap is
below ``FAST_FRACTION`` of the median over all seats with at least ``MIN_ITEMS_FOR_TIMING``
answers: raters who click through are the usual threat to a crowdsourced study, and a fixed
number of seconds would not fit both 3-model and 10-model studies. The page is rendered on the
server with every value escaped and carries no script (the CSP allows none from it anyway).
"""

from __future__ import annotations

import html
import statistics
import time

from harness.human.responses import attention_failures

FAST_FRACTION = 1 / 3
MIN_ITEMS_FOR_TIMING = 5


def seat_rows(study: dict, key: dict, store, abandon_after_s: float,
              now: float | None = None) -> list[dict]:
    """One row per seat that has answered or holds a slot, slots in study order."""
    now = time.time() if now is None else now
    total = len(study["items"])
    answers: dict[tuple[str, str], dict] = {}
    firsts: dict[tuple[str, str], list[float]] = {}
    last_answer: dict[tuple[str, str], float] = {}
    for rater, participant, item, answer, first, updated in store.answer_log():
        answers.setdefault((rater, participant), {})[item] = answer
        firsts.setdefault((rater, participant), []).append(first)
        last_answer[(rater, participant)] = max(updated, last_answer.get((rater, participant), 0.0))
    assignments = {(a["rater_id"], a["participant"]): a for a in store.assignments()}
    submitted = set(store.submitted_seats())
    slot_order = {r["rater_id"]: n for n, r in enumerate(study["raters"])}
    seats = sorted(set(answers) | set(assignments) | submitted,
                   key=lambda s: (slot_order.get(s[0], len(slot_order)), s[1]))
    rows = []
    for seat in seats:
        a = assignments.get(seat)
        given = answers.get(seat, {})
        last = max((t for t in (last_answer.get(seat), a["last_seen"] if a else None)
                    if t is not None), default=None)
        if seat in submitted:
            status = "completed"
        elif a and a["revoked"] is not None:
            status = "abandoned (slot reassigned)"
        elif last is not None and now - last >= abandon_after_s:
            status = "idle past the timeout"
        else:
            status = "active"
        times = sorted(firsts.get(seat, []))
        gaps = [b - a_ for a_, b in zip(times, times[1:], strict=False)]
        rows.append({"rater_id": seat[0], "participant": seat[1] or "(hand-made link)",
                     "platform": a["platform"] if a else "", "status": status,
                     "answered": len(given), "total": total,
                     "failures": attention_failures(key, given),
                     "median_s": statistics.median(gaps) if len(gaps) >= MIN_ITEMS_FOR_TIMING else None,
                     "last_seen": last})
    timed = [r["median_s"] for r in rows if r["median_s"] is not None]
    overall = statistics.median(timed) if timed else None
    for r in rows:
        r["fast"] = bool(overall and r["median_s"] is not None
                         and r["median_s"] < FAST_FRACTION * overall)
    return rows


def render_admin(study: dict, key: dict, store, abandon_after_s: float) -> str:
    now = time.time()
    rows = seat_rows(study, key, store, abandon_after_s, now)
    free = [r["rater_id"] for r in study["raters"]
            if not any(row["rater_id"] == r["rater_id"] and row["status"] in ("active", "completed")
                       for row in rows)]
    e = html.escape
    cells = []
    for r in rows:
        ago = "–" if r["last_seen"] is None else f"{(now - r['last_seen']) / 60:.1f} min ago"
        median = "–" if r["median_s"] is None else f"{r['median_s']:.1f} s"
        flag = " ⚠ fast" if r["fast"] else ""
        failures = "<br>".join(e(f) for f in r["failures"]) or "none"
        cells.append(f"<tr><td>{e(r['rater_id'])}</td><td>{e(r['participant'])}</td>"
                     f"<td>{e(r['platform'])}</td><td>{e(r['status'])}</td>"
                     f"<td>{r['answered']} / {r['total']}</td><td>{failures}</td>"
                     f"<td>{e(median)}{e(flag)}</td><td>{e(ago)}</td></tr>")
    completed = sum(r["status"] == "completed" for r in rows)
    return (
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>Study "
        f"{e(study['study_id'])}: admin</title><style>body{{font-family:system-ui,sans-serif;"
        "margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #bbb;padding:.3em "
        ".6em;text-align:left}}</style></head><body>"
        f"<h1>Study {e(study['study_id'])}</h1>"
        f"<p>{len(study['raters'])} slots: {completed} completed, free now: "
        f"{e(', '.join(free)) or 'none'}. Slots idle for {abandon_after_s / 60:g} min are given "
        "to the next participant who joins. <a href='export'>Export responses</a> (the format "
        "<code>human score</code> reads).</p>"
        "<table><tr><th>slot</th><th>participant</th><th>platform</th><th>status</th>"
        "<th>answered</th><th>attention checks failed</th><th>median time per item</th>"
        "<th>last activity</th></tr>" + "".join(cells) + "</table>"
        f"<p>⚠ fast: a median time per item below {FAST_FRACTION:.2f} × the median over all "
        f"seats with at least {MIN_ITEMS_FOR_TIMING} timed items.</p></body></html>")

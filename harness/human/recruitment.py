"""Who arrives through a study's recruitment link: the participant id and references that a
crowdsourcing platform appends to the link it opens.

Prolific appends ``PROLIFIC_PID``, ``STUDY_ID`` and ``SESSION_ID`` when the study URL is set up
with URL parameters; Amazon MTurk's external question appends ``workerId``, ``assignmentId`` and
``hitId``. A link opened without either set is refused with a page that says what is missing (a
participant id is what stops one person from taking two slots).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlencode

ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
PLATFORMS = {  # platform -> (participant, study, session) parameter names
    "prolific": ("PROLIFIC_PID", "STUDY_ID", "SESSION_ID"),
    "mturk": ("workerId", "hitId", "assignmentId"),
}
# MTurk's preview opens the task with this assignment id: a worker who has not accepted the HIT.
MTURK_PREVIEW = "ASSIGNMENT_ID_NOT_AVAILABLE"


class NotAParticipant(ValueError):
    pass


@dataclass(frozen=True)
class Arrival:
    platform: str
    participant: str
    study: str
    session: str


def arrival(params: dict[str, str]) -> Arrival:
    """The participant in a recruitment link's query parameters, or NotAParticipant saying why."""
    for platform, (pid, study, session) in PLATFORMS.items():
        if pid not in params:
            continue
        values = [params.get(name, "") for name in (pid, study, session)]
        if platform == "mturk" and values[2] == MTURK_PREVIEW:
            raise NotAParticipant("this is MTurk's preview: accept the HIT to start the study")
        for name, value in zip((pid, study, session), values, strict=True):
            if value and not ID_PATTERN.match(value):
                raise NotAParticipant(f"{name}: expected up to 64 letters, digits, '-' or '_'")
        if not values[0]:
            raise NotAParticipant(f"{pid} is empty")
        return Arrival(platform, *values)
    names = " or ".join("/".join(p) for p in PLATFORMS.values())
    raise NotAParticipant(f"the link carries no participant id ({names})")


def prolific_link(base: str) -> str:
    """The recruitment link to paste into Prolific: its placeholders filled in per participant."""
    pid, study, session = PLATFORMS["prolific"]
    query = urlencode({pid: "{{%PROLIFIC_PID%}}", study: "{{%STUDY_ID%}}",
                       session: "{{%SESSION_ID%}}"}, safe="{}%")
    return f"{base}?{query}"

"""YAML as configs and experiment files use it: plain mappings, lists and scalars.

PyYAML's ``safe_load`` still expands aliases: a 369-byte file of nested aliases ("billion
laughs") took more than 120 s and 1.4 GB, and 100k levels of nesting ended in a RecursionError.
Configs never need aliases (``inherit`` shares settings between files), so they are refused by
name, and nesting is bounded; both surface as ``yaml.YAMLError`` with the line, which every
reader already turns into a user error naming the file.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.composer import ComposerError

MAX_DEPTH = 50  # the deepest config or experiment file here nests 5 levels


class _PlainLoader(yaml.SafeLoader):
    def __init__(self, stream):
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise ComposerError(None, None, f"found alias *{event.anchor}: aliases are not allowed in "
                                "configs (use `inherit` to share settings)", event.start_mark)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise ComposerError(None, None, f"nested deeper than {MAX_DEPTH} levels",
                                    self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def load_plain(text: str) -> Any:
    """``yaml.safe_load`` without aliases and with bounded nesting."""
    return yaml.load(text, Loader=_PlainLoader)  # noqa: S506 - a SafeLoader subclass

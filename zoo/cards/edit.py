"""Rewriting fields of a card file's ``zoo:`` block in place, leaving every other line as written.

A card is hand-written Markdown whose front matter a person formats (flow-style components, comments);
re-dumping the whole YAML would lose that.  ``set_zoo_fields`` replaces (or appends) only the top-level
entries it is given inside ``zoo:`` and, optionally, the body's results section; the file is written
atomically and the result must still parse as a valid card.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from zoo.errors import CardError

_ENTRY = re.compile(r"^  ([A-Za-z_][\w-]*):")


def _dump(key: str, value: Any) -> list[str]:
    """``key: value`` indented under ``zoo:``: one flow-style line for a small mapping, block style otherwise."""
    flow = yaml.safe_dump({key: value}, default_flow_style=True, width=10 ** 6, sort_keys=False).strip()
    if len(flow) <= 118 and "\n" not in flow:
        return ["  " + flow.removeprefix("{").removesuffix("}")]
    text = yaml.safe_dump({key: value}, sort_keys=False, allow_unicode=True, width=100)
    return ["  " + line for line in text.rstrip("\n").split("\n")]


def set_zoo_fields(path: str | Path, fields: dict[str, Any], *, body: str | None = None) -> None:
    """Replace the top-level ``zoo.<key>`` entries of the card file at ``path`` by ``fields`` (a value of None
    removes the entry) and, if given, its body; other lines are kept byte for byte."""
    from zoo.cards.schema import parse_card
    from zoo.store.atomic import write_atomic

    path = Path(path)
    text = path.read_text()
    lines = text.split("\n")
    if not lines or lines[0].strip() != "---" or "---" not in [ln.strip() for ln in lines[1:]]:
        raise CardError(f"{path}: no YAML front matter (a '---' line, the metadata, a '---' line)")
    end = 1 + [ln.strip() for ln in lines[1:]].index("---")
    try:
        start = lines.index("zoo:", 1, end)
    except ValueError:
        raise CardError(f"{path}: the front matter has no top-level 'zoo:' block") from None
    stop = start + 1
    while stop < end and (lines[stop].startswith("  ") or not lines[stop].strip()):
        stop += 1
    block = lines[start + 1:stop]
    kept: list[str] = []
    skipping = False
    for line in block:
        match = _ENTRY.match(line)
        if match:
            skipping = match.group(1) in fields
        elif not line.startswith("   ") and line.strip():
            skipping = False
        if not skipping:
            kept.append(line)
    while kept and not kept[-1].strip():
        kept.pop()
    for key, value in fields.items():
        if value is not None:
            kept += _dump(key, value)
    front = lines[:start + 1] + kept + lines[stop:end + 1]
    new = "\n".join(front + lines[end + 1:]) if body is None else "\n".join(front) + "\n" + body
    parse_card(new, source=path, name=path.stem)  # refuse to write a card that no longer parses
    write_atomic(path, new)

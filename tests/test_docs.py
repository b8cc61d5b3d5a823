"""README and docs/ cite only what ships in the repository: every path they name exists here."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# A file name with a folder or a known extension: docs/flows.md, gunicorn.conf.py, flows/library/phq9.yaml.
CITED = re.compile(r"(?<![\w./-])((?:[\w.-]+/)*[\w.-]+\.(?:md|py|yaml|yml|toml|cfg|ini|csv|txt))(?![\w/-])")
# Names that stand for a kind of file in the text, not for a file of ours.
EXAMPLES = {"my_flow.yaml", "FILE.csv", "phq9.v1.yaml", "x.yaml", "FILE.xlsx"}


def shipped_names() -> set[str]:
    """Every file name in the tree (hidden folders, virtualenvs and instance data left out)."""
    names: set[str] = set()
    for _folder, subfolders, files in os.walk(ROOT):
        subfolders[:] = [name for name in subfolders
                         if not name.startswith(".") and name not in {"instance", "__pycache__", "node_modules"}]
        names.update(files)
    return names


def cited_paths(document: Path) -> set[str]:
    text = document.read_text(encoding="utf-8")
    return {match.group(1) for match in CITED.finditer(text)} - EXAMPLES


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: path.relative_to(ROOT).as_posix())
def test_every_file_a_document_names_is_in_the_repository(document: Path) -> None:
    missing = []
    names = shipped_names()
    for cited in sorted(cited_paths(document)):
        if cited.startswith("."):
            continue  # a bare extension (".csv")
        found = (ROOT / cited).exists() or (document.parent / cited).exists()
        if not found and "/" not in cited:
            found = cited in names
        if not found:
            missing.append(cited)
    assert missing == [], f"{document.name} names files that are not in the repository"


# `bot.turns.delivery.claim_and_lock()`, `security.dialects.write_batch()`, `bot.turns.scene.Scene`: a dotted name
# of ours in backticks.
DOTTED = re.compile(r"`((?:bot|care|flows|security|webhooks|admin|careloop|web)(?:\.\w+)+)(?:\(\))?`")


def test_every_function_the_life_of_a_message_names_exists() -> None:
    import importlib

    missing = []
    for name in sorted(set(DOTTED.findall((ROOT / "docs" / "life-of-a-message.md").read_text(encoding="utf-8")))):
        parts = name.split(".")
        for cut in range(len(parts), 0, -1):
            try:
                found: object = importlib.import_module(".".join(parts[:cut]))
            except ModuleNotFoundError:
                continue
            for attribute in parts[cut:]:
                found = getattr(found, attribute, None)
            if found is None:
                missing.append(name)
            break
        else:
            missing.append(name)
    assert missing == []

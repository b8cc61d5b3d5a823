"""The flow library: the built-in flows, versions side by side, pinning, all-or-nothing loading."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from flows.engine import StateError, TextInput, start, step
from flows.facts import Facts
from flows.problems import FlowValidationError
from flows.registry import FlowLibrary, FlowNotFoundError
from tests.flows.helpers import FIXTURES, NOW

LIBRARY_IDS = [
    "diabetes_followup", "gad7", "home_monitoring", "hypertension_followup",
    "intake", "phq9", "post_checkup", "satisfaction",
]  # fmt: skip


def test_the_builtin_library_has_the_standard_flows(library: FlowLibrary) -> None:
    assert library.ids() == LIBRARY_IDS
    assert [definition.id for definition in library.list()] == LIBRARY_IDS
    assert len(library) == 8
    assert "phq9" in library
    assert FlowLibrary.builtin() is library


def test_every_library_flow_speaks_chinese_and_english(library: FlowLibrary) -> None:
    for definition in library.list():
        assert definition.languages == ("zh", "en")
        assert definition.title.missing(("zh", "en")) == []


@pytest.fixture
def versions() -> FlowLibrary:
    return FlowLibrary([FIXTURES / "versions"], include_builtin=False)


def test_get_gives_the_latest_or_the_pinned_version(versions: FlowLibrary) -> None:
    assert versions.get("demo").version == 2
    assert versions.get("demo", 1).version == 1
    assert [definition.key for definition in versions.list(all_versions=True)] == [("demo", 1), ("demo", 2)]
    assert [definition.key for definition in versions.list()] == [("demo", 2)]


@pytest.mark.parametrize(
    ("flow_id", "version", "message"),
    [("nope", None, "no installed flow nope"), ("demo", 7, "no installed flow demo v7")],
)
def test_unknown_flows_raise_flow_not_found(
    versions: FlowLibrary, flow_id: str, version: int | None, message: str
) -> None:
    with pytest.raises(FlowNotFoundError) as caught:
        versions.get(flow_id, version)
    assert str(caught.value) == message
    assert isinstance(caught.value, KeyError)


def test_a_session_keeps_its_version_after_a_new_one_is_published(tmp_path: Path) -> None:
    shutil.copy(FIXTURES / "versions" / "demo.v1.yaml", tmp_path / "demo.v1.yaml")
    old_library = FlowLibrary([tmp_path], include_builtin=False)
    facts = Facts.build()
    begun = start(old_library.get("demo"), facts, now=NOW)
    assert begun.state["version"] == 1

    shutil.copy(FIXTURES / "versions" / "demo.yaml", tmp_path / "demo.yaml")
    new_library = FlowLibrary([tmp_path], include_builtin=False)
    assert new_library.get("demo").version == 2
    pinned = new_library.get(begun.state["flow_id"], begun.state["version"])
    finished = step(pinned, begun.state, facts, TextInput("是"), now=NOW)
    assert [output.text for output in finished.outputs] == ["旧版结束"]
    with pytest.raises(StateError, match="belongs to demo v1, not demo v2"):
        step(new_library.get("demo"), begun.state, facts, TextInput("是"), now=NOW)
    fresh = start(new_library.get("demo"), facts, now=NOW)
    assert [output.text for output in fresh.outputs] == ["新版开场", "新版问题？"]


def test_a_broken_flow_stops_the_whole_library_from_loading(tmp_path: Path) -> None:
    shutil.copy(FIXTURES / "broken" / "unreachable_node.yaml", tmp_path)
    shutil.copy(FIXTURES / "broken" / "bad_code.yaml", tmp_path)
    with pytest.raises(FlowValidationError) as caught:
        FlowLibrary([tmp_path])
    assert {problem.kind for problem in caught.value.problems} == {"unreachable_node", "bad_code"}


def test_references_must_resolve_inside_the_library(tmp_path: Path) -> None:
    shutil.copy(FIXTURES / "broken" / "unknown_flow.yaml", tmp_path)
    with pytest.raises(FlowValidationError) as caught:
        FlowLibrary([tmp_path])
    assert [problem.reason for problem in caught.value.problems] == [
        "'flow' names the flow 'no_such_flow', not in the library"
    ]


def test_the_same_version_twice_stops_loading(tmp_path: Path) -> None:
    shutil.copy(FIXTURES / "versions" / "demo.yaml", tmp_path / "a.yaml")
    shutil.copy(FIXTURES / "versions" / "demo.yaml", tmp_path / "b.yaml")
    with pytest.raises(FlowValidationError, match="demo v2 is also defined in"):
        FlowLibrary([tmp_path], include_builtin=False)

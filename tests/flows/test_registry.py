"""The flow library: the built-in flows, versions side by side, pinning, a clinic's flows (broken ones left out)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from flows.engine import StateError, TextInput, start, step
from flows.facts import Facts
from flows.registry import LIBRARY_DIR, FlowLibrary, FlowNotFoundError
from tests.flows.helpers import FIXTURES, NOW

LIBRARY_IDS = [
    "diabetes_followup", "gad7", "home_monitoring", "hypertension_followup",
    "intake", "national_diabetes_followup", "national_hypertension_followup", "phq9", "post_checkup",
    "satisfaction", "weight_checkin",
]  # fmt: skip


def test_the_builtin_library_has_the_standard_flows(library: FlowLibrary) -> None:
    assert library.ids() == LIBRARY_IDS
    assert [definition.id for definition in library.list()] == LIBRARY_IDS
    assert len(library) == 11
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


def _clinic_flow(folder: Path, name: str, flow_id: str, version: int, *, source: str = "satisfaction.yaml",
                 replace: dict[str, str] | None = None) -> Path:
    """Write a clinic's flow: a library flow under another id or version (and other words)."""
    text = (LIBRARY_DIR / source).read_text(encoding="utf-8")
    text = re.sub(r"(?m)^id: \w+$", f"id: {flow_id}", text)
    text = re.sub(r"(?m)^version: \d+$", f"version: {version}", text)
    for old, new in (replace or {}).items():
        assert old in text
        text = text.replace(old, new)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_broken_file_is_left_out_with_its_problems_and_the_rest_load(tmp_path: Path) -> None:
    shutil.copy(FIXTURES / "broken" / "unreachable_node.yaml", tmp_path)
    shutil.copy(FIXTURES / "broken" / "bad_code.yaml", tmp_path)
    shutil.copy(FIXTURES / "broken" / "yaml_syntax.yaml", tmp_path)
    good = _clinic_flow(tmp_path, "clinic_survey.yaml", "clinic_survey", 1)
    library = FlowLibrary([tmp_path])
    assert library.ids() == sorted([*LIBRARY_IDS, "clinic_survey"])
    assert library.get("clinic_survey").source == str(good)
    assert {problem.kind for problem in library.problems} == {"unreachable_node", "bad_code", "yaml_syntax"}
    assert {Path(problem.file).name for problem in library.problems} == {
        "unreachable_node.yaml", "bad_code.yaml", "yaml_syntax.yaml"}
    assert "unreachable_node" not in library
    assert "bad_code" not in library


def test_a_flow_naming_a_missing_flow_is_left_out_with_its_own_problem(tmp_path: Path) -> None:
    shutil.copy(FIXTURES / "broken" / "unknown_flow.yaml", tmp_path)
    library = FlowLibrary([tmp_path])
    assert "unknown_flow" not in library
    assert [(problem.node_id, problem.kind, problem.reason) for problem in library.problems] == [
        ("next_flow", "unknown_flow",
         "'flow' names the flow 'no_such_flow', not in the library; this flow is left out too"),
    ]


def test_a_flow_naming_a_left_out_flow_is_left_out_too_and_so_on(tmp_path: Path) -> None:
    # broken_first has a bad template; second starts it; third schedules second. All three go, the library stays.
    _clinic_flow(tmp_path, "broken_first.yaml", "broken_first", 1, replace={"{nps}分（不满意）": "{nsp}分（不满意）"})
    chain = "  - id: done\n    kind: end\n"
    _clinic_flow(tmp_path, "second.yaml", "second", 1,
                 replace={chain: "  - id: go_on\n    kind: start_flow\n    flow: broken_first\n" + chain})
    _clinic_flow(tmp_path, "third.yaml", "third", 1,
                 replace={chain: "  - id: later\n    kind: schedule_followup\n    flow: second\n    in_days: 7\n"
                          + chain})
    library = FlowLibrary([tmp_path])
    assert library.ids() == LIBRARY_IDS
    shown = [(Path(problem.file).name, problem.node_id, problem.kind, problem.reason) for problem in library.problems]
    assert shown == [
        ("broken_first.yaml", "service_recovery", "bad_template",
         "'note' uses {nsp}, but no result or fact has that name"),
        ("second.yaml", "go_on", "unknown_flow",
         "'flow' names the flow 'broken_first', which was left out for its own problems; this flow is left out too"),
        ("third.yaml", "later", "unknown_flow",
         "'flow' names the flow 'second', which was left out for its own problems; this flow is left out too"),
    ]


def test_a_clinic_flow_with_a_higher_version_replaces_the_library_one_for_new_sessions(tmp_path: Path) -> None:
    _clinic_flow(tmp_path, "satisfaction.yaml", "satisfaction", 2,
                 replace={"您好！您有多大可能": "本诊所问您：您有多大可能"})
    library = FlowLibrary([tmp_path])
    assert library.problems == []
    assert library.get("satisfaction").version == 2
    assert library.get("satisfaction", 1).source == str(LIBRARY_DIR / "satisfaction.yaml")
    fresh = start(library.get("satisfaction"), Facts.build(), now=NOW)
    assert fresh.outputs[0].text.startswith("本诊所问您")


def test_a_clinic_flow_with_the_same_version_as_the_library_is_left_out(tmp_path: Path) -> None:
    copy = _clinic_flow(tmp_path, "satisfaction.yaml", "satisfaction", 1, replace={"您好！": "喂！"})
    library = FlowLibrary([tmp_path])
    assert library.get("satisfaction").source == str(LIBRARY_DIR / "satisfaction.yaml")
    assert [(problem.file, problem.kind) for problem in library.problems] == [(str(copy), "duplicate_flow")]
    assert library.problems[0].reason == (
        f"satisfaction v1 is also defined in {LIBRARY_DIR / 'satisfaction.yaml'}; give this one a higher version")


def test_a_flow_writing_an_unknown_profile_field_is_left_out(tmp_path: Path) -> None:
    shutil.copy(FIXTURES / "host" / "unknown_profile_field.yaml", tmp_path)
    library = FlowLibrary([tmp_path], include_builtin=False, profile_fields={"smoker", "sleep_hours"})
    assert "unknown_profile_field" not in library
    assert [(problem.node_id, problem.kind) for problem in library.problems] == [
        ("save_smoking", "unknown_profile_field")]
    # Without the host's list, the field is not checked.
    assert "unknown_profile_field" in FlowLibrary([tmp_path], include_builtin=False)


def test_a_folder_that_does_not_exist_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    library = FlowLibrary([tmp_path / "nope"])
    assert library.ids() == LIBRARY_IDS
    assert [(problem.file, problem.kind) for problem in library.problems] == [
        (str(tmp_path / "nope"), "missing_folder")]


def test_the_builtin_library_has_no_problem(library: FlowLibrary) -> None:
    assert library.problems == []


def test_the_same_version_twice_keeps_the_first(tmp_path: Path) -> None:
    shutil.copy(FIXTURES / "versions" / "demo.yaml", tmp_path / "a.yaml")
    shutil.copy(FIXTURES / "versions" / "demo.yaml", tmp_path / "b.yaml")
    library = FlowLibrary([tmp_path], include_builtin=False)
    assert library.get("demo").source == str(tmp_path / "a.yaml")
    assert [problem.reason for problem in library.problems] == [
        f"demo v2 is also defined in {tmp_path / 'a.yaml'}; give this one a higher version"]

"""Every library flow has an answer script whose runs, in zh and en, take every node and edge of the flow.

The runs go through the pure engine here (fast, exact about events and paths); the channel matrix
(tests/webhooks/test_flow_matrix.py) replays the same runs over each channel and checks the record.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest

from flows.definition import FlowDefinition
from flows.engine import StepResult, TextInput, start, step
from flows.events import (
    FlowError,
    FollowupScheduled,
    ObservationRecorded,
    ProfileFieldSet,
    ResultSaved,
    StaffNotified,
    TagAdded,
    TagRemoved,
)
from flows.facts import Facts
from flows.registry import FlowLibrary
from tests.flows.scripts import SCRIPTS_DIR, Run, all_runs, library_flow_ids, load_script

NOW = datetime(2026, 3, 2, 1, 30, tzinfo=UTC)
LIBRARY = FlowLibrary.builtin()


def play(definition: FlowDefinition, run: Run) -> tuple[list[StepResult], StepResult]:
    """Run the script's answers through the engine; return every step and the last."""
    facts = Facts.build(age=run.age, sex=run.sex, language=run.lang, tags=run.tags, observations=run.observations,
                        profile=run.profile)
    steps = [start(definition, facts, lang=run.lang, now=NOW)]
    for answer in run.answers:
        assert not steps[-1].ended, f"{run.id}: the flow ended before the answer {answer!r}"
        steps.append(step(definition, steps[-1].state, facts, TextInput(answer), now=NOW))
    return steps, steps[-1]


def edges(definition: FlowDefinition) -> set[tuple[str, str]]:
    return {(node.id, successor) for node in definition.nodes.values() for successor in node.successors()}


def taken(steps: list[StepResult]) -> tuple[set[str], set[tuple[str, str]]]:
    nodes: set[str] = set()
    pairs: set[tuple[str, str]] = set()
    for result in steps:
        nodes.update(result.path)
        pairs.update(zip(result.path, result.path[1:], strict=False))
    return nodes, pairs


def outcome(steps: list[StepResult]) -> dict[str, Any]:
    """What the events of a run would write to the record, in the script's terms."""
    events = [event for result in steps for event in result.events]
    results = {event.name: {"value": event.value, "category": event.category}
               for event in events if isinstance(event, ResultSaved)}
    return {
        "results": results,
        "profile": {event.field: event.value for event in events if isinstance(event, ProfileFieldSet)},
        "observations": {event.code: event.value for event in events if isinstance(event, ObservationRecorded)},
        "tasks": Counter(f"{event.priority} {event.reason}" for event in events if isinstance(event, StaffNotified)),
        "tags_added": {event.tag for event in events if isinstance(event, TagAdded)},
        "tags_removed": {event.tag for event in events if isinstance(event, TagRemoved)},
        "followups": {event.flow_id for event in events if isinstance(event, FollowupScheduled)},
        "errors": [event for event in events if isinstance(event, FlowError)],
    }


def check_outcome(run: Run, found: dict[str, Any], end_status: str) -> None:
    """Assert that ``found`` (results, profile, ...) is what ``run`` expects."""
    expect = run.expect
    assert end_status == expect.end, run.id
    for name, wanted in expect.results.items():
        assert name in found["results"], f"{run.id}: no result {name}"
        for key, value in wanted.items():
            assert found["results"][name][key] == value, f"{run.id}: {name}.{key}"
    assert {name: found["profile"].get(name) for name in expect.profile} == expect.profile, run.id
    assert {code: found["observations"].get(code) for code in expect.observations} == expect.observations, run.id
    assert found["tasks"] == Counter(expect.tasks), run.id
    assert found["tags_added"] == set(expect.tags_added), run.id
    assert found["tags_removed"] == set(expect.tags_removed), run.id
    assert found["followups"] == set(expect.followups), run.id


@pytest.mark.parametrize("flow_id", library_flow_ids())
def test_every_library_flow_has_a_script_in_both_languages(flow_id: str) -> None:
    path = SCRIPTS_DIR / f"{flow_id}.yaml"
    assert path.exists(), f"the library flow {flow_id} has no answer script ({path}): a flow cannot ship untested"
    script = load_script(flow_id)
    assert {run.lang for run in script.runs} == {"zh", "en"}


@pytest.mark.parametrize("flow_id", library_flow_ids())
def test_a_flows_runs_take_every_node_and_every_edge(flow_id: str) -> None:
    script = load_script(flow_id)
    definition = LIBRARY.get(flow_id)
    seen_nodes: set[str] = set()
    seen_edges: set[tuple[str, str]] = set()
    for run in script.runs:
        steps, _last = play(definition, run)
        nodes, pairs = taken(steps)
        seen_nodes |= nodes
        seen_edges |= pairs
    excused = script.uncovered
    assert excused <= edges(definition), f"{flow_id}: 'uncovered' names edges the flow does not have"
    assert not excused & seen_edges, f"{flow_id}: 'uncovered' names edges the runs do take"
    assert set(definition.nodes) - seen_nodes == set(), f"{flow_id}: nodes no run reaches"
    assert edges(definition) - seen_edges - excused == set(), f"{flow_id}: edges no run takes"


@pytest.mark.parametrize("run", all_runs(), ids=lambda run: run.id)
def test_a_run_ends_as_its_script_says_and_saves_what_it_expects(run: Run) -> None:
    steps, last = play(LIBRARY.get(run.flow), run)
    assert last.ended, f"{run.id}: still waiting at {last.state['node']} after the last answer"
    found = outcome(steps)
    assert found["errors"] == [], run.id
    check_outcome(run, found, str(last.state["end_status"]))

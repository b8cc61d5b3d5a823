"""The flow language, its validator and its pure engine.

``flows`` imports nothing of ours (an import-linter contract checks it): only the standard library,
PyYAML, simpleeval, and fhir.resources for the FHIR export (imported only by :mod:`flows.fhir`).
It never sends, saves or reads the database: the host (``bot/``) does that with what it returns.

Interface for the packages built on it
--------------------------------------
Definitions and the library::

    flows.definition.load_flow(path_or_yaml_text) -> FlowDefinition     # raises FlowValidationError
    flows.validate.validate_files(paths) -> list[Problem]               # Problem(file, node_id, reason, kind)
    flows.registry.FlowLibrary(directories=(), include_builtin=True, profile_fields=None)
        .problems -> list[Problem]                                     # of the files left out (never raises)
        .get(flow_id, version=None) -> FlowDefinition                  # latest or pinned; FlowNotFoundError
        .list(all_versions=False) -> list[FlowDefinition]
    FlowLibrary.builtin()                                               # flows/library/*.yaml, loaded once

The engine: ``(definition, state, facts, input or timer, now) -> StepResult(state, outputs, events)``::

    flows.engine.start(definition, facts, *, lang=None, now) -> StepResult
    flows.engine.step(definition, state, facts, TextInput(text) | Timer("reminder" | "expiry"), *, now)
    StepResult.state     JSON-serialisable dict; pins flow_id + version; store it as is
    StepResult.outputs   MessageOutput / QuestionOutput, neutral; render them per channel
    StepResult.events    frozen dataclasses with .type and .to_dict() (flows.events.EVENT_TYPES)
    StepResult.status    "waiting" or "ended"

``now`` must be timezone-aware; nothing else gives the time and nothing is random, so the same
inputs give the same result. ``flows.facts.Facts.build(age=, sex=, language=, tags=,
observations=, profile=)`` is what expressions see about the patient.

Rendering::

    flows.render.render(output, "text" | "voice", lang=None) -> RenderedPrompt(text, keypad, gather, record)

FHIR (imports fhir.resources on first use)::

    flows.fhir.to_questionnaire(definition, lang="en") -> Questionnaire
    flows.fhir.to_questionnaire_response(definition, state, subject=None) -> QuestionnaireResponse

How the host applies a step (see docs/flows.md, "For the integrator"): in one transaction write
the new state and apply each event (results, profile fields, observations, tags, staff tasks,
follow-ups, session status); after the commit send the outputs rendered for the channel; schedule
the reminder at ``wait_until`` and the expiry at ``expires_at`` from the ``session_waiting`` event;
after ``session_ended``, start any flow named by a ``flow_started`` event.
"""

from flows.definition import FlowDefinition, load_flow
from flows.engine import StateError, StepResult, TextInput, Timer, start, step
from flows.facts import Facts
from flows.problems import FlowValidationError, Problem
from flows.registry import FlowLibrary, FlowNotFoundError
from flows.render import RenderedPrompt, render
from flows.validate import validate_files

__all__ = [
    "Facts",
    "FlowDefinition",
    "FlowLibrary",
    "FlowNotFoundError",
    "FlowValidationError",
    "Problem",
    "RenderedPrompt",
    "StateError",
    "StepResult",
    "TextInput",
    "Timer",
    "load_flow",
    "render",
    "start",
    "step",
    "validate_files",
]

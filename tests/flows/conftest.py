"""Fixtures of the flow tests: the built-in library and the fixture flows."""

from __future__ import annotations

import pytest

from flows.definition import FlowDefinition
from flows.registry import FlowLibrary
from tests.flows.helpers import fixture_flow


@pytest.fixture(scope="session")
def library() -> FlowLibrary:
    return FlowLibrary.builtin()


@pytest.fixture(scope="session")
def mechanics() -> FlowDefinition:
    return fixture_flow("mechanics")

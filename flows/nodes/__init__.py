"""Node kinds, one module each, registered under their ``kind:`` name in ``NODE_KINDS``."""

from flows.nodes import (  # noqa: F401 - importing registers each kind
    branch,
    compute,
    end,
    flow_links,
    message,
    notify_staff,
    question,
    record_observation,
    set_profile,
    tags,
)
from flows.nodes.base import NODE_KINDS, ActionNode, Node

__all__ = ["NODE_KINDS", "ActionNode", "Node"]

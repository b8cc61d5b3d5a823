"""The dashboard: the staff work queue (the patients of one's care teams) and its acknowledge action."""

from __future__ import annotations

import uuid

from flask import abort, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _

from admin.auth import actor_of, require, signed_in_user
from admin.patients import outside_care_team
from admin.web import blueprint
from care import tasks
from care.care_teams import OutsideCareTeamError, scope_of
from care.errors import ConflictError, NotFoundError
from security.roles import Permission
from web.context import request_session


@blueprint.get("/")
@require(Permission.WORKLIST_WORK)
def dashboard() -> ResponseReturnValue:
    """Show the open work queue of the staff member's care teams, urgent first, with whom each task concerns."""
    user = signed_in_user()
    items = tasks.work_queue(request_session(), actor=actor_of(user), scope=scope_of(user))
    return render_template("admin/dashboard.html", items=items)


@blueprint.post("/tasks/<uuid:task_id>/acknowledge")
@require(Permission.WORKLIST_WORK)
def acknowledge(task_id: uuid.UUID) -> ResponseReturnValue:
    """Take a task in hand, so colleagues see someone is on it."""
    user = signed_in_user()
    # The CSRF token was checked before the view ran (``admin.web.guard``); there is nothing else to parse.
    try:
        tasks.acknowledge_task(request_session(), task_id, user_id=user.id, actor=actor_of(user),
                               scope=scope_of(user))
    except NotFoundError:
        abort(404)
    except OutsideCareTeamError as refusal:
        return outside_care_team(user, refusal, resource_type="staff_task", resource_id=task_id)
    except ConflictError:
        flash(_("This task is already done."), "info")
    else:
        flash(_("Task acknowledged."), "success")
    return redirect(url_for("admin.dashboard"))

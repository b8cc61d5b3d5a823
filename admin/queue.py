"""The dashboard: the staff work queue (the patients of one's care teams) and what staff do with a task:
claim it, close it with the call's outcome and notes, or move its due time."""

from __future__ import annotations

import uuid
from zoneinfo import ZoneInfo

from flask import abort, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_babel import format_datetime
from flask_babel import gettext as _

from admin.auth import actor_of, require, signed_in_user
from admin.forms import CloseTaskForm, RescheduleTaskForm
from admin.patients import outcome_labels, outside_care_team
from admin.web import blueprint
from care import tasks
from care.care_teams import OutsideCareTeamError, scope_of
from care.errors import ConflictError, NotFoundError, ValidationFailedError
from care.followups import NOTES_LIMIT
from security.roles import Permission
from web.context import request_session, service


def close_form() -> CloseTaskForm:
    """The close form with the outcomes in the panel's language."""
    form = CloseTaskForm()
    form.outcome.choices = [("", _("Choose the outcome"))] + list(outcome_labels(tasks.TASK_OUTCOMES).items())
    return form


@blueprint.get("/")
@require(Permission.WORKLIST_WORK)
def dashboard() -> ResponseReturnValue:
    """Show the open work queue of the staff member's care teams, urgent first: whom to call, why, by when."""
    user = signed_in_user()
    items = tasks.work_queue(request_session(), actor=actor_of(user), scope=scope_of(user))
    return render_template("admin/dashboard.html", items=items, close=close_form(), reschedule=RescheduleTaskForm())


@blueprint.post("/tasks/<uuid:task_id>/acknowledge")
@require(Permission.WORKLIST_WORK)
def acknowledge(task_id: uuid.UUID) -> ResponseReturnValue:
    """Claim a task (take it in hand), so colleagues see someone is on it."""
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


@blueprint.post("/tasks/<uuid:task_id>/close")
@require(Permission.WORKLIST_WORK)
def close_task(task_id: uuid.UUID) -> ResponseReturnValue:
    """Close a task with the call's outcome code and notes; it stays on the patient's timeline."""
    user = signed_in_user()
    form = close_form()
    if not form.validate():
        flash(_("The task was not closed: choose an outcome (notes: at most %(count)d characters).",
                count=NOTES_LIMIT), "error")
        return redirect(url_for("admin.dashboard"))
    try:
        tasks.close_task(request_session(), task_id, outcome=form.outcome.data, notes=form.notes.data or None,
                         user_id=user.id, actor=actor_of(user), scope=scope_of(user))
    except NotFoundError:
        abort(404)
    except OutsideCareTeamError as refusal:
        return outside_care_team(user, refusal, resource_type="staff_task", resource_id=task_id)
    except ValidationFailedError:
        flash(_("The task was not closed: choose an outcome (notes: at most %(count)d characters).",
                count=NOTES_LIMIT), "error")
    except ConflictError:
        flash(_("This task is already done."), "info")
    else:
        flash(_("Task closed."), "success")
    return redirect(url_for("admin.dashboard"))


@blueprint.post("/tasks/<uuid:task_id>/reschedule")
@require(Permission.WORKLIST_WORK)
def reschedule_task(task_id: uuid.UUID) -> ResponseReturnValue:
    """Move a task's due time (the patient asked to be called back later), read in the clinic's time zone."""
    user = signed_in_user()
    form = RescheduleTaskForm()
    if not form.validate():
        flash(_("The task was not moved: enter a date and time to call back."), "error")
        return redirect(url_for("admin.dashboard"))
    due = form.due.data.replace(tzinfo=ZoneInfo(service("settings").timezone))
    try:
        tasks.reschedule_task(request_session(), task_id, due_at=due, actor=actor_of(user), scope=scope_of(user))
    except NotFoundError:
        abort(404)
    except OutsideCareTeamError as refusal:
        return outside_care_team(user, refusal, resource_type="staff_task", resource_id=task_id)
    except ValidationFailedError:
        flash(_("The task was not moved: the new time must not be in the past."), "error")
    except ConflictError:
        flash(_("This task is already done."), "info")
    else:
        flash(_("Task moved to %(when)s.", when=format_datetime(due, "short")), "success")
    return redirect(url_for("admin.dashboard"))

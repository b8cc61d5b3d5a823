"""The flows page: the installed flows and their versions, and uploading a flow file as a new version.

The upload is checked whole (``bot.flow_uploads``); a file with problems is refused with each problem
listed by node and line, and nothing is written. A good file is installed beside the others, and new
conversations get it.
"""

from __future__ import annotations

from flask import flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _

from admin.auth import actor_of, require, signed_in_user
from admin.forms import FlowUploadForm
from admin.web import blueprint
from bot.flow_uploads import FlowRefusedError, UploadProblem, install_upload, installed_versions
from security.roles import Permission
from web.context import request_session, service


def _page(form: FlowUploadForm, problems: list[UploadProblem] | None = None) -> str:
    return render_template("admin/flows.html", form=form, flows=installed_versions(service("bot").library),
                           problems=problems)


@blueprint.get("/flows")
@require(Permission.FLOWS_MANAGE)
def flows() -> ResponseReturnValue:
    """List every installed flow version, the latest of each marked, with the upload form."""
    return _page(FlowUploadForm())


@blueprint.post("/flows")
@require(Permission.FLOWS_MANAGE)
def flow_upload() -> ResponseReturnValue:
    """Check an uploaded flow file and install it, or list its problems (422) and change nothing."""
    form = FlowUploadForm()
    if not form.validate():
        return _page(form), 400
    try:
        installed = install_upload(request_session(), service("bot"), content=form.file.data.read(),
                                   folders=service("settings").flows_dirs, actor=actor_of(signed_in_user()))
    except FlowRefusedError as refused:
        return _page(form, refused.problems), 422
    flash(_("Flow %(flow)s version %(version)d is installed. New conversations use it.",
            flow=installed.flow_id, version=installed.version), "success")
    return redirect(url_for("admin.flows"))

"""The auditor's page: the audit trail with filters, a page at a time, and the chain's verification status.

The filters are posted (a patient's card number never rides in a URL); the entries show who did what
to which resource and when, never a value of the record. "Verify now" walks the whole chain when this
process holds the audit key (the demo, a web process given ``CARELOOP_AUDIT_KEY_FILE``); otherwise the
page says to run ``careloop audit verify``.
"""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _

from admin.auth import actor_of, require, signed_in_user
from admin.forms import AuditFilterForm, VerifyChainForm
from admin.web import blueprint
from care import audit_trail
from care.audit_trail import TrailFilter, TrailPage
from care.errors import ValidationFailedError
from security.audit import AuditKeyError
from security.roles import Permission
from web.context import request_session


@blueprint.route("/audit", methods=["GET", "POST"])
@require(Permission.AUDIT_READ)
def audit_trail_page() -> ResponseReturnValue:
    """Show a page of the trail, newest first, narrowed by the posted filters, and the chain's status."""
    db = request_session()
    form = AuditFilterForm() if request.method == "POST" else AuditFilterForm(formdata=None)
    listing = TrailPage([], 0, 1, 1)
    status = 200
    if request.method == "POST" and not form.validate():
        for field in (form.date_from, form.date_to):
            if field.errors:
                field.errors = [_("Enter a day as YYYY-MM-DD.")]
        status = 400
    else:
        filters = TrailFilter(user_email=form.user_email.data or None, patient_ref=form.patient_ref.data or None,
                              action=form.action.data or None, date_from=form.date_from.data,
                              date_to=form.date_to.data)
        try:
            listing = audit_trail.trail_page(db, filters, page=form.page.data or 1,
                                             actor=actor_of(signed_in_user()))
        except ValidationFailedError as refused:
            for problem in refused.problems:
                form[problem.field].errors = [*form[problem.field].errors, _field_message(problem.field)]
            status = 400
    return render_template("admin/audit.html", form=form, listing=listing, verify_form=VerifyChainForm(),
                           chain=audit_trail.chain_status(db)), status


def _field_message(field: str) -> str:
    messages: dict[str, str] = {
        "user_email": _("No staff account has this e-mail."),
        "patient_ref": _("No patient has this card number or id."),
        "action": _("An action is one line of at most 64 characters."),
        "date_to": _("The range ends before it starts."),
    }
    fallback: str = _("Not accepted.")
    return messages.get(field, fallback)


@blueprint.post("/audit/verify")
@require(Permission.AUDIT_READ)
def audit_verify() -> ResponseReturnValue:
    """Verify the whole chain now (audited), and show what was found."""
    form = VerifyChainForm()
    if not form.validate():
        return redirect(url_for("admin.audit_trail_page"))
    try:
        report = audit_trail.verify_now(request_session(), actor=actor_of(signed_in_user()))
    except AuditKeyError:
        flash(_("This server does not hold the audit key, so it cannot verify the chain. "
                "Run `careloop audit verify` where the worker runs."), "error")
        return redirect(url_for("admin.audit_trail_page"))
    if report.ok:
        flash(_("The audit trail is intact: %(sealed)d sealed entries, %(unsealed)d awaiting sealing.",
                sealed=report.sealed, unsealed=report.unsealed), "success")
    else:
        flash(_("The audit trail is BROKEN. First problem: %(problem)s", problem=report.problem or ""), "error")
    return redirect(url_for("admin.audit_trail_page"))

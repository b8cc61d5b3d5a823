"""The tag rules page: the rules, how many patients have each tag now, and adding or editing a rule.

Before saving, staff press Preview: the form is posted and the page shows what the rule would do
now ("would tag N patients"), counted by ``care.tag_rules.preview`` without writing anything. Saving
makes the rule's new version and starts its run over every patient (the worker's ``tag_rule_runs``
job). A bad name, tag or expression is shown at its field and nothing is saved.
"""

from __future__ import annotations

import uuid

from flask import abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _

from admin.auth import actor_of, require, signed_in_user
from admin.forms import TagRuleForm
from admin.web import blueprint
from bot.tag_rules import rule_engine
from care import tag_rules
from care.errors import ConflictError, NotFoundError, ValidationFailedError
from care.models import TagRule
from care.tag_rules import Preview, RuleEngine
from security.roles import Permission
from web.context import request_session, service

#: The form's fields a service problem may name; any other name is shown at the expression.
FORM_FIELDS = ("name", "tag", "expression")


def _engine() -> RuleEngine:
    return rule_engine(service("bot").library)


@blueprint.get("/tag-rules")
@require(Permission.TAGS_MANAGE)
def tag_rules_list() -> ResponseReturnValue:
    """List every rule with its tag, expression, version, latest run and the patients that have its tag now."""
    db = request_session()
    rules = tag_rules.list_rules(db)
    counts = tag_rules.tag_counts(db, {rule.tag for rule in rules})
    return render_template("admin/tag_rules.html", rules=rules, counts=counts)


@blueprint.route("/tag-rules/new", methods=["GET", "POST"])
@require(Permission.TAGS_MANAGE)
def tag_rule_new() -> ResponseReturnValue:
    """Write a new rule: Preview counts what it would do, Save makes version 1 and starts its run."""
    form = TagRuleForm()
    if not form.is_submitted():
        return render_template("admin/tag_rule.html", form=form, rule=None, preview=None)
    valid = form.validate()
    if not _require_fields(form, "name", "tag") or not valid:
        return render_template("admin/tag_rule.html", form=form, rule=None, preview=None), 400
    db = request_session()
    engine = _engine()
    try:
        if not form.save.data:
            found = tag_rules.preview(db, engine, tag=form.tag.data, expression=form.expression.data)
            return render_template("admin/tag_rule.html", form=form, rule=None, preview=found)
        rule, _run = tag_rules.add_rule(db, engine, form.name.data, tag=form.tag.data,
                                        expression=form.expression.data, enabled=bool(form.enabled.data),
                                        actor=actor_of(signed_in_user()))
    except ValidationFailedError as refused:
        _show_problems(form, refused)
        return render_template("admin/tag_rule.html", form=form, rule=None, preview=None), 400
    except ConflictError:
        form.name.errors = [*form.name.errors, _("A rule of this name exists already. Choose another name.")]
        return render_template("admin/tag_rule.html", form=form, rule=None, preview=None), 400
    flash(_("Rule %(name)s saved as version %(version)d. The patients are being evaluated in the background.",
            name=rule.name, version=rule.version), "success")
    return redirect(url_for("admin.tag_rules_list"))


@blueprint.route("/tag-rules/<uuid:rule_id>", methods=["GET", "POST"])
@require(Permission.TAGS_MANAGE)
def tag_rule_edit(rule_id: uuid.UUID) -> ResponseReturnValue:
    """Change a rule's expression or enabled flag: Preview counts what it would do, Save makes a new version."""
    db = request_session()
    try:
        rule = tag_rules.rule_by_id(db, rule_id)
    except NotFoundError:
        abort(404)
    form = TagRuleForm(obj=None if request.method == "POST" else rule)
    if not form.is_submitted():
        return _edit_page(form, rule, None)
    if not form.validate():
        return _edit_page(form, rule, None), 400
    engine = _engine()
    try:
        if not form.save.data:
            return _edit_page(form, rule, tag_rules.preview(db, engine, tag=rule.tag,
                                                            expression=form.expression.data))
        saved, run = tag_rules.edit_rule(db, engine, rule.name, expression=form.expression.data,
                                         enabled=bool(form.enabled.data), actor=actor_of(signed_in_user()))
    except ValidationFailedError as refused:
        _show_problems(form, refused)
        return _edit_page(form, rule, None), 400
    if run is None:
        flash(_("Nothing changed: the rule already reads so."), "info")
    else:
        flash(_("Rule %(name)s saved as version %(version)d. The patients are being evaluated in the background.",
                name=saved.name, version=saved.version), "success")
    return redirect(url_for("admin.tag_rules_list"))


def _edit_page(form: TagRuleForm, rule: TagRule, preview: Preview | None) -> str:
    return render_template("admin/tag_rule.html", form=form, rule=rule, preview=preview)


def _require_fields(form: TagRuleForm, *names: str) -> bool:
    """Mark each of ``names`` left empty (a new rule needs them; an edit keeps the rule's); tell if all are there."""
    complete = True
    for name in names:
        field = form[name]
        if not (field.data or "").strip():
            field.errors = [*field.errors, _("This field is required.")]
            complete = False
    return complete


def _show_problems(form: TagRuleForm, refused: ValidationFailedError) -> None:
    """Show each problem a service found at its field (the reason is the service's, in English)."""
    for problem in refused.problems:
        field = form[problem.field if problem.field in FORM_FIELDS else "expression"]
        field.errors = [*(field.errors or []), _("Not accepted: %(reason)s", reason=problem.reason)]

"""Signing in and out, changing the password, the account page and the language switch."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _

from admin.auth import (
    actor_of,
    current_user,
    landing_url,
    public,
    require,
    safe_next,
    session_token,
    sign_in,
    sign_out,
    signed_in_user,
)
from admin.forms import LanguageForm, LoginForm, PasswordForm
from admin.i18n import LANGUAGE_KEY
from admin.web import blueprint
from care import staff
from care.errors import ValidationFailedError
from security import passwords
from web.context import request_session


@blueprint.route("/login", methods=["GET", "POST"])
@public
def login() -> ResponseReturnValue:
    """Sign in with e-mail, password and a TOTP code (or a recovery code)."""
    form = LoginForm()
    user = current_user()
    if request.method == "GET":
        if user is not None:
            return redirect(safe_next(request.args.get("next")) or landing_url(user))
        form.next.data = safe_next(request.args.get("next")) or ""
        return render_template("admin/login.html", form=form, failed=False)
    if form.validate():
        try:
            user = staff.authenticate(request_session(), email=form.email.data, password=form.password.data,
                                      code=form.code.data, source=request.remote_addr)
        except staff.SignInError:
            pass
        else:
            sign_in(user)
            if user.must_change_password:
                return redirect(url_for("admin.password"))
            return redirect(safe_next(form.next.data) or landing_url(user))
    form.code.data = ""
    # One message for every refusal (unknown e-mail, wrong password, wrong or reused code, locked
    # account), so it never tells which factor failed. The answer is 200, not 4xx, because the
    # unit of work commits only then: the failure count and the audit entry must be kept.
    return render_template("admin/login.html", form=form, failed=True)


@blueprint.post("/logout")
@require(during_password_change=True)
def logout() -> ResponseReturnValue:
    """Sign out (a POST with the CSRF token, so no other site can sign a user out)."""
    sign_out("logout")
    flash(_("You are signed out."), "info")
    return redirect(url_for("admin.login"))


@blueprint.route("/password", methods=["GET", "POST"])
@require(during_password_change=True)
def password() -> ResponseReturnValue:
    """Change the password (forced after the first sign-in with a one-time password)."""
    user = signed_in_user()
    form = PasswordForm()
    if form.validate_on_submit():
        try:
            staff.change_password(request_session(), user, current_password=form.current_password.data,
                                  new_password=form.new_password.data, actor=actor_of(user),
                                  keep_session=session_token())
        except ValidationFailedError as failure:
            for problem in failure.problems:
                field = form.current_password if problem.field == "current_password" else form.new_password
                field.errors = [*field.errors, _problem_message(problem.field, problem.reason)]
        else:
            flash(_("Your password is changed."), "success")
            return redirect(landing_url(user))
    # A refused change is answered 200 so that its audit entry and failure count are committed.
    return render_template("admin/password.html", form=form, first=user.must_change_password)


def _problem_message(field: str, reason: str) -> str:
    """Say a password problem in the user's language (the service's reasons are English)."""
    if field == "current_password":
        return str(_("The current password is not correct."))
    known: dict[str, str] = {
        f"the password must be at least {passwords.MIN_LENGTH} characters":
            _("The password must be at least %(count)d characters long.", count=passwords.MIN_LENGTH),
        "the password must not contain your name or e-mail":
            _("The password must not contain your name or e-mail."),
        "the password repeats too few characters": _("The password needs more different characters."),
        staff.SAME_AS_CURRENT: _("The new password must differ from the current one."),
    }
    return known.get(reason) or str(_("This password cannot be used. Please choose another."))


@blueprint.get("/account")
@require()
def account() -> ResponseReturnValue:
    """Show who is signed in, with which role, and the way to change the password."""
    return render_template("admin/account.html")


@blueprint.post("/language")
@public
def language() -> ResponseReturnValue:
    """Switch the panel's language and return to the page the switch was pressed on."""
    form = LanguageForm()
    if form.validate():
        session[LANGUAGE_KEY] = form.language.data
    user = current_user()
    fallback = landing_url(user) if user is not None else url_for("admin.login")
    return redirect(safe_next(form.next.data) or fallback)

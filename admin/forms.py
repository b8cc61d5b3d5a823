"""The panel's forms; every one carries a CSRF token (Flask-WTF)."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import HiddenField, IntegerField, PasswordField, SelectField, StringField, SubmitField
from wtforms.validators import AnyOf, DataRequired, EqualTo, Length, NumberRange, Optional

from admin.i18n import LANGUAGES

# Long enough for any real password, short enough that argon2 never hashes a megabyte.
MAX_PASSWORD = 256


class LoginForm(FlaskForm):  # type: ignore[misc]  # flask_wtf ships no type information
    email = StringField(_l("E-mail"), validators=[DataRequired(), Length(max=254)])
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=MAX_PASSWORD)])
    code = StringField(_l("6-digit code from your authenticator app, or a recovery code"),
                       validators=[DataRequired(), Length(max=32)])
    next = HiddenField()
    submit = SubmitField(_l("Sign in"))


class PasswordForm(FlaskForm):  # type: ignore[misc]
    current_password = PasswordField(_l("Current password"),
                                     validators=[DataRequired(), Length(max=MAX_PASSWORD)])
    new_password = PasswordField(_l("New password (at least 12 characters)"),
                                 validators=[DataRequired(), Length(max=MAX_PASSWORD)])
    confirm = PasswordField(_l("New password again"), validators=[
        DataRequired(), EqualTo("new_password", message=_l("The two new passwords are not the same.")),
    ])
    submit = SubmitField(_l("Change password"))


class LanguageForm(FlaskForm):  # type: ignore[misc]
    language = StringField(validators=[DataRequired(), AnyOf(LANGUAGES)])
    next = HiddenField()


class PatientSearchForm(FlaskForm):  # type: ignore[misc]
    """The patients list's search and filters.

    The search text (a name, card number or phone number) is PHI, so it is only ever posted (never
    in a URL, which browsers keep and servers log); the tag, plan and page say nothing of one
    patient and may ride in the query string.
    """

    q = StringField(_l("Name, card number or phone"), validators=[Optional(), Length(max=64)])
    tag = StringField(_l("Tag"), validators=[Optional(), Length(max=64)])
    plan = SelectField(_l("Plan"), validators=[Optional()], validate_choice=False)
    page = IntegerField(validators=[Optional(), NumberRange(min=1, max=1_000_000)])
    submit = SubmitField(_l("Find"))

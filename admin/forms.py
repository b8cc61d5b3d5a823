"""The panel's forms; every one carries a CSRF token (Flask-WTF)."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileAllowed, FileField, FileRequired, FileSize
from wtforms import (
    BooleanField,
    DateField,
    DateTimeLocalField,
    HiddenField,
    IntegerField,
    PasswordField,
    SelectField,
    StringField,
    SubmitField,
    TextAreaField,
)
from wtforms.validators import AnyOf, DataRequired, EqualTo, Length, NumberRange, Optional

from admin.i18n import LANGUAGES
from care.followups import NOTES_LIMIT

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


class CloseTaskForm(FlaskForm):  # type: ignore[misc]
    """How a call ended: an outcome code (``care.tasks.TASK_OUTCOMES``; the view fills the choices) and notes."""

    outcome = SelectField(_l("Outcome"), validators=[DataRequired(message=_l("Choose how the task ended."))])
    notes = TextAreaField(_l("Notes"), validators=[Optional(), Length(max=NOTES_LIMIT)])
    submit = SubmitField(_l("Close task"))


class RescheduleTaskForm(FlaskForm):  # type: ignore[misc]
    """A new due time, in the clinic's time zone (a browser's date-and-time field has none)."""

    due = DateTimeLocalField(_l("New due time"), format="%Y-%m-%dT%H:%M",
                             validators=[DataRequired(message=_l("Enter the date and time to call back."))])
    submit = SubmitField(_l("Reschedule"))


class BreakGlassForm(FlaskForm):  # type: ignore[misc]
    """Why a doctor opens a patient outside their care teams (kept for review)."""

    reason = TextAreaField(_l("Why you need this patient's record now"), validators=[
        DataRequired(message=_l("Write the reason.")),
        Length(min=10, max=1000, message=_l("Write the reason in 10 to 1000 characters."))])
    submit = SubmitField(_l("Open the record (break-glass)"))


class TagRuleForm(FlaskForm):  # type: ignore[misc]
    """A tag rule as staff write it; Preview counts the patients it would tag, Save makes the new version.

    A new rule takes a name and a tag; an existing one keeps both (the view shows them) and changes
    its expression or enabled flag.
    """

    name = StringField(_l("Rule name"), validators=[Optional(), Length(max=64)])
    tag = StringField(_l("Tag it sets"), validators=[Optional(), Length(max=64)])
    expression = TextAreaField(_l("When (expression over the patient's facts)"), validators=[
        DataRequired(message=_l("Write the expression.")), Length(max=1000)])
    enabled = BooleanField(_l("Enabled"), default=True)
    preview = SubmitField(_l("Preview"))
    save = SubmitField(_l("Save"))


#: The largest flow file the panel takes (the largest built-in flow is a few tens of kilobytes).
MAX_FLOW_UPLOAD = 256 * 1024


class FlowUploadForm(FlaskForm):  # type: ignore[misc]
    """A flow definition file (YAML) to check and install as a new version."""

    file = FileField(_l("Flow file (.yaml)"), validators=[
        FileRequired(message=_l("Choose a flow file.")),
        FileAllowed(["yaml", "yml"], message=_l("A flow file ends in .yaml or .yml.")),
        FileSize(max_size=MAX_FLOW_UPLOAD, message=_l("A flow file is at most 256 KB.")),
    ])
    submit = SubmitField(_l("Check and install"))


class ExportForm(FlaskForm):  # type: ignore[misc]
    """What to export and how to narrow it (the view fills the kinds and the plans)."""

    kind = SelectField(_l("What to export"), validators=[DataRequired()])
    tag = StringField(_l("Only patients with the tag"), validators=[Optional(), Length(max=64)])
    plan = SelectField(_l("Only patients in the plan"), validators=[Optional()], validate_choice=False)
    date_from = DateField(_l("From (day)"), validators=[Optional()])
    date_to = DateField(_l("To (day)"), validators=[Optional()])
    submit = SubmitField(_l("Make the export"))


class AuditFilterForm(FlaskForm):  # type: ignore[misc]
    """The audit trail's filters; posted, never in a URL (a card number is a patient's identifier)."""

    user_email = StringField(_l("Staff e-mail"), validators=[Optional(), Length(max=254)])
    patient_ref = StringField(_l("Patient card number or id"), validators=[Optional(), Length(max=64)])
    action = StringField(_l("Action (a prefix ending in a dot, such as tag.)"), validators=[Optional(), Length(max=64)])
    date_from = DateField(_l("From (day)"), validators=[Optional()])
    date_to = DateField(_l("To (day)"), validators=[Optional()])
    page = IntegerField(validators=[Optional(), NumberRange(min=1, max=10_000_000)])
    submit = SubmitField(_l("Filter"))


class VerifyChainForm(FlaskForm):  # type: ignore[misc]
    submit = SubmitField(_l("Verify now"))

"""Roles and permissions, as data: which staff role may do what.

The defaults below seed the ``roles`` table; a clinic may adjust a role's permissions there.
Enforcement is by permission name, never by role name, so adjusted roles keep working.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum


class Permission(StrEnum):
    PATIENT_READ = "patient.read"
    PATIENT_WRITE = "patient.write"
    PATIENT_ENROLL = "patient.enroll"
    # Every patient, not only those of the staff member's care teams (administrators, the clinic lead).
    ALL_PATIENTS = "patient.all_teams"
    RECORD_READ = "record.read"
    RECORD_WRITE = "record.write"
    REPORT_PRINT = "report.print"
    RISK_READ = "risk.read"
    SUMMARY_SIGN = "summary.sign"
    CONVERSATION_READ = "conversation.read"
    RECORDING_LISTEN = "recording.listen"
    WORKLIST_WORK = "worklist.work"
    TAGS_MANAGE = "tags.manage"
    PLANS_MANAGE = "plans.manage"
    FLOWS_MANAGE = "flows.manage"
    IMPORT_RUN = "import.run"
    EXPORT_RUN = "export.run"
    AUDIT_READ = "audit.read"
    USERS_MANAGE = "users.manage"
    SETTINGS_MANAGE = "settings.manage"
    KEYS_MANAGE = "keys.manage"
    BREAK_GLASS = "break_glass"
    ERASE = "patient.erase"


@dataclass(frozen=True)
class RoleDefinition:
    name: str
    title_zh: str
    title_en: str
    permissions: frozenset[Permission]


def _role(name: str, zh: str, en: str, permissions: Iterable[Permission]) -> RoleDefinition:
    return RoleDefinition(name, zh, en, frozenset(permissions))


P = Permission
DEFAULT_ROLES: tuple[RoleDefinition, ...] = (
    _role("admin", "系统管理员", "Administrator", Permission),
    _role("doctor", "医生", "Doctor", [
        P.PATIENT_READ, P.PATIENT_WRITE, P.RECORD_READ, P.RECORD_WRITE, P.REPORT_PRINT, P.RISK_READ,
        P.SUMMARY_SIGN, P.CONVERSATION_READ, P.RECORDING_LISTEN, P.WORKLIST_WORK, P.BREAK_GLASS,
    ]),
    _role("health_manager", "健康管理师", "Health manager", [
        P.PATIENT_READ, P.PATIENT_WRITE, P.RECORD_READ, P.RECORD_WRITE, P.REPORT_PRINT, P.RISK_READ,
        P.CONVERSATION_READ, P.RECORDING_LISTEN, P.WORKLIST_WORK, P.TAGS_MANAGE, P.PLANS_MANAGE,
        P.FLOWS_MANAGE, P.IMPORT_RUN, P.EXPORT_RUN,
    ]),
    _role("nurse", "护士/随访员", "Nurse / caller", [
        P.PATIENT_READ, P.RECORD_READ, P.CONVERSATION_READ, P.RECORDING_LISTEN, P.WORKLIST_WORK,
    ]),
    # Leads the clinic's care: the clinical work of doctors and health managers, for every patient.
    _role("clinic_lead", "诊所负责人", "Clinic lead", [
        P.ALL_PATIENTS, P.PATIENT_READ, P.PATIENT_WRITE, P.PATIENT_ENROLL, P.RECORD_READ, P.RECORD_WRITE,
        P.REPORT_PRINT, P.RISK_READ, P.SUMMARY_SIGN, P.CONVERSATION_READ, P.RECORDING_LISTEN, P.WORKLIST_WORK,
        P.TAGS_MANAGE, P.PLANS_MANAGE, P.FLOWS_MANAGE, P.IMPORT_RUN, P.EXPORT_RUN, P.BREAK_GLASS,
    ]),
    _role("front_desk", "前台", "Front desk", [P.PATIENT_READ, P.PATIENT_ENROLL, P.IMPORT_RUN]),
    _role("auditor", "审计员", "Auditor", [P.AUDIT_READ]),
)

ROLE_NAMES = tuple(role.name for role in DEFAULT_ROLES)


def default_role(name: str) -> RoleDefinition:
    for role in DEFAULT_ROLES:
        if role.name == name:
            return role
    raise KeyError(f"unknown role {name!r}; roles are {', '.join(ROLE_NAMES)}")


def parse_permissions(names: Iterable[str]) -> frozenset[Permission]:
    """Turn stored permission names into permissions, ignoring names no longer known."""
    known = {permission.value for permission in Permission}
    return frozenset(Permission(name) for name in names if name in known)

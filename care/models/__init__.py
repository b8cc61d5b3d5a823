"""The record's SQLAlchemy models (importing this registers every table on the shared metadata)."""

from care.models.api_keys import SourceApiKey
from care.models.base import Base, Timestamped
from care.models.care_team import BreakGlassGrant, CareTeam, CareTeamMember, CareTeamPatient
from care.models.clinical import (
    AdviceOverride,
    CheckupReport,
    CodeMapping,
    RiskAssessment,
    StageSummaryRecord,
    TagReevaluation,
)
from care.models.consent import AppendOnlyError, ConsentEntry, ConsentPurpose, ConsentSource
from care.models.engagement import (
    FOLLOWUP_FINAL,
    FlowResult,
    FollowUp,
    FollowUpStatus,
    PatientTag,
    Recording,
    StaffTask,
    TaskPriority,
    TaskStatus,
)
from care.models.erasure import Erasure, LegalHold
from care.models.exports import ExportJob, ExportStatus
from care.models.interventions import (
    InterventionEnrolment,
    InterventionProgram,
    InterventionProgramVersion,
    InterventionStatus,
)
from care.models.observation import Observation
from care.models.patient import (
    PROFILE_SECTIONS,
    Card,
    CardStatus,
    Channel,
    ChannelConsent,
    HealthProfile,
    Patient,
    PatientStatus,
)
from care.models.plans import EnrolmentStatus, Plan, PlanEnrolment, PlanVersion
from care.models.staff import Role, StaffSession, User
from care.models.tags import RunStatus, TagDefinition, TagRule, TagRuleRun, TagRuleVersion
from security.audit import AuditChainHead, AuditEntry
from security.crypto import DataKey

__all__ = [
    "Erasure",
    "LegalHold",
    "ExportJob",
    "ExportStatus",
    "FOLLOWUP_FINAL",
    "EnrolmentStatus",
    "Plan",
    "PlanEnrolment",
    "PlanVersion",
    "PROFILE_SECTIONS",
    "AdviceOverride",
    "AppendOnlyError",
    "AuditChainHead",
    "AuditEntry",
    "Base",
    "BreakGlassGrant",
    "Card",
    "CareTeam",
    "CareTeamMember",
    "CareTeamPatient",
    "CardStatus",
    "Channel",
    "ChannelConsent",
    "ConsentEntry",
    "ConsentPurpose",
    "ConsentSource",
    "CheckupReport",
    "CodeMapping",
    "DataKey",
    "FlowResult",
    "FollowUp",
    "FollowUpStatus",
    "PatientTag",
    "Recording",
    "RiskAssessment",
    "SourceApiKey",
    "StageSummaryRecord",
    "TagReevaluation",
    "StaffTask",
    "TaskPriority",
    "TaskStatus",
    "HealthProfile",
    "InterventionEnrolment",
    "InterventionProgram",
    "InterventionProgramVersion",
    "InterventionStatus",
    "Observation",
    "Patient",
    "PatientStatus",
    "Role",
    "RunStatus",
    "TagDefinition",
    "TagRule",
    "TagRuleRun",
    "TagRuleVersion",
    "Timestamped",
    "StaffSession",
    "User",
]

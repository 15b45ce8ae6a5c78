"""The data model of the whole product."""
from app.models.alerts import (
    ALERT_KINDS,
    INCIDENT_STATES,
    AlertChannel,
    AlertDelivery,
    AlertIncident,
    AlertMute,
    AlertObservation,
    AlertRule,
    MaintenanceWindow,
)
from app.models.bulk import BULK_ACTIONS, BULK_ITEM_STATES, BULK_STATES, BulkItem, BulkOperation
from app.models.cluster import (DEFAULT_CLUSTER, DEFAULT_CLUSTER_ID, Cluster, UnknownCluster, cluster_id_of, qualified,
                                current_cluster_id, current_cluster_name)
from app.models.container import (
    EVENT_TYPES,
    LIFECYCLES,
    OPERATION_STATES,
    Container,
    Credential,
    Event,
    Operation,
    Service,
    WizardDraft,
)
from app.models.template import (
    FILE_POLICIES,
    PACKAGE_MANAGERS,
    SERVICE_SCHEMES,
    ContainerTemplate,
    PackageBucket,
    TemplateFile,
    TemplatePackage,
    TemplateScript,
    TemplateService,
    template_buckets,
)
from app.models.types import UTCDateTime, one_of, utcnow
from app.models.user import AUDIT_CHANNELS, AUDIT_OUTCOMES, ROLES, THEMES, ApiToken, AuditEntry, Passkey, RecoveryCode, User

__all__ = [
    "DEFAULT_CLUSTER",
    "DEFAULT_CLUSTER_ID",
    "UnknownCluster",
    "qualified",
    "Cluster",
    "cluster_id_of",
    "current_cluster_id",
    "current_cluster_name",
    "ALERT_KINDS", "INCIDENT_STATES", "AlertChannel", "AlertDelivery", "AlertIncident", "AlertMute", "AlertRule",
    "AlertObservation", "MaintenanceWindow",
    "BULK_ACTIONS", "BULK_ITEM_STATES", "BULK_STATES", "BulkItem", "BulkOperation",
    "EVENT_TYPES", "LIFECYCLES", "OPERATION_STATES", "FILE_POLICIES", "PACKAGE_MANAGERS", "SERVICE_SCHEMES",
    "Container", "Credential", "Event", "Operation", "Service", "WizardDraft",
    "ContainerTemplate", "PackageBucket", "TemplateFile", "TemplatePackage", "TemplateScript",
    "TemplateService", "template_buckets", "THEMES", "User", "ROLES", "AUDIT_OUTCOMES", "AUDIT_CHANNELS",
    "ApiToken", "AuditEntry", "Passkey", "RecoveryCode", "UTCDateTime", "one_of", "utcnow",
]

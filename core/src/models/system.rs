//! Audit trail, background-job tracking and system configuration.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{AuditAction, JobStatus, JobType};

/// `audit_logs`: one recorded change or action (partitioned by month on `timestamp`).
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct AuditLog {
    pub id: Uuid,
    /// The acting user; `None` for system actions.
    pub user_id: Option<Uuid>,
    /// The user whose data was touched.
    pub owner_user_id: Option<Uuid>,
    pub action: AuditAction,
    pub resource_type: String,
    pub resource_id: Option<Uuid>,
    pub old_values: Option<serde_json::Value>,
    pub new_values: Option<serde_json::Value>,
    #[serde(serialize_with = "serialize_ip")]
    pub ip_address: Option<sqlx::types::ipnet::IpNet>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    pub timestamp: DateTime<Utc>,
}

/// `data_processing_jobs`: a user-visible background job and its progress.
#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow)]
pub struct DataProcessingJob {
    pub id: Uuid,
    pub user_id: Uuid,
    pub job_type: JobType,
    pub status: JobStatus,
    /// 0–100, never decreasing.
    pub progress: i16,
    pub input_data: serde_json::Value,
    pub output_data: serde_json::Value,
    pub error_message: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// `system_configuration`: one system-wide setting.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct SystemConfiguration {
    pub id: Uuid,
    pub config_key: String,
    pub config_value: serde_json::Value,
    pub description: Option<String>,
    pub is_sensitive: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// IP networks as text ("203.0.113.7/32"); ipnet's serde support is not enabled through sqlx.
fn serialize_ip<S: serde::Serializer>(
    ip: &Option<sqlx::types::ipnet::IpNet>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match ip {
        Some(ip) => s.collect_str(ip),
        None => s.serialize_none(),
    }
}

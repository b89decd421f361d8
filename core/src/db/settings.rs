//! The operational settings recorded in `system_configuration` that processes read at
//! start-up. Each has an environment variable (or flag) that wins over the recorded value, and a
//! built-in default for a key that is missing or malformed (logged, never fatal): see
//! docs/OPERATIONS.md for the table. The retention keys are read by `db::maintenance`.

use sqlx::PgExecutor;

use crate::format::MediaFormat;

/// What the database records; `None` where a key is missing or malformed.
#[derive(Debug, Clone, Default)]
pub struct Recorded {
    /// `upload.max_file_bytes`.
    pub max_file_bytes: Option<u64>,
    /// `upload.max_request_bytes`.
    pub max_request_bytes: Option<u64>,
    /// `upload.allowed_types`: the formats accepted (MIME types in the record).
    pub allowed_types: Option<Vec<MediaFormat>>,
    /// `media.max_pixels`.
    pub max_pixels: Option<u64>,
    /// `jobs.max_attempts`.
    pub max_attempts: Option<u32>,
    /// `geocoding.max_distance_km`.
    pub geocoding_max_distance_km: Option<f64>,
    /// `upload.user_quota_bytes`: what one account may store.
    pub user_quota_bytes: Option<u64>,
}

/// Reads the recorded settings.
pub async fn recorded(db: impl PgExecutor<'_>) -> Result<Recorded, sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT config_key, config_value FROM system_configuration
           WHERE config_key IN ('upload.max_file_bytes', 'upload.max_request_bytes',
                                'upload.allowed_types', 'media.max_pixels', 'jobs.max_attempts',
                                'geocoding.max_distance_km', 'upload.user_quota_bytes')"#
    )
    .fetch_all(db)
    .await?;
    let mut out = Recorded::default();
    for row in rows {
        let v = &row.config_value;
        let positive = v.as_u64().filter(|n| *n > 0);
        let ok = match row.config_key.as_str() {
            "upload.max_file_bytes" => positive.map(|n| out.max_file_bytes = Some(n)),
            "upload.max_request_bytes" => positive.map(|n| out.max_request_bytes = Some(n)),
            "media.max_pixels" => positive.map(|n| out.max_pixels = Some(n)),
            "upload.user_quota_bytes" => positive.map(|n| out.user_quota_bytes = Some(n)),
            "jobs.max_attempts" => positive
                .and_then(|n| u32::try_from(n).ok())
                .map(|n| out.max_attempts = Some(n)),
            "geocoding.max_distance_km" => v
                .as_f64()
                .filter(|km| km.is_finite() && *km >= 0.0)
                .map(|km| out.geocoding_max_distance_km = Some(km)),
            "upload.allowed_types" => allowed_types(v).map(|t| out.allowed_types = Some(t)),
            _ => Some(()),
        };
        if ok.is_none() {
            tracing::warn!(key = %row.config_key, value = %v, "malformed setting in system_configuration; using the default");
        }
    }
    Ok(out)
}

/// A JSON array of MIME types (aliases accepted) → the formats; `None` if any entry is unknown.
fn allowed_types(v: &serde_json::Value) -> Option<Vec<MediaFormat>> {
    v.as_array()?
        .iter()
        .map(|m| m.as_str().and_then(MediaFormat::from_mime))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_types_take_aliases_and_refuse_unknown_entries() {
        let v = serde_json::json!(["image/jpeg", "image/jpg", "video/mp4"]);
        assert_eq!(allowed_types(&v).map(|t| t.len()), Some(3));
        assert!(allowed_types(&serde_json::json!(["image/jpeg", "text/html"])).is_none());
        assert!(allowed_types(&serde_json::json!("image/jpeg")).is_none());
    }
}

//! Media files.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::{ProcessingStatus, TakenAtSource};

/// `media_files`: one uploaded photo or video and what processing learned about it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct MediaFile {
    pub id: Uuid,
    pub user_id: Uuid,
    pub filename: String,
    /// Object-store key; internal, never a client-chosen path.
    #[serde(skip)]
    pub file_path: String,
    pub file_size: i64,
    pub mime_type: String,
    pub width: Option<i32>,
    pub height: Option<i32>,
    pub duration: Option<f64>,
    pub file_hash: Option<String>,
    #[serde(skip)]
    pub thumbnail_path: Option<String>,
    #[serde(skip)]
    pub preview_path: Option<String>,
    pub processing_status: ProcessingStatus,
    pub error_message: Option<String>,
    pub duplicate_of: Option<Uuid>,
    pub metadata: serde_json::Value,
    pub location_id: Option<Uuid>,
    pub taken_at: Option<DateTime<Utc>>,
    pub taken_at_offset_minutes: Option<i16>,
    pub taken_at_source: Option<TakenAtSource>,
    pub orientation: Option<i16>,
    pub camera_make: Option<String>,
    pub camera_model: Option<String>,
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub timeline_at: DateTime<Utc>,
}

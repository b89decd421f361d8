//! JSON shapes of the contract (`../shared/API.md`), built from database rows.

use chrono::{DateTime, FixedOffset, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::media::MediaDetail;
use crate::models::system::DataProcessingJob;

/// `taken_at` as the photo's own local time: with its UTC offset when known
/// ("2021-07-04T18:22:11+02:00"), else the bare wall-clock time ("2021-07-04T18:22:11").
pub fn taken_at(m: &MediaDetail) -> Value {
    let Some(at) = m.taken_at else {
        return Value::Null;
    };
    match m
        .taken_at_offset_minutes
        .and_then(|o| FixedOffset::east_opt(i32::from(o) * 60))
    {
        Some(offset) => json!(
            at.with_timezone(&offset)
                .to_rfc3339_opts(SecondsFormat::AutoSi, false)
        ),
        // A container's UTC instant with no zone to show it in: say it is UTC.
        None if m.taken_at_source.as_deref() == Some("container_utc") => {
            json!(at.to_rfc3339_opts(SecondsFormat::AutoSi, true))
        }
        None => json!(at.naive_utc().format("%Y-%m-%dT%H:%M:%S").to_string()),
    }
}

/// A step waiting out its backoff before another attempt.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RetryView {
    pub step: String,
    /// Attempts made so far.
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
}

/// `retry` of a media view: the step waiting out its backoff, if any.
pub fn retry(r: Option<&crate::db::queue::PendingRetry>) -> Option<RetryView> {
    r.map(|r| RetryView {
        step: r.step.clone(),
        attempts: r.attempts,
        next_attempt_at: r.next_attempt_at,
        last_error: r.last_error.clone(),
    })
}

/// Where a file was taken (`null` without GPS).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LocationView {
    pub id: Uuid,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub accuracy: Option<f64>,
    pub country: Option<String>,
    pub country_code: Option<String>,
    pub state_province: Option<String>,
    pub city: Option<String>,
    pub timezone: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CameraView {
    pub make: Option<String>,
    pub model: Option<String>,
}

/// Links to the renditions.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ThumbnailLinks {
    pub thumb: String,
    pub preview: String,
}

/// The clip of a Live or Motion Photo.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MotionView {
    pub media_id: Uuid,
    pub duration_ms: Option<i64>,
}

/// The media object of `GET /v1/media/{id}` (and of list items).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MediaView {
    pub id: Uuid,
    /// `image`, `video` or `audio`.
    pub kind: String,
    pub filename: String,
    pub mime_type: String,
    pub file_size: i64,
    /// Whole milliseconds; `null` for photos.
    pub duration_ms: Option<i64>,
    pub motion: Option<MotionView>,
    /// The still this clip belongs to (Live / Motion Photos).
    pub motion_of: Option<Uuid>,
    /// SHA-256, hex.
    pub file_hash: Option<String>,
    /// As displayed (after orientation).
    pub width: Option<i32>,
    pub height: Option<i32>,
    pub orientation: Option<i16>,
    /// Local time with its UTC offset when known, else the bare wall-clock time.
    pub taken_at: Option<String>,
    pub taken_at_source: Option<String>,
    pub camera: Option<CameraView>,
    pub location: Option<LocationView>,
    /// `pending`, `processing`, `completed`, `failed` or `duplicate`.
    pub processing_status: String,
    pub error_message: Option<String>,
    pub attempts: i32,
    pub duplicate_of: Option<Uuid>,
    pub thumbnails: Option<ThumbnailLinks>,
    /// What the steps read (EXIF, container tags, rendition sizes).
    pub metadata: Value,
    pub created_at: DateTime<Utc>,
    /// The step waiting out its backoff, while one does.
    pub retry: Option<RetryView>,
}

/// Builds the media view of a row (without its pending retry).
pub fn media(m: &MediaDetail) -> MediaView {
    let location = m.location_id.map(|id| LocationView {
        id,
        latitude: m.latitude,
        longitude: m.longitude,
        accuracy: m.accuracy,
        country: m.country.clone(),
        country_code: m.country_code.clone(),
        state_province: m.state_province.clone(),
        city: m.city.clone(),
        timezone: m.timezone.clone(),
    });
    let camera = (m.camera_make.is_some() || m.camera_model.is_some()).then(|| CameraView {
        make: m.camera_make.clone(),
        model: m.camera_model.clone(),
    });
    let thumbnails = m.has_thumbnails.then(|| ThumbnailLinks {
        thumb: format!("/v1/media/{}/thumbnails/thumb", m.id),
        preview: format!("/v1/media/{}/thumbnails/preview", m.id),
    });
    let motion = m.motion_id.map(|id| MotionView {
        media_id: id,
        duration_ms: m.motion_duration.map(seconds_to_ms),
    });
    MediaView {
        id: m.id,
        kind: m.kind.clone(),
        filename: m.filename.clone(),
        mime_type: m.mime_type.clone(),
        file_size: m.file_size,
        duration_ms: m.duration.map(seconds_to_ms),
        motion,
        motion_of: m.motion_of,
        file_hash: m.file_hash.clone(),
        width: m.width,
        height: m.height,
        orientation: m.orientation,
        taken_at: taken_at(m).as_str().map(str::to_owned),
        taken_at_source: m.taken_at_source.clone(),
        camera,
        location,
        processing_status: m.processing_status.as_str().to_owned(),
        error_message: m.error_message.clone(),
        attempts: m.attempts,
        duplicate_of: m.duplicate_of,
        thumbnails,
        metadata: m.metadata.clone(),
        created_at: m.created_at,
        retry: None,
    }
}

/// A page of `GET /v1/media`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MediaPage {
    pub items: Vec<MediaView>,
    /// Pass as `cursor` for the next page; `null` on the last.
    pub next_cursor: Option<String>,
}

/// A collection (an album).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CollectionView {
    pub id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub media_count: i64,
    /// The chosen cover, else the newest media file in it; `null` when empty.
    pub cover: Option<CollectionCover>,
}

/// A collection's cover: a media file and its thumbnail.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CollectionCover {
    pub media_id: Uuid,
    /// `GET` this for the 250 px thumbnail.
    pub thumbnail: String,
}

/// A page of `GET /v1/collections`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CollectionPage {
    pub items: Vec<CollectionView>,
    /// Pass as `cursor` for the next page; `null` on the last.
    pub next_cursor: Option<String>,
}

/// Stored seconds → the contract's whole milliseconds.
fn seconds_to_ms(s: f64) -> i64 {
    (s * 1000.0).round() as i64
}

/// Most failures listed in a job's `output_data.errors` (all of them: `GET /v1/media?status=failed`).
pub const JOB_ERRORS_SHOWN: i64 = 100;

/// The job object of `GET /v1/jobs/{id}`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JobView {
    pub id: Uuid,
    /// `media_ingest` or `media_reprocess`.
    pub job_type: String,
    /// `pending`, `running`, `completed`, `failed` or `cancelled`.
    pub status: String,
    /// 0–100, never going down.
    pub progress: i16,
    pub input_data: Value,
    /// `completed`, `failed`, `duplicate`, `total` and the first 100 failures (`errors`).
    pub output_data: Value,
    pub error_message: Option<String>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
}

/// The job object, with its first failures (`output_data.errors`, in upload order).
pub fn job(j: &DataProcessingJob, errors: &[crate::db::jobs::JobError]) -> JobView {
    let mut output = j.output_data.clone();
    if let Value::Object(o) = &mut output {
        o.insert("errors".into(), json!(errors));
    }
    JobView {
        id: j.id,
        job_type: j.job_type.as_str().to_owned(),
        status: j.status.as_str().to_owned(),
        progress: j.progress,
        input_data: j.input_data.clone(),
        output_data: output,
        error_message: j.error_message.clone(),
        created_at: j.created_at,
        started_at: j.started_at,
        completed_at: j.completed_at,
    }
}

/// The job as an upload's answer names it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JobSummary {
    pub id: Uuid,
    pub job_type: String,
    pub status: String,
    pub progress: i16,
}

/// A file an upload accepted.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AcceptedMedia {
    pub id: Uuid,
    pub filename: String,
    /// Always `pending` here.
    pub processing_status: String,
}

/// `202` of `POST /v1/media`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UploadAccepted {
    pub job: JobSummary,
    pub media: Vec<AcceptedMedia>,
}

/// `202` of `DELETE /v1/account`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErasureAccepted {
    pub job: JobView,
}

/// An export (`GET /v1/exports/{id}`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ExportView {
    pub id: Uuid,
    /// `pending`, `running`, `completed`, `failed` or `expired`.
    pub status: String,
    /// The archive's size in bytes, once written.
    pub size: Option<i64>,
    /// When the archive is deleted.
    pub expires_at: Option<DateTime<Utc>>,
    /// Where to download it (with `Range`), once written.
    pub download: Option<String>,
    /// Media files written so far, of how many.
    pub files_done: i32,
    pub files_total: i32,
    /// Why the last run stopped, or why it failed.
    pub error: Option<String>,
    /// The export's job (`GET /v1/jobs/{id}`).
    pub job_id: Uuid,
    pub created_at: DateTime<Utc>,
}

/// The export object.
pub fn export(e: &crate::db::exports::ExportRow) -> ExportView {
    ExportView {
        id: e.id,
        status: e.status.clone(),
        size: e.size,
        expires_at: e.expires_at,
        download: (e.status == "completed").then(|| format!("/v1/exports/{}/archive", e.id)),
        files_done: e.files_done,
        files_total: e.files_total,
        error: e.error_message.clone(),
        job_id: e.job_id,
        created_at: e.created_at,
    }
}

/// `202` of `POST /v1/imports`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ImportAccepted {
    pub job: JobView,
}

/// `202` of `POST /v1/exports`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ExportAccepted {
    pub export: ExportView,
    pub job: JobView,
}

/// `202` of `POST /v1/media/{id}/retry`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RetryAccepted {
    pub job: JobView,
}

/// An error (`application/problem+json`, RFC 9457).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// A stable URI naming the kind of problem.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
}

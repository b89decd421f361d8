//! JSON shapes of the contract (`../shared/API.md`), built from database rows.

use chrono::{FixedOffset, SecondsFormat};
use serde_json::{Value, json};

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

/// `retry` of a media view: the step waiting out its backoff, if any.
pub fn retry(r: Option<&crate::db::queue::PendingRetry>) -> Value {
    r.map_or(Value::Null, |r| {
        json!({ "step": r.step, "attempts": r.attempts, "next_attempt_at": r.next_attempt_at,
                "last_error": r.last_error })
    })
}

/// The media object of `GET /v1/media/{id}` (and of list items).
pub fn media(m: &MediaDetail) -> Value {
    let location = m.location_id.map(|id| {
        json!({
            "id": id, "latitude": m.latitude, "longitude": m.longitude, "accuracy": m.accuracy,
            "country": m.country, "country_code": m.country_code, "state_province": m.state_province,
            "city": m.city, "timezone": m.timezone,
        })
    });
    let camera = (m.camera_make.is_some() || m.camera_model.is_some())
        .then(|| json!({ "make": m.camera_make, "model": m.camera_model }));
    let thumbnails = m.has_thumbnails.then(|| {
        json!({
            "thumb": format!("/v1/media/{}/thumbnails/thumb", m.id),
            "preview": format!("/v1/media/{}/thumbnails/preview", m.id),
        })
    });
    let motion = m
        .motion_id
        .map(|id| json!({ "media_id": id, "duration_ms": m.motion_duration.map(seconds_to_ms) }));
    json!({
        "id": m.id, "kind": m.kind, "filename": m.filename, "mime_type": m.mime_type, "file_size": m.file_size,
        "duration_ms": m.duration.map(seconds_to_ms), "motion": motion, "motion_of": m.motion_of,
        "file_hash": m.file_hash, "width": m.width, "height": m.height, "orientation": m.orientation,
        "taken_at": taken_at(m), "taken_at_source": m.taken_at_source,
        "camera": camera, "location": location,
        "processing_status": m.processing_status, "error_message": m.error_message,
        "attempts": m.attempts, "duplicate_of": m.duplicate_of, "thumbnails": thumbnails,
        "metadata": m.metadata, "created_at": m.created_at,
    })
}

/// Stored seconds → the contract's whole milliseconds.
fn seconds_to_ms(s: f64) -> i64 {
    (s * 1000.0).round() as i64
}

/// Most failures listed in a job's `output_data.errors` (all of them: `GET /v1/media?status=failed`).
pub const JOB_ERRORS_SHOWN: i64 = 100;

/// The job object of `GET /v1/jobs/{id}`, with its first failures (`errors`, in upload order).
pub fn job(j: &DataProcessingJob, errors: &[crate::db::jobs::JobError]) -> Value {
    let mut output = j.output_data.clone();
    if let Value::Object(o) = &mut output {
        o.insert("errors".into(), json!(errors));
    }
    json!({
        "id": j.id, "job_type": j.job_type, "status": j.status, "progress": j.progress,
        "input_data": j.input_data, "output_data": output, "error_message": j.error_message,
        "created_at": j.created_at, "started_at": j.started_at, "completed_at": j.completed_at,
    })
}

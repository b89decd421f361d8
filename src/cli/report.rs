//! Human-readable lines for operators.

use chrono::FixedOffset;

use crate::db::report::JobMediaRow;

/// "IMG.jpg  image  completed  2021-07-04T18:22:11+02:00  Paris, France  4032x3024  thumb 333x250
/// preview 1920x1440" (videos and audio add their duration).
pub fn photo_line(r: &JobMediaRow) -> String {
    let taken = match (
        r.taken_at,
        r.taken_at_offset_minutes
            .and_then(|m| FixedOffset::east_opt(i32::from(m) * 60)),
    ) {
        (Some(t), Some(off)) => t.with_timezone(&off).to_rfc3339(),
        (Some(t), None) if r.taken_at_source.as_deref() == Some("container_utc") => {
            t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        }
        (Some(t), None) => format!("{} (local time)", t.naive_utc()),
        (None, _) => "no date".to_owned(),
    };
    let place = match (&r.city, &r.country) {
        (Some(c), Some(k)) => format!("{c}, {k}"),
        (Some(c), None) => c.clone(),
        (None, Some(k)) => k.clone(),
        (None, None) => "no place".to_owned(),
    };
    let size = |v: Option<&serde_json::Value>| {
        v.map(|s| format!("{}x{}", s["width"], s["height"]))
            .unwrap_or_else(|| "-".into())
    };
    let thumbs = r.thumbnails.as_ref();
    let mut dims = match (r.width, r.height) {
        (Some(w), Some(h)) => format!("{w}x{h}"),
        _ => "-".into(),
    };
    if let Some(d) = r.duration {
        dims.push_str(&format!(" {d:.1}s"));
    }
    let mut line = format!(
        "{:<36} {:<5} {:<10} {:<27} {:<28} {:>11}  thumb {} preview {}",
        r.filename.chars().take(36).collect::<String>(),
        r.kind,
        r.processing_status,
        taken,
        place.chars().take(28).collect::<String>(),
        dims,
        size(thumbs.and_then(|t| t.get("thumb"))),
        size(thumbs.and_then(|t| t.get("preview")))
    );
    if let Some(e) = &r.error_message {
        line.push_str(&format!("  ({e})"));
    }
    line
}

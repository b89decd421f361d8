//! The `video` step, for videos and audio: our own check of an ISO-BMFF container's structure
//! and capture facts (dates with their offsets, GPS, Live Photo identifier), ffprobe's streams
//! (duration, display size after rotation, codecs, frame rate, bitrate), a poster frame that is
//! not black (or an audio waveform) rendered to the same `thumb`/`preview` as photos, the GPS
//! fix as a `locations` row, and Live Photo pairing. The original is read in place for a
//! `file://` store, else from a spooled copy; it is never held in memory.

use std::path::Path;

use chrono::Utc;
use serde_json::{Value, json};
use timeline_core::db::{
    self,
    pipeline::{MediaState, NewLocation, VideoUpdate},
};
use timeline_core::jobs::{MediaTask, Step};
use timeline_core::storage::{Rendition, Storage};
use timeline_media::exif::GpsFix;
use timeline_media::ffmpeg::{self, AvError};
use timeline_media::probe::{ContainerDate, StreamFacts};
use timeline_media::video::{ContainerError, bmff, iso6709};
use timeline_media::{Kind, MediaFormat, taken_at};

use crate::context::Context;
use crate::step::{self, StepError};

/// Runs the step for one media file.
pub async fn run(ctx: &Context, task: MediaTask, attempt: i32) -> Result<(), StepError> {
    let Some(media) = step::begin(ctx, task).await? else {
        return Ok(());
    };
    let format = MediaFormat::from_mime(&media.mime_type)
        .filter(|f| f.kind() != Kind::Image)
        .ok_or_else(|| {
            StepError::Permanent(format!("not a video or audio file: {}", media.mime_type))
        })?;
    let key = Storage::key(media.user_id, media.id, Rendition::Original);
    let local = ctx.storage.local_copy(&key, &ctx.spool_dir).await?;
    let movie = if format.is_iso_bmff() {
        Some(read_movie(ctx, local.path()).await?)
    } else {
        None
    };
    let facts = ffmpeg::probe(local.path(), format, &ctx.av_limits)
        .await
        .map_err(av_error)?;
    let picture = if facts.has_video {
        Some(
            ffmpeg::poster(local.path(), format, &facts, &ctx.av_limits)
                .await
                .map_err(av_error)?,
        )
    } else {
        // A waveform is a nicety: an audio file without one is still complete.
        match ffmpeg::waveform(local.path(), format, &ctx.av_limits).await {
            Ok(t) => Some(t),
            Err(e) if e.is_host_fault() => return Err(av_error(e)),
            Err(e) => {
                tracing::info!(error = %e, "no waveform for this audio file");
                None
            }
        }
    };
    drop(local);
    let facts = Facts::merge(movie.unwrap_or_default(), facts);
    let location = match facts.gps.clone() {
        Some(gps) => {
            let max_km = ctx.geocode_max_km;
            Some(step::cpu(ctx.step_timeout, move || crate::exif::locate(&gps, max_km)).await?)
        }
        None => None,
    };
    let thumbs = match picture {
        Some(t) => Some(step::store_renditions(ctx, &media, Step::Video, t).await?),
        None => None,
    };
    store(ctx, &media, format, &facts, location, thumbs, attempt).await
}

/// Walks the container's boxes and reads its `moov` (bounded reads, on the blocking pool):
/// a cut-off or lying container fails the file here with a precise reason.
async fn read_movie(ctx: &Context, path: &Path) -> Result<bmff::MovieMeta, StepError> {
    let path = path.to_owned();
    let read = step::cpu(
        ctx.step_timeout,
        move || -> Result<bmff::MovieMeta, ContainerError> {
            let mut file = std::io::BufReader::new(std::fs::File::open(&path)?);
            let len = file.get_ref().metadata()?.len();
            let boxes = bmff::top_level(&mut file, len)?;
            bmff::check_movie(&boxes)?;
            match bmff::find_top_level(&boxes, b"moov") {
                Some(moov) => bmff::movie_meta(&mut file, moov),
                None => Ok(bmff::MovieMeta::default()),
            }
        },
    )
    .await?;
    read.map_err(|e| match e {
        ContainerError::Io(io) => StepError::Transient(format!("reading the original: {io}")),
        other => StepError::Permanent(other.to_string()),
    })
}

fn av_error(e: AvError) -> StepError {
    if e.is_host_fault() {
        StepError::Transient(e.to_string())
    } else {
        StepError::Permanent(e.to_string())
    }
}

/// What the container and ffprobe say together: our own `moov` reading first (it sees
/// `©day` and keeps offsets), ffprobe's tags as the fallback.
#[derive(Debug)]
struct Facts {
    streams: StreamFacts,
    /// The capture date, best first (see [`Facts::taken_at`]).
    dated_with_offset: Option<chrono::DateTime<chrono::FixedOffset>>,
    utc: Option<chrono::DateTime<Utc>>,
    local: Option<chrono::NaiveDateTime>,
    gps: Option<GpsFix>,
    content_identifier: Option<String>,
    make: Option<String>,
    model: Option<String>,
}

impl Facts {
    fn merge(movie: bmff::MovieMeta, streams: StreamFacts) -> Self {
        let (mut with_offset, mut utc, mut local) = (None, None, None);
        match streams.date {
            Some(ContainerDate::WithOffset(d)) => with_offset = Some(d),
            Some(ContainerDate::Utc(d)) => utc = Some(d),
            Some(ContainerDate::Local(d)) => local = Some(d),
            None => {}
        }
        let location = movie.location.clone().or_else(|| streams.location.clone());
        let gps = location
            .as_deref()
            .and_then(iso6709::parse)
            .map(|(lat, lon, alt)| GpsFix {
                latitude: lat,
                longitude: lon,
                accuracy_m: movie.horizontal_accuracy_m.or_else(|| {
                    streams
                        .tags
                        .get("com.apple.quicktime.location.accuracy.horizontal")
                        .and_then(Value::as_str)
                        .and_then(|s| s.parse().ok())
                }),
                altitude_m: alt,
            });
        Self {
            dated_with_offset: movie.apple_creation_date.or(movie.day).or(with_offset),
            utc: movie.mvhd_creation.or(utc),
            local: movie.day_local.or(local),
            gps,
            content_identifier: movie
                .content_identifier
                .clone()
                .or_else(|| streams.content_identifier.clone()),
            make: movie.make.clone().or_else(|| streams.make.clone()),
            model: movie.model.clone().or_else(|| streams.model.clone()),
            streams,
        }
    }

    /// The photo rule for clips: a date with its own offset (Apple's `creationdate`, an offset
    /// `©day`) as written; else the container's UTC instant, shown at the zone of the GPS
    /// position when there is one; else a bare wall clock (AVI), read in that zone or kept as
    /// local time.
    fn taken_at(&self, tz: Option<&str>) -> Option<taken_at::TakenAt> {
        let now = Utc::now();
        self.dated_with_offset
            .and_then(|d| taken_at::resolve_fixed(d, now))
            .or_else(|| self.utc.and_then(|u| taken_at::resolve_utc(u, tz, now)))
            .or_else(|| {
                self.local
                    .and_then(|l| taken_at::resolve(Some(l), None, tz, now))
            })
    }

    fn metadata(&self) -> Value {
        let s = &self.streams;
        json!({
            "container": s.format_name,
            "video_codec": s.video_codec,
            "audio_codec": s.audio_codec,
            "frame_rate": s.frame_rate.map(|r| (r * 1000.0).round() / 1000.0),
            "bitrate": s.bitrate,
            "rotation": s.rotation_cw,
            "audio_channels": s.audio_channels,
            "audio_sample_rate": s.audio_sample_rate,
            "altitude_m": self.gps.as_ref().and_then(|g| g.altitude_m),
            "tags": s.tags,
        })
    }
}

async fn store(
    ctx: &Context,
    media: &MediaState,
    format: MediaFormat,
    facts: &Facts,
    location: Option<NewLocation>,
    thumbs: Option<step::StoredRenditions>,
    attempt: i32,
) -> Result<(), StepError> {
    let tz = location.as_ref().and_then(|l| l.timezone.clone());
    let taken = facts.taken_at(tz.as_deref());
    let s = &facts.streams;
    let dim = |v: Option<u32>| v.and_then(|v| i32::try_from(v).ok()).filter(|v| *v > 0);
    // An ISO-BMFF file with no picture is audio, whatever its brand said (an `.mp4` voice memo).
    let mime_type =
        (!s.has_video && format.kind() == Kind::Video && format.is_iso_bmff()).then(|| {
            MediaFormat::Audio(timeline_media::AudioFormat::M4a)
                .mime()
                .to_owned()
        });
    let mut update = VideoUpdate {
        mime_type,
        duration_seconds: s.duration_seconds,
        width: if s.has_video { dim(s.width) } else { None },
        height: if s.has_video { dim(s.height) } else { None },
        taken_at: taken.as_ref().map(|t| t.instant),
        taken_at_offset_minutes: taken.as_ref().and_then(|t| t.offset_minutes),
        taken_at_source: taken.as_ref().map(|t| crate::exif::source(t.source)),
        camera_make: facts.make.clone(),
        camera_model: facts.model.clone(),
        location_id: None,
        content_identifier: facts.content_identifier.clone(),
        metadata: facts.metadata(),
    };
    let mut tx = ctx.db.begin().await?;
    if let Some(loc) = &location {
        update.location_id =
            Some(db::pipeline::upsert_location(&mut tx, media.user_id, loc).await?);
    }
    let thumbs_ref = thumbs.as_ref().map(|r| {
        let keys = (r.thumb_key.as_str(), r.preview_key.as_str());
        (keys, r.sizes.clone())
    });
    db::pipeline::apply_video(&mut tx, media.id, &update, thumbs_ref).await?;
    if let Some(r) = &thumbs {
        db::objects::settle(&mut tx, &[r.thumb_key.clone(), r.preview_key.clone()]).await?;
    }
    step::pair_live_photo(&mut tx, media.user_id, update.content_identifier.as_deref()).await?;
    db::pipeline::record_step(&mut tx, media, Step::Video, Ok(()), attempt).await?;
    step::settle(&mut tx, media).await?;
    step::commit_final(tx).await?;
    Ok(())
}

//! The `exif` step: taken_at (with the photo's own offset when it can be known), camera,
//! orientation, GPS → a `locations` row with offline reverse geocoding and time zone, and the
//! remaining tags as JSON. Unreadable EXIF is recorded but never fails the photo. It also
//! pairs a Live Photo still with its clip (Apple's ContentIdentifier) and stores the clip
//! embedded in a Motion Photo as a media file of its own, linked to the still.

use chrono::Utc;
use timeline_core::db::{
    self,
    pipeline::{EmbeddedClip, ExifUpdate, MediaState, NewLocation},
};
use timeline_core::jobs::{MediaTask, Step};
use timeline_core::models::TakenAtSource;
use timeline_media::exif::{ExifFacts, GpsFix};
use timeline_media::video::motion;
use timeline_media::{geocode, taken_at};

use crate::context::Context;
use crate::motion_clip;
use crate::step::{self, StepError};

/// Runs the step for one media file.
pub async fn run(ctx: &Context, task: MediaTask, attempt: i32) -> Result<(), StepError> {
    let Some(media) = step::begin(ctx, task).await? else {
        return Ok(());
    };
    let bytes = step::original(ctx, &media).await?;
    let (facts, embedded) = step::cpu(ctx.step_timeout, move || {
        let embedded = motion::find(&mut std::io::Cursor::new(&bytes[..]), bytes.len() as u64);
        (timeline_media::exif::extract(&bytes), embedded)
    })
    .await?;
    // A Motion Photo's clip is stored before the still's facts are recorded, so a crash in
    // between only repeats the (idempotent) copy.
    let clip = match embedded {
        Ok(Some(video)) => Some(motion_clip::store(ctx, &media, &video).await?),
        Ok(None) => None,
        Err(e) => {
            tracing::info!(error = %e, "could not look for an embedded motion clip");
            None
        }
    };
    let facts = match facts {
        Ok(f) => f,
        Err(e) => {
            // Not fatal: the photo still gets its thumbnails.
            let reason = format!("unreadable EXIF: {e}");
            if let Some(clip) = &clip {
                motion_clip::record(ctx, clip, task.job_id, task.priority).await?;
            }
            return step::finish(ctx, &media, Step::Exif, Err(&reason), attempt).await;
        }
    };
    let place = facts.gps.clone().map(|gps| {
        let max_km = ctx.geocode_max_km;
        step::cpu(ctx.step_timeout, move || locate(&gps, max_km))
    });
    let location = match place {
        Some(fut) => Some(fut.await?),
        None => None,
    };
    store(ctx, &media, &facts, location, (clip, task), attempt).await
}

/// The row's `TakenAtSource` for the media crate's.
pub(crate) fn source(s: taken_at::TakenAtSource) -> TakenAtSource {
    match s {
        taken_at::TakenAtSource::ExifOffset => TakenAtSource::ExifOffset,
        taken_at::TakenAtSource::GpsTimezone => TakenAtSource::GpsTimezone,
        taken_at::TakenAtSource::LocalTime => TakenAtSource::LocalTime,
        taken_at::TakenAtSource::ContainerUtc => TakenAtSource::ContainerUtc,
    }
}

/// Reverse geocoding and time zone of a GPS fix (CPU only, offline data).
pub(crate) fn locate(gps: &GpsFix, max_km: f64) -> NewLocation {
    let place = geocode::reverse_within(gps.latitude, gps.longitude, max_km);
    NewLocation {
        latitude: gps.latitude,
        longitude: gps.longitude,
        accuracy: gps.accuracy_m.filter(|a| a.is_finite() && *a >= 0.0),
        country: place.as_ref().and_then(|p| p.country.clone()),
        country_code: place
            .as_ref()
            .map(|p| p.country_code.clone())
            .filter(|c| c.len() == 2),
        state_province: place.as_ref().and_then(|p| p.state_province.clone()),
        city: place.map(|p| p.city),
        timezone: geocode::timezone(gps.latitude, gps.longitude),
    }
}

async fn store(
    ctx: &Context,
    media: &MediaState,
    facts: &ExifFacts,
    location: Option<NewLocation>,
    (clip, task): (Option<EmbeddedClip>, MediaTask),
    attempt: i32,
) -> Result<(), StepError> {
    let tz = location.as_ref().and_then(|l| l.timezone.clone());
    let taken = taken_at::resolve(
        facts.date_time_original,
        facts.offset_time_original,
        tz.as_deref(),
        Utc::now(),
    );
    let mut update = ExifUpdate {
        taken_at: taken.as_ref().map(|t| t.instant),
        taken_at_offset_minutes: taken.as_ref().and_then(|t| t.offset_minutes),
        taken_at_source: taken.as_ref().map(|t| source(t.source)),
        orientation: facts.orientation.and_then(|o| i16::try_from(o).ok()),
        camera_make: facts.make.clone(),
        camera_model: facts.model.clone(),
        location_id: None,
        metadata: facts.metadata.clone(),
        content_identifier: facts.content_identifier.clone(),
    };
    let mut tx = ctx.pool.begin().await?;
    if let Some(loc) = &location {
        update.location_id =
            Some(db::pipeline::upsert_location(&mut tx, media.user_id, loc).await?);
    }
    db::pipeline::apply_exif(&mut tx, media.id, &update).await?;
    if let Some(clip) = &clip {
        motion_clip::record_in(&mut tx, clip, task.job_id, task.priority).await?;
    }
    step::pair_live_photo(&mut tx, media.user_id, update.content_identifier.as_deref()).await?;
    db::pipeline::record_step(&mut tx, media, Step::Exif, Ok(()), attempt).await?;
    step::settle(&mut tx, media).await?;
    tx.commit().await?;
    Ok(())
}

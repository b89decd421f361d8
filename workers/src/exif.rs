//! The `exif` step: taken_at (with the photo's own offset when it can be known), camera,
//! orientation, GPS → a `locations` row with offline reverse geocoding and time zone, and the
//! remaining tags as JSON. Unreadable EXIF is recorded but never fails the photo. It also
//! pairs a Live Photo still with its clip (Apple's ContentIdentifier) and stores the clip
//! embedded in a Motion Photo as a media file of its own, linked to the still.

use chrono::Utc;
use timeline_core::db::{
    self,
    pipeline::{EmbeddedClip, ExifUpdate, NewLocation},
};
use timeline_core::import::ImportFacts;
use timeline_core::jobs::{MediaTask, Step};
use timeline_core::models::TakenAtSource;
use timeline_media::exif::{ExifFacts, GpsFix};
use timeline_media::video::motion;
use timeline_media::{geocode, taken_at};

use crate::context::Context;
use crate::motion_clip;
use crate::step::{self, File, StepError};

/// Runs the step for one media file.
pub async fn run(ctx: &Context, task: MediaTask, attempt: i32) -> Result<(), StepError> {
    let Some((file, imported)) = start(ctx, task).await? else {
        return Ok(());
    };
    let bytes = step::original(ctx, &file).await?;
    let (facts, embedded) = step::cpu(ctx.step_timeout, move || {
        let embedded = motion::find(&mut std::io::Cursor::new(&bytes[..]), bytes.len() as u64);
        (timeline_media::exif::extract(&bytes), embedded)
    })
    .await?;
    // A Motion Photo's clip is stored before the still's facts are recorded, so a crash in
    // between only repeats the (idempotent) copy.
    let (file, clip) = match embedded {
        Ok(Some(video)) => {
            // The clip is named after the still: a known still is read now (Motion Photos only).
            let Some(still) = file.loaded(ctx).await? else {
                return Ok(());
            };
            let clip = motion_clip::store(ctx, &still, &video).await?;
            (File::Loaded(still), Some(clip))
        }
        Ok(None) => (file, None),
        Err(e) => {
            tracing::info!(error = %e, "could not look for an embedded motion clip");
            (file, None)
        }
    };
    let facts = match facts {
        Ok(f) => f,
        // An export's file with no readable EXIF (Facebook strips it): the sidecar's facts
        // are all there is.
        Err(e) if imported.is_some() => {
            tracing::info!(error = %e, "unreadable EXIF; the import's sidecar is used");
            timeline_media::exif::ExifFacts::default()
        }
        Err(e) => {
            // Not fatal: the photo still gets its thumbnails.
            let reason = format!("unreadable EXIF: {e}");
            if let Some(clip) = &clip {
                motion_clip::record(ctx, clip, task.job_id, task.priority).await?;
            }
            return step::finish(ctx, file, Step::Exif, Err(&reason), attempt).await;
        }
    };
    // The file's own position wins; the sidecar's fills in for a file without one.
    let gps = facts.gps.clone().or_else(|| {
        imported
            .as_ref()
            .and_then(|i| i.position())
            .map(|(latitude, longitude)| GpsFix {
                latitude,
                longitude,
                accuracy_m: None,
                altitude_m: None,
            })
    });
    let place = gps.map(|gps| {
        let max_km = ctx.geocode_max_km;
        step::cpu(ctx.step_timeout, move || locate(&gps, max_km))
    });
    let location = match place {
        Some(fut) => Some(fut.await?),
        None => None,
    };
    let sidecar_at = imported.as_ref().and_then(|i| i.taken_at);
    store(
        ctx,
        file,
        (&facts, sidecar_at),
        location,
        (clip, task),
        attempt,
    )
    .await
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

/// The file and its import's sidecar facts. A task the hash step queued for a file without a
/// sidecar knows all it needs: no transaction. Any other task reads, checks and marks the file
/// and reads the sidecar in one transaction.
async fn start(
    ctx: &Context,
    task: MediaTask,
) -> Result<Option<(File, Option<ImportFacts>)>, StepError> {
    if let Some(known) = task.known.filter(|k| !k.sidecar) {
        return Ok(Some((File::Known(task, known), None)));
    }
    let mut tx = ctx.db.begin().await?;
    let Some(media) = step::begin_on(&mut tx, task).await? else {
        return Ok(None);
    };
    let imported = db::pipeline::import_facts(&mut *tx, media.id).await?;
    tx.commit().await?;
    Ok(Some((File::Loaded(media), imported)))
}

async fn store(
    ctx: &Context,
    file: File,
    (facts, sidecar_at): (&ExifFacts, Option<i64>),
    location: Option<NewLocation>,
    (clip, task): (Option<EmbeddedClip>, MediaTask),
    attempt: i32,
) -> Result<(), StepError> {
    let tz = location.as_ref().and_then(|l| l.timezone.clone());
    let own = taken_at::resolve(
        facts.date_time_original,
        facts.offset_time_original,
        tz.as_deref(),
        Utc::now(),
    );
    let (taken, taken_source) = merge_taken(own, sidecar_at, tz.as_deref());
    let mut update = ExifUpdate {
        taken_at: taken.as_ref().map(|t| t.instant),
        taken_at_offset_minutes: taken.as_ref().and_then(|t| t.offset_minutes),
        taken_at_source: taken_source,
        orientation: facts.orientation.and_then(|o| i16::try_from(o).ok()),
        camera_make: facts.make.clone(),
        camera_model: facts.model.clone(),
        location_id: None,
        metadata: facts.metadata.clone(),
        content_identifier: facts.content_identifier.clone(),
    };
    let mut tx = ctx.db.begin().await?;
    let Some(media) = file.confirm_on(&mut tx).await? else {
        // Deleted or ended meanwhile. A clip stored for it is named for this task, and goes
        // once the task is done (`inflight::clean`).
        return Ok(());
    };
    let media = &media;
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
    step::commit_final(tx).await?;
    Ok(())
}

/// The rule when a file and an import's sidecar disagree on when it was taken: a date with an
/// offset in the file wins (the camera knew its zone); otherwise the sidecar's instant (exact,
/// in UTC) wins over a wall clock whose zone is only inferred, shown at the zone of the
/// position; without a sidecar instant the file's own resolution stands.
fn merge_taken(
    own: Option<taken_at::TakenAt>,
    sidecar_at: Option<i64>,
    tz: Option<&str>,
) -> (Option<taken_at::TakenAt>, Option<TakenAtSource>) {
    let file_has_offset = own
        .as_ref()
        .is_some_and(|t| t.source == taken_at::TakenAtSource::ExifOffset);
    let from_sidecar = sidecar_at
        .filter(|_| !file_has_offset)
        .and_then(|secs| chrono::DateTime::from_timestamp(secs, 0))
        .and_then(|instant| taken_at::resolve_utc(instant, tz, Utc::now()));
    match from_sidecar {
        Some(t) => (Some(t), Some(TakenAtSource::Sidecar)),
        None => {
            let source = own.as_ref().map(|t| source(t.source));
            (own, source)
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{FixedOffset, NaiveDate};

    use super::*;

    fn wall(h: u32) -> Option<chrono::NaiveDateTime> {
        NaiveDate::from_ymd_opt(2019, 8, 12).and_then(|d| d.and_hms_opt(h, 0, 0))
    }

    #[test]
    fn a_file_offset_wins_and_the_sidecar_fills_the_rest() {
        let sidecar = Some(1_565_604_000); // 2019-08-12 10:00:00 UTC
        let offset = FixedOffset::east_opt(2 * 3600);
        let own = taken_at::resolve(wall(14), offset, None, Utc::now());
        let (t, s) = merge_taken(own, sidecar, Some("Europe/Zurich"));
        assert_eq!(s, Some(TakenAtSource::ExifOffset));
        assert_eq!(
            t.map(|t| t.instant.timestamp()),
            Some(1_565_604_000 + 2 * 3600)
        );

        // A wall clock without offset: the sidecar's exact instant, at the position's zone.
        let own = taken_at::resolve(wall(9), None, Some("Europe/Zurich"), Utc::now());
        let (t, s) = merge_taken(own, sidecar, Some("Europe/Zurich"));
        assert_eq!(s, Some(TakenAtSource::Sidecar));
        let t = t.expect("taken");
        assert_eq!(
            (t.instant.timestamp(), t.offset_minutes),
            (1_565_604_000, Some(120))
        );

        // No date in the file at all (Facebook strips EXIF), no position: UTC, no offset.
        let (t, s) = merge_taken(None, sidecar, None);
        assert_eq!(s, Some(TakenAtSource::Sidecar));
        assert_eq!(t.and_then(|t| t.offset_minutes), None);

        // No sidecar instant: the file's own.
        let own = taken_at::resolve(wall(9), None, None, Utc::now());
        assert_eq!(
            merge_taken(own, None, None).1,
            Some(TakenAtSource::LocalTime)
        );
    }
}

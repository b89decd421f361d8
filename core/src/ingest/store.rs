//! Storing the files of a bulk import (`timeline ingest`, `timeline import`, an import of the
//! API): each file sniffed, its object named in the chunk's upload session, then streamed into
//! the store with its hash taken on the way; each chunk of stored files recorded in one
//! transaction on the import's job.

use futures::StreamExt;
use uuid::Uuid;

use crate::config::UploadLimits;
use crate::db;
use crate::db::uploads::NewMedia;
use crate::format::{MediaFormat, SNIFF_LEN};
use crate::inflight::UploadSession;
use crate::models::JobType;
use crate::storage::{Rendition, Storage};

/// Errors of a bulk import.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The input cannot be imported (running it again changes nothing).
    #[error("{0}")]
    Invalid(String),
    /// The work stopped on trouble of the database or the store, not of its input; running it
    /// again is worth it.
    #[error("{0}")]
    Interrupted(String),
}

/// A file that was refused: its name and why.
pub type Refusal = (String, String);
/// One file's outcome: stored as a new media row, or refused.
pub type Stored = Result<NewMedia, Refusal>;

/// Files per submitted chunk. Submitting in chunks lets the workers start on the first photos
/// while the rest are still being stored, instead of idling through the whole upload; each
/// chunk is atomic (rows, job links and queue tasks in one transaction), like an app
/// uploading an album in parts. All chunks belong to one job.
pub const CHUNK: usize = 10;
/// The first chunk is smaller: the workers start on the first photos as soon as they are
/// stored, not after ten (at 4 MB each, about a tenth of a second of idle cores).
pub const FIRST_CHUNK: usize = 2;
/// Files read and stored at once.
pub const STORE_CONCURRENCY: usize = 4;

/// The job an import's chunks go on: made with the first chunk.
#[derive(Debug)]
pub struct JobKind {
    pub job_type: JobType,
    pub input: serde_json::Value,
}

/// What an export says about a stored file beyond its bytes: recorded with its row.
#[derive(Debug)]
pub struct Extra {
    pub media: Uuid,
    pub facts: Option<crate::import::ImportFacts>,
    /// Collections (albums) it is in.
    pub collections: Vec<Uuid>,
}

/// Records one stored chunk in one transaction: its session ends, its rows and tasks go in,
/// on the import's job (made with the first chunk), with what the export said of each file.
pub async fn record_chunk(
    pool: &sqlx::PgPool,
    session: &UploadSession,
    (user, job): (Uuid, &mut Option<Uuid>),
    kind: &JobKind,
    (media, extras): (&[NewMedia], &[Extra]),
    position: usize,
) -> Result<(), Error> {
    let mut tx = pool.begin().await?;
    let keys: Vec<String> = media.iter().map(|m| m.file_path.clone()).collect();
    if !session.end_in(&mut tx, &keys).await? {
        return Err(Error::Invalid(
            "the import stalled and its upload session was cancelled".into(),
        ));
    }
    let job_id = match *job {
        Some(id) => id,
        None => db::jobs::create_open(&mut tx, user, kind.job_type, kind.input.clone()).await?,
    };
    crate::ingest::submit_into(&mut tx, job_id, user, media, position)
        .await
        .map_err(|e| Error::Invalid(e.to_string()))?;
    for (i, extra) in extras.iter().enumerate() {
        if let Some(facts) = &extra.facts {
            db::uploads::set_import_facts(&mut tx, extra.media, facts).await?;
        }
        for &collection in &extra.collections {
            let at = i32::try_from(position + i).unwrap_or(i32::MAX);
            db::collections::add_media(&mut *tx, user, collection, extra.media, at).await?;
        }
    }
    tx.commit().await?;
    *job = Some(job_id);
    Ok(())
}

/// The bytes of one file to store: whole (a photo), or its first bytes and the rest as a
/// stream (a video), so memory stays bounded whatever the size.
#[allow(missing_debug_implementations)] // a stream of bytes
pub enum Body {
    Whole(bytes::Bytes),
    Streamed {
        head: bytes::Bytes,
        rest: futures::stream::BoxStream<'static, Result<bytes::Bytes, crate::storage::Error>>,
    },
}

/// Refuses a file over the size limit before any byte of it is read.
pub fn check_size(name: &str, size: u64, limits: &UploadLimits) -> Result<(), Refusal> {
    let max_bytes = limits.max_file_bytes;
    if size > max_bytes {
        return Err((
            name.to_owned(),
            format!(
                "too large: {size} bytes, over the {max_bytes}-byte limit (TIMELINE_MAX_FILE_BYTES)"
            ),
        ));
    }
    Ok(())
}

/// Sniffs `body`, names its object in the session and stores it, hashing the bytes as they go
/// by (the hash step takes the digest instead of reading the original back).
pub async fn store_body(
    storage: &Storage,
    session: &UploadSession,
    (user, limits): (Uuid, &UploadLimits),
    name: String,
    body: Body,
) -> Stored {
    let refuse = |why: String| (name.clone(), why);
    let head = match &body {
        Body::Whole(bytes) => &bytes[..bytes.len().min(SNIFF_LEN)],
        Body::Streamed { head, .. } => &head[..],
    };
    let format = MediaFormat::sniff(head).ok_or_else(|| {
        refuse("not a photo, video or audio file this system can handle".to_owned())
    })?;
    if !limits.allows(format) {
        return Err(refuse(format!(
            "{}: a type this server does not accept (upload.allowed_types)",
            format.mime()
        )));
    }
    let id = Uuid::new_v4();
    let key = Storage::key(user, id, Rendition::Original);
    session
        .name(&key, id)
        .await
        .map_err(|e| refuse(format!("{NOT_RECORDED}: {e}")))?;
    let mut hasher = timeline_media::hash::StreamHasher::new();
    let stored = match body {
        Body::Whole(bytes) => {
            hasher.update(&bytes);
            storage.put_counted(&key, bytes).await
        }
        Body::Streamed { head, rest } => {
            let chunks = futures::stream::iter([Ok(head)])
                .chain(rest)
                .inspect(|chunk| {
                    if let Ok(bytes) = chunk {
                        hasher.update(bytes);
                    }
                });
            storage.put_stream(&key, chunks).await
        }
    };
    match stored {
        Ok(stored) => Ok(NewMedia {
            id,
            user_id: user,
            filename: name,
            file_path: key.to_string(),
            file_size: i64::try_from(stored).unwrap_or(i64::MAX),
            mime_type: format.mime(),
            sha256: Some(hasher.finish()),
        }),
        Err(e) => {
            let _ = storage.delete(&key).await;
            Err(refuse(format!("{NOT_STORED}: {e}")))
        }
    }
}

/// How a refusal begins when the database or the store failed, not the file: an import that
/// runs again (through the API) must not take these for the file's fault.
pub const NOT_RECORDED: &str = "could not record the upload";
pub const NOT_STORED: &str = "could not store";

/// Files up to this size are read and stored in one piece (photos); larger ones (videos) are
/// streamed in chunks, so memory stays bounded whatever the size.
pub const WHOLE_PUT_BYTES: u64 = 32 << 20;

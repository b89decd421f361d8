//! Bytes in flight are never lost, and never left behind: every object is named by a committed
//! row before it is written (an upload session's pending object, or a step's), and only a row
//! decides that an object may go. This module owns that discipline for the writers (the API,
//! `timeline ingest`, the worker steps) and the cleaner the reconciler runs.
//!
//! An [`UploadSession`] is committed before its first byte is stored; while its owner works,
//! a heartbeat records the bytes received every few seconds. The transaction that records the
//! media rows ends the session ([`UploadSession::end_in`]). When that transaction fails, the
//! upload looks before deleting ([`UploadSession::abandon`]): it aborts the session only if the
//! session is still open (waiting for a commit whose outcome is unknown), so no path deletes
//! an object that a committed row names.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use object_store::path::Path;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::db::tx::{Begin, TxPool};
use crate::db::{self, objects::Owner};
use crate::storage::{Rendition, Storage};

/// How often the owner of a session records its progress.
pub const HEARTBEAT: Duration = Duration::from_secs(3);

/// A session without progress for this long has lost its owner, whatever the grace period a
/// pass is given (five missed heartbeats).
pub const STALL_MIN: Duration = Duration::from_secs(15);

/// The longest an upload request or an ingest chunk may keep its session open.
const REQUEST_TTL: Duration = Duration::from_secs(24 * 3600);

/// What kind of upload a session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `POST /v1/media`.
    Form,
    /// `timeline ingest`.
    Ingest,
}

impl Protocol {
    fn as_str(self) -> &'static str {
        match self {
            Self::Form => "form",
            Self::Ingest => "ingest",
        }
    }
}

/// What [`UploadSession::abandon`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Abandoned {
    /// The session was still open: it is aborted and what it stored deleted (or left for the
    /// reconciler when the store did not answer).
    Aborted,
    /// The session had ended: the transaction that "failed" committed, and its rows name the
    /// objects, which stay.
    Committed,
    /// The database could not be asked: nothing is deleted; the reconciler aborts the session
    /// once its heartbeat has stopped.
    Unknown,
}

/// An open upload session, with its heartbeat.
#[derive(Debug)]
pub struct UploadSession {
    id: Uuid,
    user_id: Uuid,
    pool: TxPool,
    received: Arc<AtomicU64>,
    heartbeat: tokio::task::JoinHandle<()>,
    /// The objects named so far, with their media file.
    named: std::sync::Mutex<Vec<(String, Uuid)>>,
}

impl UploadSession {
    /// Opens and commits a session for `user_id`, and starts its heartbeat.
    pub async fn open(
        pool: impl Into<TxPool>,
        user_id: Uuid,
        protocol: Protocol,
    ) -> Result<Self, sqlx::Error> {
        let pool = pool.into();
        let id = Uuid::new_v4();
        let mut tx = pool.begin().await?;
        let ttl = REQUEST_TTL.as_secs_f64();
        db::objects::open_session(&mut tx, id, user_id, protocol.as_str(), None, ttl).await?;
        tx.commit().await?;
        let received = Arc::new(AtomicU64::new(0));
        let heartbeat = tokio::spawn(beat(pool.clone(), id, received.clone()));
        Ok(Self {
            id,
            user_id,
            pool,
            received,
            heartbeat,
            named: std::sync::Mutex::default(),
        })
    }

    /// Names (and commits) the object `key` of media file `media` before it is written.
    pub async fn name(&self, key: &Path, media: Uuid) -> Result<(), sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let keys = [key.to_string()];
        let owner = Owner::Session(self.id);
        db::objects::name_objects(&mut tx, self.user_id, media, &keys, owner).await?;
        tx.commit().await?;
        if let Ok(mut named) = self.named.lock() {
            named.push((key.to_string(), media));
        }
        Ok(())
    }

    /// Counts bytes received (recorded by the next heartbeat).
    pub fn received(&self, bytes: u64) {
        self.received.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Ends the session in the transaction that records its media rows: the objects of
    /// `recorded` are named by those rows now; any other object it named becomes one to
    /// delete. Call it first in that transaction (it takes the session's row lock). False when
    /// the session was aborted meanwhile: the transaction must roll back.
    pub async fn end_in(
        &self,
        conn: &mut PgConnection,
        recorded: &[String],
    ) -> Result<bool, sqlx::Error> {
        if !db::objects::end_session(conn, self.id).await? {
            return Ok(false);
        }
        db::objects::settle(conn, recorded).await?;
        Ok(true)
    }

    /// The upload failed, or its transaction's outcome is unknown: looks before deleting. The
    /// abort waits for a transaction still ending the session, then deletes what the session
    /// stored only if it was still open.
    pub async fn abandon(self, storage: &Storage) -> Abandoned {
        self.heartbeat.abort();
        let aborted = async {
            let mut tx = self.pool.begin().await?;
            let aborted = db::objects::abort_session(&mut tx, self.id).await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(aborted)
        };
        let aborted = aborted.await;
        match aborted {
            Ok(false) => Abandoned::Committed,
            Ok(true) => {
                let named = self.named.lock().map(|n| n.clone()).unwrap_or_default();
                for (key, media) in &named {
                    if let Err(e) = clean(&self.pool, storage, key).await {
                        // The pending row stays: the reconciler's next pass deletes it.
                        tracing::warn!(media.id = %media, error = %e, "could not remove a refused upload's object yet");
                    }
                }
                Abandoned::Aborted
            }
            Err(e) => {
                tracing::warn!(session.id = %self.id, error = %e, "could not abort an upload session; the reconciler will");
                Abandoned::Unknown
            }
        }
    }
}

impl Drop for UploadSession {
    fn drop(&mut self) {
        self.heartbeat.abort();
    }
}

/// The session's heartbeat: records the bytes received every [`HEARTBEAT`] until the session
/// is gone (ended or aborted) or its owner drops it.
async fn beat(pool: TxPool, id: Uuid, received: Arc<AtomicU64>) {
    let mut tick = tokio::time::interval(HEARTBEAT);
    tick.tick().await;
    loop {
        tick.tick().await;
        let bytes = i64::try_from(received.load(Ordering::Relaxed)).unwrap_or(i64::MAX);
        let touched = async {
            let mut tx = pool.begin().await?;
            let touched = db::objects::touch_session(&mut tx, id, bytes).await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(touched)
        };
        let touched = touched.await;
        match touched {
            Ok(true) => {}
            Ok(false) => return,
            // A missed beat or two is harmless; STALL_MIN allows five.
            Err(e) => {
                tracing::debug!(session.id = %id, error = %e, "upload session heartbeat missed")
            }
        }
    }
}

tokio::task_local! {
    /// The queue task (`apalis.jobs.id`) a worker step runs in: set by the worker around each
    /// step, so the objects the step names are cleaned only once that task can no longer run.
    pub static STEP_TASK: String;
}

/// Names the objects a worker step is about to store for a media file (committed before
/// they are written), with the step's queue task. The step's final transaction calls
/// [`db::objects::settle`] on them.
pub async fn name_for_step(
    pool: &impl Begin,
    user_id: Uuid,
    media: Uuid,
    keys: &[String],
    step: &str,
) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin_tx().await?;
    name_for_step_on(&mut tx, user_id, media, keys, step).await?;
    tx.commit().await
}

/// [`name_for_step`] on the caller's transaction (which must commit before the objects are
/// written): a step that names its keys with its first reads saves a transaction.
pub async fn name_for_step_on(
    conn: &mut PgConnection,
    user_id: Uuid,
    media: Uuid,
    keys: &[String],
    step: &str,
) -> Result<(), sqlx::Error> {
    let task = STEP_TASK.try_with(Clone::clone).ok();
    let owner = Owner::Step(step, task.as_deref());
    db::objects::name_objects(conn, user_id, media, keys, owner).await
}

/// Names every object key of deleted media files (original and renditions) as to delete, in
/// the caller's transaction that deletes their rows: a delete that fails after the commit is
/// finished by the reconciler. Returns the keys, for [`clean`] once committed.
pub async fn name_deleted(
    conn: &mut PgConnection,
    user_id: Uuid,
    gone: &[Uuid],
) -> Result<Vec<String>, sqlx::Error> {
    let mut keys = Vec::with_capacity(gone.len() * Rendition::ALL.len());
    for &media in gone {
        let mine: Vec<String> = Rendition::ALL
            .iter()
            .map(|r| Storage::key(user_id, media, *r).to_string())
            .collect();
        db::objects::name_objects(conn, user_id, media, &mine, Owner::Nobody).await?;
        keys.extend(mine);
    }
    Ok(keys)
}

/// Deletes the object `key` if nobody may still write it and no committed row names it, then
/// forgets its pending row. The row stays locked while the object is deleted, so a writer
/// naming the key again waits for the delete to finish. Returns whether an object was deleted.
pub async fn clean(pool: &impl Begin, storage: &Storage, key: &str) -> Result<bool, CleanError> {
    let mut tx = pool.begin_tx().await?;
    let Some(claimed) = db::objects::claim(&mut tx, key).await? else {
        return Ok(false);
    };
    let key_path = Path::from(key);
    if let Some(id) = &claimed.multipart_id
        && storage.is_multipart()
    {
        storage.abort_multipart(&key_path, id).await?;
    }
    let deleted = !claimed.named;
    if deleted {
        storage.discard(&key_path).await?;
    }
    tx.commit().await?;
    if deleted {
        tracing::info!(object = %key, "object no row names deleted");
    }
    Ok(deleted)
}

/// Why an object could not be cleaned yet (its row stays for the next pass).
#[derive(Debug, thiserror::Error)]
pub enum CleanError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Storage(#[from] crate::storage::Error),
}

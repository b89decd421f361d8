//! `GET /v1/jobs/{id}`: progress of a tracked job, for polling; `GET /v1/jobs/{id}/events`:
//! the same progress pushed as Server-Sent Events.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::request::Parts;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use tokio::sync::{broadcast, mpsc};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::auth::{AuthUser, begin_as, token_hash};
use super::docs::{IdParam, NotFound, Unauthorized, Unavailable};
use super::views::JobView;
use super::{AppState, error::ApiError, views};
use crate::db::{
    self,
    poll::{Poll, PollArgs},
};
use crate::models::system::DataProcessingJob;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_job))
        .routes(routes!(events))
}

/// A tracked job's progress, for polling.
#[utoipa::path(get, path = "/v1/jobs/{id}", tag = "jobs", params(IdParam),
    responses((status = 200, body = JobView), Unauthorized, NotFound, Unavailable))]
async fn get_job(
    State(state): State<AppState>,
    parts: Parts,
    Path(id): Path<String>,
) -> Result<Json<JobView>, ApiError> {
    let hash = token_hash(&parts.headers).ok_or(ApiError::Unauthorized)?;
    let meta = super::auth::current_meta();
    // A malformed id is as unknown as another user's: 404, not 400 (once the token is known
    // good). The nil id names no job.
    let job = id.parse().unwrap_or(Uuid::nil());
    let args = PollArgs {
        token_hash: &hash,
        audit: meta.audit(),
        job,
        errors: views::JOB_ERRORS_SHOWN,
        record: true,
    };
    let (user, found) = match poll(&state, args).await? {
        Poll::Unauthorized => return Err(ApiError::Unauthorized),
        // (Stale only where the token's use may not be recorded: never on this path.)
        Poll::Missing { user } | Poll::Stale { user } => (user, None),
        Poll::Found { user, job, errors } => (user, Some(views::job(&job, &errors))),
    };
    // The user's slot, taken once the statement has named the user: a poll over the user's
    // cap has cost one statement, and is refused as any other request would be.
    super::user_caps::admit(&parts, &state.caps, user)?;
    tracing::Span::current().record("user.id", tracing::field::display(user));
    Ok(Json(found.ok_or(ApiError::NotFound)?))
}

/// The poll, on the read replica while it is within its lag bound (`crate::replica`), else on
/// the primary, one statement either way (`db::poll`). The primary decides when the replica
/// does not know the token yet or its use is due to be recorded (a write), when the job is
/// not there yet (created a moment ago) and when the replica fails the read.
async fn poll(state: &AppState, args: PollArgs<'_>) -> Result<Poll, ApiError> {
    if let Some(replica) = &state.replica {
        match replica.pool_if_fresh() {
            None => crate::metrics::replica_read("primary", "lagging"),
            Some(pool) => match on_replica(pool, args).await {
                Ok(found @ Poll::Found { .. }) => {
                    crate::metrics::replica_read("replica", "fresh");
                    return Ok(found);
                }
                Ok(Poll::Missing { .. }) => {
                    crate::metrics::replica_read("primary", "not_there_yet")
                }
                Ok(Poll::Unauthorized | Poll::Stale { .. }) => {
                    crate::metrics::replica_read("primary", "token")
                }
                Err(e) => {
                    crate::metrics::replica_read("primary", "unavailable");
                    tracing::warn!(error = %e, "read replica unavailable; reading from the primary");
                }
            },
        }
    }
    let mut conn = state.db.alone().await?;
    let found = db::poll::poll_job(&mut conn, args).await?;
    conn.release();
    Ok(found)
}

/// The poll on the replica, where nothing may be written.
async fn on_replica(pool: &sqlx::PgPool, args: PollArgs<'_>) -> Result<Poll, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    let args = PollArgs {
        record: false,
        ..args
    };
    db::poll::poll_job(&mut conn, args).await
}

/// The user's job and its view (with its first failures).
async fn read(
    state: &AppState,
    user: Uuid,
    id: Uuid,
) -> Result<(DataProcessingJob, JobView), ApiError> {
    let mut tx = begin_as(&state.db, user).await?;
    let (job, errors) =
        crate::db::jobs::get_with_errors(&mut tx, user, id, views::JOB_ERRORS_SHOWN)
            .await?
            .ok_or(ApiError::NotFound)?;
    tx.commit().await?;
    let view = views::job(&job, &errors);
    Ok((job, view))
}

/// Without news, the stream re-reads its job this often: an announcement lost while the web
/// process's listener reconnected still reaches the client, and the end is never missed.
const RESYNC: Duration = Duration::from_secs(10);

/// `GET /v1/jobs/{id}/events`: `progress` now and on every change, `file` as each file ends,
/// then `done` with the whole job (as `GET /v1/jobs/{id}` shows it), and the stream ends.
#[utoipa::path(get, path = "/v1/jobs/{id}/events", tag = "jobs", params(IdParam),
    responses((status = 200, description = "Server-Sent Events: `progress`, `file`, then `done` (the job)",
               content_type = "text/event-stream", body = String),
              Unauthorized, NotFound, Unavailable))]
async fn events(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
    headers: axum::http::HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let id: Uuid = id.parse().map_err(|_| ApiError::NotFound)?;
    let token = super::auth::token_hash(&headers).ok_or(ApiError::Unauthorized)?;
    // Subscribe before the first read: nothing committed after it can be missed.
    let rx = state.events.subscribe();
    let (job, view) = read(&state, user, id).await?;
    let (out, out_rx) = mpsc::channel(64);
    let grant = Grant {
        db: state.db.clone(),
        token,
        user,
        checked: std::time::Instant::now(),
    };
    tokio::spawn(forward(state, grant, (job, view), rx, out));
    let stream = futures::stream::unfold(out_rx, |mut rx| async move {
        rx.recv().await.map(|e| (Ok::<_, Infallible>(e), rx))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// The `progress` event of a job row (see [`job_shaped`]).
fn progress(job: &DataProcessingJob) -> serde_json::Value {
    let count = |k: &str| job.output_data.get(k).cloned().unwrap_or(0.into());
    job_shaped(
        serde_json::json!({
            "job_id": job.id, "status": job.status, "progress": job.progress,
            "total": count("total"), "completed": count("completed"), "failed": count("failed"),
            "duplicate": count("duplicate"),
        }),
        job.job_type.as_str(),
    )
}

/// A `progress` event's data in the job's own shape (API.md: each `data:` line a JSON object
/// like `GET /v1/jobs/{id}`'s): `id`, `job_type`, `status`, `progress` and `output_data`'s
/// counts, beside the flat names it has always had (`job_id`, `total`, `completed`, …).
fn job_shaped(mut flat: serde_json::Value, job_type: &str) -> serde_json::Value {
    let Some(o) = flat.as_object_mut() else {
        return flat;
    };
    let counts: serde_json::Map<String, serde_json::Value> =
        ["total", "completed", "failed", "duplicate"]
            .iter()
            .filter_map(|k| o.get(*k).map(|v| ((*k).to_owned(), v.clone())))
            .collect();
    let id = o.get("job_id").cloned().unwrap_or_default();
    o.insert("id".into(), id);
    o.insert("job_type".into(), job_type.into());
    o.insert("output_data".into(), counts.into());
    flat
}

/// A `file` event's data: the job's shape too, its `status` and `progress` the job's as last
/// sent (a file's end is never the job's: the `progress` it makes follows), and the file's
/// own end under `file` (`media_id`, `status`, `filename`, `error`), its names also kept flat
/// as before, but for `status`, which is the job's.
fn file_shaped(
    flat: &serde_json::Value,
    job_type: &str,
    last: &serde_json::Value,
) -> serde_json::Value {
    let field = |k: &str| flat.get(k).cloned().unwrap_or_default();
    serde_json::json!({
        "id": field("job_id"), "job_id": field("job_id"), "job_type": job_type,
        "status": last["status"], "progress": last["progress"],
        "file": {
            "media_id": field("media_id"), "status": field("status"),
            "filename": field("filename"), "error": field("error"),
        },
        "media_id": field("media_id"), "filename": field("filename"), "error": field("error"),
    })
}

fn done(view: &JobView) -> Event {
    event("done", &serde_json::to_value(view).unwrap_or_default())
}

fn event(kind: &str, data: &serde_json::Value) -> Event {
    Event::default().event(kind).data(data.to_string())
}

/// How long a stream trusts its token between checks: a revoked or expired token's stream
/// ends at its next event after this, or at the next resync at the latest.
const RECHECK: Duration = Duration::from_secs(1);

/// The token a stream was opened with, checked again while the stream runs.
struct Grant {
    db: crate::db::tx::TxPool,
    token: [u8; 32],
    user: Uuid,
    checked: std::time::Instant,
}

impl Grant {
    /// Whether the token still stands (revoked, expired or its user deactivated: no). A
    /// database that does not answer keeps the stream: the next check decides.
    async fn holds(&mut self) -> bool {
        if self.checked.elapsed() < RECHECK {
            return true;
        }
        self.checked = std::time::Instant::now();
        let owner = async {
            let mut tx = self.db.begin().await?;
            crate::db::users::token_owner(&mut *tx, &self.token).await
        };
        match owner.await {
            Ok(Some(owner)) => owner.user_id == self.user,
            Ok(None) => false,
            Err(_) => true,
        }
    }
}

/// Feeds one client until its job ends, it goes away (a send fails) or its token no longer
/// stands.
async fn forward(
    state: AppState,
    mut grant: Grant,
    (job, view): (DataProcessingJob, JobView),
    mut rx: broadcast::Receiver<std::sync::Arc<super::events::JobEvent>>,
    out: mpsc::Sender<Event>,
) {
    let id = job.id;
    let job_type = job.job_type.as_str();
    let user = grant.user;
    let mut last = progress(&job);
    if out.send(event("progress", &last)).await.is_err() {
        return;
    }
    if job.status.is_final() {
        let _ = out.send(done(&view)).await;
        return;
    }
    let mut resync = tokio::time::interval(RESYNC);
    resync.tick().await;
    loop {
        let reread = tokio::select! {
            got = rx.recv() => match got {
                Ok(e) if e.job_id != id => false,
                Ok(e) => {
                    let mut data = e.data.clone();
                    if let Some(o) = data.as_object_mut() {
                        o.remove("type");
                    }
                    if e.kind == "progress" {
                        data = job_shaped(data, job_type);
                        last = data.clone();
                    } else if e.kind == "file" {
                        data = file_shaped(&data, job_type, &last);
                    }
                    if !grant.holds().await || out.send(event(&e.kind, &data)).await.is_err() {
                        return;
                    }
                    e.kind == "progress" && data["status"] != "running" && data["status"] != "pending"
                }
                // Missed some: read the job as it is now.
                Err(broadcast::error::RecvError::Lagged(_)) => true,
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = resync.tick() => true,
        };
        if out.is_closed() {
            return;
        }
        if !reread {
            continue;
        }
        if !grant.holds().await {
            tracing::info!(job.id = %id, "event stream ended: its token no longer stands");
            return;
        }
        let (job, view) = match read(&state, user, id).await {
            Ok(read) => read,
            // Deleted meanwhile: nothing more will come.
            Err(ApiError::NotFound) => return,
            // The database is away: try again at the next tick.
            Err(_) => continue,
        };
        let now = progress(&job);
        if now != last {
            last = now;
            if out.send(event("progress", &last)).await.is_err() {
                return;
            }
        }
        if job.status.is_final() {
            let _ = out.send(done(&view)).await;
            return;
        }
    }
}

//! The operators' jobs dashboard at `/admin`: queues (depth, throughput, waits, pause), live
//! workers, failures (retry, dismiss), jobs (page, cancel), reprocess. Server-rendered HTML
//! (maud: escaped at compile time) with no script; pages refresh themselves every 5 seconds.
//!
//! Operators only: a user with role `admin` signs in with one of their API tokens, kept in an
//! `HttpOnly`, `SameSite=Strict` cookie scoped to `/admin` (so no other site can make the
//! browser post a form here with it). `Authorization: Bearer` works too. Anyone else gets the
//! sign-in page, never the data.

use axum::Router;
use axum::extract::{Form, FromRequestParts, Path, State};
use axum::http::{HeaderMap, StatusCode, header, request::Parts};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, html};
use uuid::Uuid;

use super::AppState;
use crate::db;
use crate::jobs::Step;

const COOKIE: &str = "timeline_admin";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin", get(overview))
        .route("/admin/login", get(login_page).post(login))
        .route("/admin/logout", post(logout))
        .route("/admin/jobs/{id}", get(job_page))
        .route("/admin/jobs/{id}/cancel", post(cancel))
        .route("/admin/media/{id}/retry", post(retry))
        .route("/admin/media/{id}/dismiss", post(dismiss))
        .route("/admin/queues/{queue}/pause", post(pause))
        .route("/admin/queues/{queue}/resume", post(resume))
        .route("/admin/reprocess", post(reprocess))
}

/// Why a dashboard request failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("sign in first")]
    SignIn,
    #[error("not found")]
    NotFound,
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("{0}")]
    Other(String),
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        match self {
            Self::SignIn => Redirect::to("/admin/login").into_response(),
            Self::NotFound => (
                StatusCode::NOT_FOUND,
                page("Not found", html! { p { "Not found." } }),
            )
                .into_response(),
            other => {
                tracing::error!(error = %other, "dashboard request failed");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    page("Unavailable", html! { p { "The dashboard could not read the database; it retries by itself." } }),
                )
                    .into_response()
            }
        }
    }
}

impl From<crate::ingest::Error> for AdminError {
    fn from(e: crate::ingest::Error) -> Self {
        Self::Other(e.to_string())
    }
}

/// An authenticated operator.
#[derive(Debug, Clone, Copy)]
pub struct Admin(pub Uuid);

impl FromRequestParts<AppState> for Admin {
    type Rejection = AdminError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = token_of(&parts.headers).ok_or(AdminError::SignIn)?;
        admin_for(state, &token)
            .await?
            .map(Self)
            .ok_or(AdminError::SignIn)
    }
}

/// The token from the bearer header or the dashboard cookie.
fn token_of(headers: &HeaderMap) -> Option<String> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let cookie = || {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|c| c.trim().split_once('='))
            .find(|(k, _)| *k == COOKIE)
            .map(|(_, v)| v)
    };
    bearer
        .or_else(cookie)
        .filter(|t| !t.is_empty() && t.len() <= 256)
        .map(str::to_owned)
}

/// The operator owning `token`, if it is a valid token of an active admin.
async fn admin_for(state: &AppState, token: &str) -> Result<Option<Uuid>, AdminError> {
    let hash = crate::auth::hash_token(token);
    let mut tx = state.pool.begin().await?;
    let Some(owner) = db::users::token_owner(&mut *tx, &hash).await? else {
        return Ok(None);
    };
    Ok(db::users::is_admin(&mut *tx, owner.user_id)
        .await?
        .then_some(owner.user_id))
}

fn page(title: &str, body: Markup) -> Html<String> {
    Html(
        html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    title { (title) " · timeline admin" }
                    style { (STYLE) }
                }
                body {
                    header {
                        a href="/admin" { strong { "timeline" } " operations" }
                        form method="post" action="/admin/logout" class="inline" {
                            button type="submit" { "Sign out" }
                        }
                    }
                    main { (body) }
                }
            }
        }
        .into_string(),
    )
}

/// A live page: the same page with a 5-second self-refresh.
fn live_page(title: &str, body: Markup) -> Html<String> {
    let Html(s) = page(title, body);
    Html(s.replacen(
        "<meta charset=\"utf-8\">",
        "<meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"5\">",
        1,
    ))
}

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1d2430}\
header{display:flex;justify-content:space-between;align-items:center;padding:8px 16px;background:#1d2430;color:#fff}\
header a{color:#fff;text-decoration:none}main{padding:8px 16px}h2{margin:20px 0 6px;font-size:16px}\
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #e3e6ea;vertical-align:top}\
th{background:#f4f6f8;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums}\
.paused{color:#b45309;font-weight:600}.dead{color:#b91c1c}.ok{color:#15803d}form.inline{display:inline}\
button{font:inherit;padding:2px 8px;cursor:pointer}.reason{max-width:480px;word-break:break-word}\
.muted{color:#6b7280}";

fn ago(t: DateTime<Utc>) -> String {
    let secs = (Utc::now() - t).num_seconds().max(0);
    match secs {
        0..=89 => format!("{secs} s ago"),
        90..=5399 => format!("{} min ago", secs / 60),
        _ => format!("{} h ago", secs / 3600),
    }
}

fn secs(v: Option<f64>) -> String {
    v.map_or_else(|| "–".to_owned(), |s| format!("{s:.2} s"))
}

/// Minutes of history behind the throughput and wait columns.
const WINDOW_MINUTES: i32 = 15;

async fn overview(
    State(state): State<AppState>,
    Admin(_): Admin,
) -> Result<Html<String>, AdminError> {
    let mut conn = state.pool.begin().await?;
    let gauges = db::queue::gauges(&mut conn).await?;
    let stats = db::admin::queue_stats(&mut conn, WINDOW_MINUTES).await?;
    let workers = db::admin::workers(&mut conn).await?;
    let failures = db::admin::failures(&mut conn, 50).await?;
    let jobs = db::admin::recent_jobs(&mut conn, 30).await?;
    drop(conn);
    let body = html! {
        h2 { "Queues" }
        table id="queues" {
            tr { th { "queue" } th { "pending" } th { "running" } th { "retrying" } th { "failed" }
                 th { "oldest waiting" } th { "done/min (" (WINDOW_MINUTES) " min)" }
                 th { "wait p50" } th { "wait p95" } th { "workers" } th { "state" } th {} }
            @for (g, s) in gauges.iter().zip(&stats) {
                tr data-queue=(g.queue) {
                    td { (g.queue) }
                    td.num { (g.pending) } td.num { (g.running) } td.num { (g.retrying) } td.num { (g.failed) }
                    td.num { (format!("{:.0} s", g.oldest_pending_secs)) }
                    td.num { (format!("{:.1}", s.per_minute)) }
                    td.num { (secs(s.wait_p50)) } td.num { (secs(s.wait_p95)) }
                    td.num { (g.workers_alive) }
                    td { @if s.paused { span.paused { "paused" } } @else { span.ok { "running" } } }
                    td {
                        @if s.paused {
                            form.inline method="post" action={ "/admin/queues/" (g.queue) "/resume" } { button { "Resume" } }
                        } @else {
                            form.inline method="post" action={ "/admin/queues/" (g.queue) "/pause" } { button { "Pause" } }
                        }
                    }
                }
            }
        }
        h2 { "Workers" }
        table id="workers" {
            tr { th { "worker" } th { "queue" } th { "last heartbeat" } }
            @for w in &workers {
                tr {
                    td { (w.name) } td { (w.queue) }
                    td { @if w.alive { span.ok { (ago(w.last_seen)) } } @else { span.dead { (ago(w.last_seen)) " (gone)" } } }
                }
            }
            @if workers.is_empty() { tr { td.dead colspan="3" { "No worker has been seen in the last hour." } } }
        }
        h2 { "Failures" }
        table id="failures" {
            tr { th { "file" } th { "owner" } th { "reason" } th { "attempts" } th { "failed" } th {} }
            @for f in &failures {
                tr data-media=(f.media_id) {
                    td { (f.filename) } td { (f.owner) }
                    td.reason { (f.reason.as_deref().unwrap_or("")) }
                    td.num { (f.attempts) } td { (ago(f.failed_at)) }
                    td {
                        form.inline method="post" action={ "/admin/media/" (f.media_id) "/retry" } { button { "Retry" } }
                        " "
                        form.inline method="post" action={ "/admin/media/" (f.media_id) "/dismiss" } { button { "Dismiss" } }
                    }
                }
            }
            @if failures.is_empty() { tr { td.muted colspan="6" { "No failures." } } }
        }
        h2 { "Jobs" }
        form method="post" action="/admin/reprocess" {
            button { "Reprocess missing steps" }
            span.muted { " queues, at bulk priority, every step without a success at the current pipeline version" }
        }
        (jobs_table(&jobs))
    };
    Ok(live_page("Dashboard", body))
}

fn jobs_table(jobs: &[db::admin::JobRow]) -> Markup {
    html! {
        table id="jobs" {
            tr { th { "job" } th { "owner" } th { "type" } th { "status" } th { "progress" }
                 th { "files" } th { "created" } th {} }
            @for j in jobs {
                tr data-job=(j.id) {
                    td { a href={ "/admin/jobs/" (j.id) } { (&j.id.simple().to_string()[..8]) } }
                    td { (j.owner) } td { (j.job_type) } td { (j.status) }
                    td.num { (j.progress) "%" }
                    td { (j.completed) " done, " (j.failed) " failed, " (j.duplicate) " duplicate of " (j.total) }
                    td { (ago(j.created_at)) }
                    td { @if j.status == "pending" || j.status == "running" {
                        form.inline method="post" action={ "/admin/jobs/" (j.id) "/cancel" } { button { "Cancel" } }
                    } }
                }
            }
        }
    }
}

async fn job_page(
    State(state): State<AppState>,
    Admin(_): Admin,
    Path(id): Path<String>,
) -> Result<Html<String>, AdminError> {
    let id = id_of(&id)?;
    let mut conn = state.pool.begin().await?;
    let job = db::admin::job(&mut conn, id)
        .await?
        .ok_or(AdminError::NotFound)?;
    let files = db::admin::job_files(&mut conn, id, 500).await?;
    drop(conn);
    let body = html! {
        h2 { "Job " (job.id) }
        (jobs_table(std::slice::from_ref(&job)))
        p.muted { "Cancelling drops the job's waiting steps and marks its files that have not ended "
                  "failed with \"cancelled by an operator\" (their owner can retry them); steps already "
                  "running finish." }
        h2 { "Files" @if files.len() as i32 == 500 { " (first 500)" } }
        table id="files" {
            tr { th { "file" } th { "kind" } th { "status" } th { "steps" } th { "reason" } }
            @for f in &files {
                tr data-media=(f.media_id) {
                    td { (f.filename) } td { (f.kind) } td { (f.status) }
                    td { @for s in &f.steps { (s) br; } }
                    td.reason { (f.error.as_deref().unwrap_or("")) }
                }
            }
        }
    };
    Ok(live_page("Job", body))
}

async fn login_page() -> Html<String> {
    login_form(None)
}

fn login_form(error: Option<&str>) -> Html<String> {
    page(
        "Sign in",
        html! {
            h2 { "Sign in" }
            @if let Some(e) = error { p.dead { (e) } }
            form method="post" action="/admin/login" {
                label { "Operator API token " input type="password" name="token" autocomplete="off" required; }
                " " button type="submit" { "Sign in" }
            }
            p.muted { "Create one with " code { "timeline users create --admin --email you@example.org" } "." }
        },
    )
}

#[derive(Debug, serde::Deserialize)]
struct LoginForm {
    token: String,
}

async fn login(
    State(state): State<AppState>,
    Form(form): Form<LoginForm>,
) -> Result<Response, AdminError> {
    let token = form.token.trim();
    if token.is_empty() || token.len() > 256 || admin_for(&state, token).await?.is_none() {
        return Ok((
            StatusCode::UNAUTHORIZED,
            login_form(Some("That is not an operator's token.")),
        )
            .into_response());
    }
    // Tokens are URL-safe characters only; anything else never reaches a header.
    if !token
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Ok((
            StatusCode::UNAUTHORIZED,
            login_form(Some("That is not an operator's token.")),
        )
            .into_response());
    }
    let cookie = format!("{COOKIE}={token}; Path=/admin; HttpOnly; SameSite=Strict; Max-Age=43200");
    Ok(([(header::SET_COOKIE, cookie)], Redirect::to("/admin")).into_response())
}

async fn logout() -> Response {
    let cookie = format!("{COOKIE}=; Path=/admin; HttpOnly; SameSite=Strict; Max-Age=0");
    ([(header::SET_COOKIE, cookie)], Redirect::to("/admin/login")).into_response()
}

fn back() -> Redirect {
    Redirect::to("/admin")
}

async fn retry(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<String>,
) -> Result<Redirect, AdminError> {
    let id = id_of(&id)?;
    let mut tx = state.pool.begin().await?;
    let owner = db::media::owner(&mut *tx, id)
        .await?
        .ok_or(AdminError::NotFound)?;
    // An operator's retry of an old failure is bulk work: fresh uploads go first.
    if let Some(job) = crate::ingest::retry(&mut tx, owner, id, crate::jobs::Lane::Bulk).await? {
        tracing::info!(admin.id = %admin, media.id = %id, job.id = %job.id, "operator retried a failure");
    }
    tx.commit().await?;
    Ok(back())
}

async fn dismiss(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<String>,
) -> Result<Redirect, AdminError> {
    let id = id_of(&id)?;
    let mut tx = state.pool.begin().await?;
    if db::admin::dismiss_failure(&mut tx, id).await? {
        tracing::info!(admin.id = %admin, media.id = %id, "operator dismissed a failure");
    }
    tx.commit().await?;
    Ok(back())
}

/// An id in a path: a malformed one is as unknown as a missing one.
fn id_of(raw: &str) -> Result<Uuid, AdminError> {
    raw.parse().map_err(|_| AdminError::NotFound)
}

fn queue_of(name: &str) -> Result<Step, AdminError> {
    Step::from_queue(name).ok_or(AdminError::NotFound)
}

async fn pause(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(queue): Path<String>,
) -> Result<Redirect, AdminError> {
    let step = queue_of(&queue)?;
    let mut tx = state.pool.begin().await?;
    db::admin::pause(&mut tx, step.queue(), admin).await?;
    tx.commit().await?;
    tracing::warn!(admin.id = %admin, queue = step.queue(), "queue paused");
    Ok(back())
}

async fn resume(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(queue): Path<String>,
) -> Result<Redirect, AdminError> {
    let step = queue_of(&queue)?;
    let mut tx = state.pool.begin().await?;
    db::admin::resume(&mut tx, step.queue()).await?;
    tx.commit().await?;
    tracing::warn!(admin.id = %admin, queue = step.queue(), "queue resumed");
    Ok(back())
}

async fn cancel(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<String>,
) -> Result<Redirect, AdminError> {
    let id = id_of(&id)?;
    let mut tx = state.pool.begin().await?;
    if db::admin::cancel_job(&mut tx, id).await? {
        tracing::warn!(admin.id = %admin, job.id = %id, "job cancelled by an operator");
    }
    tx.commit().await?;
    Ok(Redirect::to(&format!("/admin/jobs/{id}")))
}

async fn reprocess(State(state): State<AppState>, Admin(admin): Admin) -> Redirect {
    // In the background: a big library takes a while to scan, and the jobs it creates show up
    // on the page as they are made.
    tokio::spawn(async move {
        match crate::reprocess::run(&state.pool, crate::reprocess::Scope::Missing(None)).await {
            Ok(r) => tracing::info!(admin.id = %admin, jobs = r.jobs.len(), files = r.files,
                                    "operator queued reprocessing"),
            Err(e) => tracing::error!(admin.id = %admin, error = %e, "reprocessing failed"),
        }
    });
    back()
}

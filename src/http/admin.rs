//! The operators' jobs dashboard at `/admin`: queues (depth, throughput, waits, pause), live
//! workers, failures (retry, dismiss), jobs (page, cancel), reprocess. Server-rendered HTML
//! (maud: escaped at compile time) with no script; pages refresh themselves every 5 seconds.
//!
//! Operators only: a user with role `admin` signs in with one of their API tokens and gets a
//! server-side session; every form carries a CSRF token (see `admin_session`). Anyone else
//! gets the sign-in page, never the data.

use axum::Router;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, html};
use uuid::Uuid;

use super::AppState;
use super::admin_session::{self as session, Admin, AdminPost, STYLE};
use crate::db;

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
        .layer(axum::middleware::from_fn(session::security_headers))
}

/// Why a dashboard request failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("sign in first")]
    SignIn,
    #[error("a form post that did not come from the dashboard")]
    Forged,
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
            Self::Forged => session::forged(),
            Self::NotFound => (
                StatusCode::NOT_FOUND,
                page("Not found", None, html! { p { "Not found." } }),
            )
                .into_response(),
            other => {
                tracing::error!(error = %other, "dashboard request failed");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    page("Unavailable", None, html! { p { "The dashboard could not read the database; it retries by itself." } }),
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

/// The hidden field that proves a form came from the dashboard (nothing for a bearer caller).
fn csrf_input(csrf: Option<&str>) -> Markup {
    html! { @if let Some(t) = csrf { input type="hidden" name="csrf" value=(t); } }
}

/// A dashboard page; `admin` is who is signed in (none on the sign-in page).
fn page(title: &str, admin: Option<&Admin>, body: Markup) -> Html<String> {
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
                        @if let Some(a) = admin {
                            form method="post" action="/admin/logout" class="inline" {
                                (csrf_input(a.csrf.as_deref()))
                                button type="submit" { "Sign out" }
                            }
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
fn live_page(title: &str, admin: &Admin, body: Markup) -> Html<String> {
    let Html(s) = page(title, Some(admin), body);
    Html(s.replacen(
        "<meta charset=\"utf-8\">",
        "<meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"5\">",
        1,
    ))
}

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

async fn overview(State(state): State<AppState>, admin: Admin) -> Result<Html<String>, AdminError> {
    let csrf = admin.csrf.as_deref();
    let mut conn = state.db.begin().await?;
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
                            form.inline method="post" action={ "/admin/queues/" (g.queue) "/resume" } { (csrf_input(csrf)) button { "Resume" } }
                        } @else {
                            form.inline method="post" action={ "/admin/queues/" (g.queue) "/pause" } { (csrf_input(csrf)) button { "Pause" } }
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
                        form.inline method="post" action={ "/admin/media/" (f.media_id) "/retry" } { (csrf_input(csrf)) button { "Retry" } }
                        " "
                        form.inline method="post" action={ "/admin/media/" (f.media_id) "/dismiss" } { (csrf_input(csrf)) button { "Dismiss" } }
                    }
                }
            }
            @if failures.is_empty() { tr { td.muted colspan="6" { "No failures." } } }
        }
        h2 { "Jobs" }
        form method="post" action="/admin/reprocess" {
            (csrf_input(csrf))
            button { "Reprocess missing steps" }
            span.muted { " queues, at bulk priority, every step without a success at the current pipeline version" }
        }
        (jobs_table(&jobs, csrf))
    };
    Ok(live_page("Dashboard", &admin, body))
}

fn jobs_table(jobs: &[db::admin::JobRow], csrf: Option<&str>) -> Markup {
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
                        form.inline method="post" action={ "/admin/jobs/" (j.id) "/cancel" } { (csrf_input(csrf)) button { "Cancel" } }
                    } }
                }
            }
        }
    }
}

async fn job_page(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> Result<Html<String>, AdminError> {
    let id = id_of(&id)?;
    let mut conn = state.db.begin().await?;
    let job = db::admin::job(&mut conn, id)
        .await?
        .ok_or(AdminError::NotFound)?;
    let files = db::admin::job_files(&mut conn, id, 500).await?;
    drop(conn);
    let body = html! {
        h2 { "Job " (job.id) }
        (jobs_table(std::slice::from_ref(&job), admin.csrf.as_deref()))
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
    Ok(live_page("Job", &admin, body))
}

async fn login_page() -> Html<String> {
    login_form(None)
}

fn login_form(error: Option<&str>) -> Html<String> {
    page(
        "Sign in",
        None,
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
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Result<Response, AdminError> {
    if !state.site.same_origin(&headers) {
        return Err(AdminError::Forged);
    }
    let token = form.token.trim();
    let admin = if token.is_empty() || token.len() > 256 {
        None
    } else {
        session::admin_for_token(&state, &crate::auth::hash_token(token)).await?
    };
    let Some(admin) = admin else {
        return Ok((
            StatusCode::UNAUTHORIZED,
            login_form(Some("That is not an operator's token.")),
        )
            .into_response());
    };
    let id = crate::auth::generate_session_id();
    db::sessions::create(
        state.db.pool(),
        &crate::auth::hash_token(&id),
        admin,
        session::LIFETIME_SECS as f64,
    )
    .await?;
    tracing::info!(admin.id = %admin, "operator signed in to the dashboard");
    let cookie = state.site.session_cookie(&id);
    Ok(([(header::SET_COOKIE, cookie)], Redirect::to("/admin")).into_response())
}

/// Ends the session server-side (a copied cookie no longer works) and drops the cookie.
async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    AdminPost(admin): AdminPost,
) -> Result<Response, AdminError> {
    if let Some(id) = session::session_id_of(&headers) {
        db::sessions::revoke(state.db.pool(), &crate::auth::hash_token(id)).await?;
        tracing::info!(admin.id = %admin.id, "operator signed out of the dashboard");
    }
    let cookie = state.site.cleared_cookie();
    Ok(([(header::SET_COOKIE, cookie)], Redirect::to("/admin/login")).into_response())
}

fn back() -> Redirect {
    Redirect::to("/admin")
}

async fn retry(
    State(state): State<AppState>,
    Path(id): Path<String>,
    AdminPost(Admin { id: admin, .. }): AdminPost,
) -> Result<Redirect, AdminError> {
    let id = id_of(&id)?;
    let mut tx = state.db.begin().await?;
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
    Path(id): Path<String>,
    AdminPost(Admin { id: admin, .. }): AdminPost,
) -> Result<Redirect, AdminError> {
    let id = id_of(&id)?;
    let mut tx = state.db.begin().await?;
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

/// A queue the dashboard shows (each pauses: a step's, or the library's).
fn queue_of(name: &str) -> Result<&'static str, AdminError> {
    db::queue::QUEUES
        .into_iter()
        .find(|q| *q == name)
        .ok_or(AdminError::NotFound)
}

async fn pause(
    State(state): State<AppState>,
    Path(queue): Path<String>,
    AdminPost(Admin { id: admin, .. }): AdminPost,
) -> Result<Redirect, AdminError> {
    let queue = queue_of(&queue)?;
    let mut tx = state.db.begin().await?;
    db::admin::pause(&mut tx, queue, admin).await?;
    tx.commit().await?;
    tracing::warn!(admin.id = %admin, queue, "queue paused");
    Ok(back())
}

async fn resume(
    State(state): State<AppState>,
    Path(queue): Path<String>,
    AdminPost(Admin { id: admin, .. }): AdminPost,
) -> Result<Redirect, AdminError> {
    let queue = queue_of(&queue)?;
    let mut tx = state.db.begin().await?;
    db::admin::resume(&mut tx, queue).await?;
    tx.commit().await?;
    tracing::warn!(admin.id = %admin, queue, "queue resumed");
    Ok(back())
}

async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<String>,
    AdminPost(Admin { id: admin, .. }): AdminPost,
) -> Result<Redirect, AdminError> {
    let id = id_of(&id)?;
    let mut tx = state.db.begin().await?;
    if db::admin::cancel_job(&mut tx, id).await? {
        tracing::warn!(admin.id = %admin, job.id = %id, "job cancelled by an operator");
    }
    tx.commit().await?;
    Ok(Redirect::to(&format!("/admin/jobs/{id}")))
}

async fn reprocess(
    State(state): State<AppState>,
    AdminPost(Admin { id: admin, .. }): AdminPost,
) -> Redirect {
    // In the background: a big library takes a while to scan, and the jobs it creates show up
    // on the page as they are made.
    tokio::spawn(async move {
        match crate::reprocess::run(state.db.pool(), crate::reprocess::Scope::Missing(None)).await {
            Ok(r) => tracing::info!(admin.id = %admin, jobs = r.jobs.len(), files = r.files,
                                    "operator queued reprocessing"),
            Err(e) => tracing::error!(admin.id = %admin, error = %e, "reprocessing failed"),
        }
    });
    back()
}

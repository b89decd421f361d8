//! The reconciler finishes or cleans what crashes leave behind: a file whose queue task
//! vanished, a file whose last step did its work but whose bookkeeping never committed (a
//! worker killed between the two), and objects written by an upload that was killed before its
//! transaction (`timeline serve` killed with -9 mid-upload). It decides from rows only: an
//! object that no row names, of which no row says it is being written, is never touched by the
//! periodic pass (the operator's `timeline maintenance`, which audits the store, finds those). After one `timeline
//! maintenance` pass and a worker, nothing is stuck and the store holds exactly the objects
//! the rows name.

use std::process::{Command, Stdio};
use std::time::Duration;

use sqlx::PgPool;

use crate::common::{TestApp, fixtures, url_of, walk};
use crate::ingest_cli::timeline_bin;

/// Runs the periodic pass on demand (`timeline maintenance --grace S --no-audit-store`, what
/// every worker runs on its own) and returns its reconcile report.
pub fn maintenance(app: &TestApp, grace: u64) -> serde_json::Value {
    maintenance_with(app, grace, &["--no-audit-store"])["reconcile"].clone()
}

/// Runs `timeline maintenance --grace S ARGS…` and returns its whole report.
pub fn maintenance_with(app: &TestApp, grace: u64, args: &[&str]) -> serde_json::Value {
    let out = Command::new(timeline_bin())
        .args(["maintenance", "--grace", &grace.to_string()])
        .args(args)
        .env("DATABASE_URL", url_of(&app.pool))
        .env("TIMELINE_STORAGE", &app.storage_dir)
        .output()
        .expect("timeline maintenance");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json")
}

/// Waits out the shortest stall after which an upload session counts as abandoned.
pub async fn wait_stall() {
    tokio::time::sleep(timeline::inflight::STALL_MIN + Duration::from_secs(2)).await;
}

/// Pending objects and open upload sessions left.
pub async fn in_flight(pool: &PgPool) -> (i64, i64) {
    sqlx::query_as(
        "SELECT (SELECT count(*) FROM pending_objects), (SELECT count(*) FROM upload_sessions)",
    )
    .fetch_one(pool)
    .await
    .expect("in flight")
}

/// Every object in the store belongs to a media row (its original, thumb or preview path).
pub async fn objects_match_rows(app: &TestApp) -> (usize, usize) {
    let named: Vec<(String, Option<String>, Option<String>)> =
        sqlx::query_as("SELECT file_path, thumbnail_path, preview_path FROM media_files WHERE duplicate_of IS NULL")
            .fetch_all(&app.pool)
            .await
            .expect("rows");
    let mut keys: Vec<String> = named
        .into_iter()
        .flat_map(|(o, t, p)| [Some(o), t, p])
        .flatten()
        .collect();
    keys.sort();
    let root = std::fs::canonicalize(&app.storage_dir).expect("root");
    let mut stored: Vec<String> = walk(&root)
        .into_iter()
        .map(|p| {
            p.strip_prefix(&root)
                .expect("under root")
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    stored.sort();
    assert_eq!(
        stored, keys,
        "the store must hold exactly the objects the rows name"
    );
    (stored.len(), keys.len())
}

#[sqlx::test(migrations = false)]
async fn one_pass_repairs_lost_tasks_unfinished_steps_and_orphan_objects(pool: PgPool) {
    let mut app = TestApp::start(pool, false).await;
    let (user, token) = app.user("crash@example.org").await;
    let jpeg = |n: &str| std::fs::read(fixtures().join(n)).expect("fixture");
    let (status, body) = app
        .upload(
            &token,
            &[
                ("a.jpg", jpeg("no_exif.jpg")),
                ("b.jpg", jpeg("landscape_1.jpg")),
            ],
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let a = body["media"][0]["id"].as_str().expect("a").to_owned();
    let b = body["media"][1]["id"].as_str().expect("b").to_owned();
    // a: its queue task vanished. b: its hash step "ran" (task done) but nothing was recorded,
    // as when a worker is killed between a step's work and its finish().
    sqlx::query(
        "DELETE FROM apalis.jobs WHERE convert_from(job, 'UTF8')::jsonb ->> 'media_file_id' = $1",
    )
    .bind(&a)
    .execute(&app.pool)
    .await
    .expect("lose a's task");
    sqlx::query("UPDATE apalis.jobs SET status = 'Done', done_at = now() WHERE convert_from(job, 'UTF8')::jsonb ->> 'media_file_id' = $1")
        .bind(&b)
        .execute(&app.pool)
        .await
        .expect("finish b's task");
    sqlx::query("UPDATE media_files SET processing_status = 'processing' WHERE id = $1::uuid")
        .bind(&b)
        .execute(&app.pool)
        .await
        .expect("b processing");
    // An object that no row names and no row says is being written (left by a release from
    // before upload sessions, or put there by hand): the periodic pass never lists the store,
    // so only the operator's audit finds it.
    let orphan = app
        .storage_dir
        .join(format!("media/{user}/{}/original", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(orphan.parent().expect("dir")).expect("mkdir");
    std::fs::write(&orphan, b"half an upload").expect("orphan");

    // Inside the grace period nothing is touched.
    let report = maintenance(&app, 3600);
    assert_eq!(report["requeued_files"], 0, "{report}");
    assert_eq!(report["orphan_objects_deleted"], 0, "{report}");
    assert!(orphan.exists());

    let report = maintenance(&app, 0);
    assert_eq!(report["requeued_files"], 2, "{report}");
    assert_eq!(report["orphan_objects_deleted"], 0, "{report}");
    assert!(
        orphan.exists(),
        "the periodic pass never deletes what no row speaks of"
    );
    // The operator's `timeline maintenance` audits the store too (API.md: objects no row
    // names, older than the grace period, are deleted): a young orphan is spared by a long
    // grace, then deleted.
    let audit = maintenance_with(&app, 3600, &[])["audit"].clone();
    assert_eq!(audit["orphan_objects_deleted"], 0, "{audit}");
    assert_eq!(audit["finished"], true, "{audit}");
    assert!(orphan.exists(), "younger than the grace period");
    // One audit at a time: while another holds the audit's lock, this one does nothing.
    let mut other = app.pool.acquire().await.expect("conn");
    let held: bool =
        sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtext('timeline_store_audit'))")
            .fetch_one(&mut *other)
            .await
            .expect("lock");
    assert!(held);
    let audit = maintenance_with(&app, 0, &[])["audit"].clone();
    assert_eq!(audit["skipped_another_running"], true, "{audit}");
    assert!(orphan.exists());
    sqlx::query("SELECT pg_advisory_unlock(hashtext('timeline_store_audit'))")
        .execute(&mut *other)
        .await
        .expect("unlock");
    drop(other);
    let audit = maintenance_with(&app, 0, &[])["audit"].clone();
    assert_eq!(audit["orphan_objects_deleted"], 1, "{audit}");
    assert_eq!(audit["finished"], true, "{audit}");
    assert!(!orphan.exists() && !orphan.parent().expect("dir").exists());

    app.start_worker(&[]);
    for id in [&a, &b] {
        for _ in 0..300 {
            let (_, m) = app.get(&token, &format!("/v1/media/{id}")).await;
            if m["processing_status"] == "completed" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let (_, m) = app.get(&token, &format!("/v1/media/{id}")).await;
        assert_eq!(m["processing_status"], "completed", "{m}");
    }
    let job = body["job"]["id"].as_str().expect("job");
    app.wait_job(&token, job, Duration::from_secs(30)).await;
    let (stored, _) = objects_match_rows(&app).await;
    assert_eq!(stored, 6);
    // A second pass finds nothing; a pass while another process leads does nothing.
    let report = maintenance(&app, 0);
    assert_eq!(
        (
            report["requeued_files"].as_u64(),
            report["orphan_objects_deleted"].as_u64()
        ),
        (Some(0), Some(0))
    );
    let mut holder = app.pool.acquire().await.expect("conn");
    assert!(
        timeline::db::reconcile::try_lead(&mut holder)
            .await
            .expect("lock")
    );
    assert_eq!(maintenance(&app, 0)["skipped_not_leader"], true);
    timeline::db::reconcile::release(&mut holder)
        .await
        .expect("unlock");
}

#[sqlx::test(migrations = false)]
async fn an_api_killed_mid_upload_leaves_nothing_after_a_pass(pool: PgPool) {
    let app = TestApp::start(pool, false).await;
    let (_, token) = app.user("killed@example.org").await;
    let mut serve = app.spawn_serve().await;
    let base = serve.base.clone();
    // A 40 MB video sent slowly, so the server is killed while it streams to the store.
    let dir = crate::video::tempdir("killed");
    let big = dir.join("slow.mp4");
    let mut bytes =
        std::fs::read(crate::video::video_dir().join("Issue 515 (java).mp4")).expect("clip");
    bytes.resize(40 << 20, 0);
    std::fs::write(&big, &bytes).expect("write");
    let mut curl = Command::new("curl")
        .args(["-sS", "--limit-rate", "4M", "-X", "POST", "-T"])
        .arg(&big)
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .arg(format!("{base}/v1/media?filename=slow.mp4"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("curl");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let _ = Command::new("kill")
        .args(["-9", &serve.child.id().to_string()])
        .status();
    let _ = serve.child.wait();
    let _ = curl.wait();
    let left = walk(&app.storage_dir);
    assert!(
        !left.is_empty(),
        "the kill should have left a partial upload behind"
    );
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM media_files")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(rows, 0);
    // The session's row named the object before its first byte; until its heartbeat has been
    // silent for the shortest stall, a pass leaves it alone.
    assert_eq!(in_flight(&app.pool).await, (1, 1));
    let report = maintenance(&app, 0);
    assert_eq!(report["sessions_aborted"], 0, "{report}");
    assert!(!walk(&app.storage_dir).is_empty());
    wait_stall().await;
    let report = maintenance(&app, 0);
    assert_eq!(report["sessions_aborted"], 1, "{report}");
    assert!(
        report["orphan_objects_deleted"].as_u64() >= Some(1),
        "{report}"
    );
    assert_eq!(
        walk(&app.storage_dir),
        Vec::<std::path::PathBuf>::new(),
        "{report}"
    );
    assert_eq!(in_flight(&app.pool).await, (0, 0));
    let _ = std::fs::remove_dir_all(dir);
}

#[sqlx::test(migrations = false)]
async fn a_worker_killed_between_its_work_and_its_finish_leaves_nothing_behind(pool: PgPool) {
    let mut app = TestApp::start(pool, false).await;
    let held = renditions_stored_not_committed(&mut app, "killed-worker@example.org").await;
    let (token, media, job, thumb) = (held.token, held.media, held.job, held.thumb);
    // Killed in the window: objects written, nothing recorded.
    app.signal_worker("KILL");
    assert!(app.wait_worker_exit(Duration::from_secs(10)).is_some());
    let (_, m) = app.get(&token, &format!("/v1/media/{media}")).await;
    assert_eq!(m["processing_status"], "processing", "{m}");
    assert!(m["thumbnails"].is_null(), "{m}");

    // One pass: the renditions are named by the step's pending rows, and its task may still
    // run (apalis hands it back once the worker's heartbeats stop): nothing is touched, though
    // no media row names them yet.
    let report = maintenance(&app, 0);
    assert_eq!(report["orphan_objects_deleted"], 0, "{report}");
    assert_eq!(report["pending_objects_settled"], 0, "{report}");
    assert!(thumb.exists());
    assert_eq!(in_flight(&app.pool).await.0, 2);

    // A new worker takes the task back and finishes the file, once; its final transaction
    // settles the pending rows.
    app.start_worker(&[]);
    let done = app.wait_job(&token, &job, Duration::from_secs(90)).await;
    assert_eq!(done["output_data"]["completed"], 1, "{done}");
    let (stored, named) = objects_match_rows(&app).await;
    assert_eq!((stored, named), (3, 3));
    let steps: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM media_processing_steps WHERE media_file_id = $1::uuid AND status = 'succeeded'",
    )
    .bind(&media)
    .fetch_one(&app.pool)
    .await
    .expect("steps");
    assert_eq!(steps, 3, "hash, exif and thumbnail recorded once each");
    assert_eq!(maintenance(&app, 0)["requeued_files"], 0);
    assert_eq!(in_flight(&app.pool).await, (0, 0));
}

#[sqlx::test(migrations = false)]
async fn renditions_of_a_step_whose_task_is_dead_are_deleted(pool: PgPool) {
    let mut app = TestApp::start(pool, false).await;
    let held = renditions_stored_not_committed(&mut app, "dead-task@example.org").await;
    let (user, media, thumb) = (held.user, held.media, held.thumb);
    app.signal_worker("KILL");
    assert!(app.wait_worker_exit(Duration::from_secs(10)).is_some());
    // The task can no longer run (an operator killed it): the step's objects are cleaned.
    sqlx::query(
        "UPDATE apalis.jobs SET status = 'Killed', done_at = now() WHERE job_type = 'thumbnail'",
    )
    .execute(&app.pool)
    .await
    .expect("kill the task");
    let report = maintenance(&app, 3600);
    assert_eq!(report["orphan_objects_deleted"], 2, "{report}");
    assert!(!thumb.exists());
    assert_eq!(in_flight(&app.pool).await, (0, 0));
    // The original is named by its row and stays.
    assert!(
        app.storage_dir
            .join(format!("media/{user}/{media}/original"))
            .exists()
    );
}

/// The thumbnail step of an uploaded photo has no first transaction: the hash step's names
/// its keys for its task, and its final one loads and checks the file. A photo deleted while
/// its renditions render ends with nothing recorded and nothing stored, at the first attempt.
#[sqlx::test(migrations = false)]
async fn a_photo_deleted_while_its_thumbnail_renders_leaves_nothing(pool: PgPool) {
    let mut app = TestApp::start(pool, false).await;
    let (user, token) = app.user("deleted-mid-step@example.org").await;
    app.start_worker_env(&[], &[("TIMELINE_TEST_PAUSE_BEFORE_FINISH_SECS", "4")]);
    let photo = std::fs::read(fixtures().join("landscape_1.jpg")).expect("fixture");
    let (status, body) = app.upload(&token, &[("a.jpg", photo)]).await;
    assert_eq!(status, 202, "{body}");
    let media = body["media"][0]["id"].as_str().expect("id").to_owned();
    let dir = app.storage_dir.join(format!("media/{user}/{media}"));
    crate::common::wait_for_file(&dir.join("thumb")).await;

    // The keys the step writes were named for its own task by the hash step's transaction.
    let (task, status): (String, String) =
        sqlx::query_as("SELECT id, status FROM apalis.jobs WHERE job_type = 'thumbnail'")
            .fetch_one(&app.pool)
            .await
            .expect("thumbnail task");
    assert_eq!(status, "Running");
    let named: Vec<(String, Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT object_key, step, task_id FROM pending_objects WHERE media_file_id = $1::uuid
         ORDER BY object_key",
    )
    .bind(&media)
    .fetch_all(&app.pool)
    .await
    .expect("pending");
    assert_eq!(named.len(), 2, "{named:?}");
    for (key, step, task_id) in &named {
        assert!(
            key.ends_with("/preview") || key.ends_with("/thumb"),
            "{key}"
        );
        assert_eq!(
            (step.as_deref(), task_id.as_deref()),
            (Some("thumbnail"), Some(task.as_str()))
        );
    }

    let deleted = reqwest::Client::new()
        .delete(format!("{}/v1/media/{media}", app.base))
        .bearer_auth(&token)
        .send()
        .await
        .expect("delete");
    assert_eq!(deleted.status().as_u16(), 204);

    // The step wakes, finds the file gone, drops what it stored; its task ends done, once.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let (status, attempts) = loop {
        let (status, attempts): (String, i32) =
            sqlx::query_as("SELECT status, attempts FROM apalis.jobs WHERE id = $1")
                .bind(&task)
                .fetch_one(&app.pool)
                .await
                .expect("task");
        if status != "Running" || std::time::Instant::now() > deadline {
            break (status, attempts);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!((status.as_str(), attempts), ("Done", 1));
    assert!(walk(&dir).is_empty(), "left in the store: {:?}", walk(&dir));
    assert_eq!(in_flight(&app.pool).await, (0, 0));
    let rows: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM media_files) + (SELECT count(*) FROM media_processing_steps)",
    )
    .fetch_one(&app.pool)
    .await
    .expect("rows");
    assert_eq!(rows, 0);
    assert!(app.worker_alive());
}

#[sqlx::test(migrations = false)]
async fn an_api_killed_inside_its_transaction_leaves_nothing_after_a_pass(pool: PgPool) {
    let app = TestApp::start(pool, false).await;
    let (_, token) = app.user("killed-tx@example.org").await;
    // The upload's objects are stored and its rows written, then it waits before committing.
    let mut serve = app
        .spawn_serve_env(&[("TIMELINE_TEST_PAUSE_BEFORE_COMMIT_SECS", "120")])
        .await;
    let form = reqwest::multipart::Form::new()
        .part(
            "file",
            reqwest::multipart::Part::bytes(
                std::fs::read(fixtures().join("no_exif.jpg")).expect("a"),
            )
            .file_name("a.jpg"),
        )
        .part(
            "file",
            reqwest::multipart::Part::bytes(
                std::fs::read(fixtures().join("landscape_1.jpg")).expect("b"),
            )
            .file_name("b.jpg"),
        );
    let request = app
        .http
        .post(format!("{}/v1/media", serve.base))
        .bearer_auth(&token)
        .multipart(form)
        .send();
    let pending = tokio::spawn(request);
    // Inside the transaction: both originals stored, and the rows exist (uncommitted).
    let started = std::time::Instant::now();
    loop {
        let inside = idle_in_transaction(&app.pool).await;
        if inside > 0 && walk(&app.storage_dir).len() >= 2 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "never inside the transaction"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = Command::new("kill")
        .args(["-9", &serve.child.id().to_string()])
        .status();
    let _ = serve.child.wait();
    let _ = pending.await;
    // PostgreSQL rolls the transaction back as soon as it sees the connection gone.
    let started = std::time::Instant::now();
    while idle_in_transaction(&app.pool).await > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the transaction lingers"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The transaction died with the process: no rows, no job, no task; the objects stay.
    let (rows, jobs, tasks): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM media_files), (SELECT count(*) FROM data_processing_jobs),
                (SELECT count(*) FROM apalis.jobs)",
    )
    .fetch_one(&app.pool)
    .await
    .expect("counts");
    assert_eq!((rows, jobs, tasks), (0, 0, 0));
    assert_eq!(
        walk(&app.storage_dir).len(),
        2,
        "the two originals are left behind"
    );
    // The session outlived its transaction: aborted once its heartbeat is silent.
    wait_stall().await;
    let report = maintenance(&app, 0);
    assert_eq!(report["sessions_aborted"], 1, "{report}");
    assert_eq!(report["orphan_objects_deleted"], 2, "{report}");
    assert_eq!(
        walk(&app.storage_dir),
        Vec::<std::path::PathBuf>::new(),
        "{report}"
    );
    assert_eq!(in_flight(&app.pool).await, (0, 0));
}

/// Connections of the test's database holding an open transaction while idle.
async fn idle_in_transaction(pool: &PgPool) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity
         WHERE datname = current_database() AND state = 'idle in transaction'",
    )
    .fetch_one(pool)
    .await
    .expect("activity")
}

/// A photo whose thumbnail step has stored its renditions and waits (120 s) before its final
/// transaction: a worker held between its work and its bookkeeping.
pub struct Held {
    pub user: uuid::Uuid,
    pub token: String,
    pub media: String,
    pub job: String,
    pub thumb: std::path::PathBuf,
}

/// Starts a worker whose thumbnail steps pause before committing, uploads a photo for a new
/// user `email`, and waits until its renditions are stored.
pub async fn renditions_stored_not_committed(app: &mut TestApp, email: &str) -> Held {
    let (user, token) = app.user(email).await;
    app.start_worker_env(&[], &[("TIMELINE_TEST_PAUSE_BEFORE_FINISH_SECS", "120")]);
    let photo = std::fs::read(fixtures().join("landscape_1.jpg")).expect("fixture");
    let (status, body) = app.upload(&token, &[("a.jpg", photo)]).await;
    assert_eq!(status, 202, "{body}");
    let media = body["media"][0]["id"].as_str().expect("id").to_owned();
    let job = body["job"]["id"].as_str().expect("job").to_owned();
    let thumb = app.storage_dir.join(format!("media/{user}/{media}/thumb"));
    crate::common::wait_for_file(&thumb).await;
    Held {
        user,
        token,
        media,
        job,
        thumb,
    }
}

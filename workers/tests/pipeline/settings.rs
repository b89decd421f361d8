//! Every setting seeded into `system_configuration` is read — by the real `timeline serve` and
//! `timeline-worker` processes at start-up — and an environment variable wins over it.

use std::time::Duration;

use sqlx::PgPool;

use crate::common::{TestApp, fixtures};

async fn set(pool: &PgPool, key: &str, value: serde_json::Value) {
    sqlx::query(
        "INSERT INTO system_configuration (config_key, config_value, description)
         VALUES ($1, $2, 'test') ON CONFLICT (config_key) DO UPDATE SET config_value = $2",
    )
    .bind(key)
    .bind(value)
    .execute(pool)
    .await
    .expect("setting");
}

async fn post(
    app: &TestApp,
    base: &str,
    token: &str,
    name: &str,
    bytes: Vec<u8>,
) -> (u16, serde_json::Value) {
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(bytes).file_name(name.to_owned()),
    );
    let r = app
        .http
        .post(format!("{base}/v1/media"))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .expect("upload");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or_default())
}

#[sqlx::test(migrations = false)]
async fn recorded_settings_steer_the_processes_and_the_environment_wins(pool: PgPool) {
    let mut app = TestApp::start(pool, false).await;
    let (_, token) = app.user("settings@example.org").await;
    let jpeg = std::fs::read(fixtures().join("DSCN0010.jpg")).expect("fixture");
    let png = std::fs::read(fixtures().join("png_raw_profile_exif.png")).expect("fixture");
    set(
        &app.pool,
        "upload.max_file_bytes",
        serde_json::json!(jpeg.len() + 10),
    )
    .await;
    set(
        &app.pool,
        "upload.allowed_types",
        serde_json::json!(["image/jpeg", "video/mp4"]),
    )
    .await;
    set(&app.pool, "jobs.max_attempts", serde_json::json!(3)).await;
    set(&app.pool, "media.max_pixels", serde_json::json!(1000)).await;
    set(&app.pool, "geocoding.max_distance_km", serde_json::json!(0)).await;

    // upload.*: a type not listed is 415, a file over the recorded size 413.
    let serve = app.spawn_serve().await;
    let (status, body) = post(&app, &serve.base, &token, "a.png", png.clone()).await;
    assert_eq!(status, 415, "{body}");
    let mut big = jpeg.clone();
    big.extend_from_slice(&[0; 64]);
    let (status, body) = post(&app, &serve.base, &token, "big.jpg", big).await;
    assert_eq!(status, 413, "{body}");
    let (status, body) = post(&app, &serve.base, &token, "ok.jpg", jpeg.clone()).await;
    assert_eq!(status, 202, "{body}");
    let job = body["job"]["id"].as_str().expect("job").to_owned();
    let id = body["media"][0]["id"].as_str().expect("id").to_owned();
    // jobs.max_attempts: the queue tasks carry it.
    let attempts: Vec<i32> = sqlx::query_scalar("SELECT DISTINCT max_attempts FROM apalis.jobs")
        .fetch_all(&app.pool)
        .await
        .expect("queue");
    assert_eq!(attempts, vec![3]);
    drop(serve);

    // The environment wins over the record.
    let serve = app
        .spawn_serve_env(&[
            ("TIMELINE_ALLOWED_TYPES", "image/png"),
            ("TIMELINE_MAX_FILE_BYTES", "100000000"),
        ])
        .await;
    let (status, body) = post(&app, &serve.base, &token, "a.png", png).await;
    assert_eq!(status, 202, "{body}");
    drop(serve);

    // media.max_pixels refuses the 640×480 photo as too large.
    app.start_worker(&[]);
    app.wait_job(&token, &job, Duration::from_secs(60)).await;
    let (_, m) = app.get(&token, &format!("/v1/media/{id}")).await;
    assert_eq!(m["processing_status"], "failed", "{m}");
    let reason = m["error_message"].as_str().unwrap_or_default();
    assert!(reason.contains("1000-pixel limit"), "{reason}");

    // geocoding.max_distance_km = 0 names no place for the fix (the fix itself is kept).
    if let Some(mut w) = app.worker.take() {
        let _ = w.kill();
        let _ = w.wait();
    }
    sqlx::query("DELETE FROM system_configuration WHERE config_key = 'media.max_pixels'")
        .execute(&app.pool)
        .await
        .expect("delete");
    app.start_worker(&[]);
    let mut copy = jpeg;
    copy.extend_from_slice(b"another copy");
    let (status, body) = app.upload(&token, &[("tuscany.jpg", copy)]).await;
    assert_eq!(status, 202, "{body}");
    let job = app
        .wait_job(
            &token,
            body["job"]["id"].as_str().expect("job"),
            Duration::from_secs(60),
        )
        .await;
    assert_eq!(job["output_data"]["completed"], 1, "{job}");
    let (_, m) = app
        .get(
            &token,
            &format!("/v1/media/{}", body["media"][0]["id"].as_str().expect("id")),
        )
        .await;
    let location = &m["location"];
    assert!(location["latitude"].is_number(), "{m}");
    assert!(
        location["city"].is_null(),
        "no place within 0 km: {location}"
    );
}

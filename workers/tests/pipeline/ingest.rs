//! The whole pipeline over the repository's fixtures: hash, EXIF, GPS, thumbnails, progress,
//! duplicates, the timeline list and deletion, checked against exiftool's values.

use std::time::Duration;

use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::PgPool;

use crate::common::{TestApp, fixtures};

/// `expected.json`: exiftool's reference values for each good fixture.
fn expected() -> serde_json::Map<String, Value> {
    let raw = std::fs::read_to_string(fixtures().join("expected.json")).unwrap();
    let v: Value = serde_json::from_str(&raw).unwrap();
    v["files"].as_object().unwrap().clone()
}

/// Decoded size of a served thumbnail.
fn image_size(bytes: &[u8]) -> (u32, u32) {
    let img = image::load_from_memory(bytes).unwrap();
    (img.width(), img.height())
}

fn short_edge((w, h): (u32, u32)) -> u32 {
    w.min(h)
}

/// Checks one ingested photo against its reference values (`want`, in `expected.json`'s shape:
/// sha256, GPSLatitude/GPSLongitude, DateTimeOriginal, OffsetTimeOriginal, display size).
pub(crate) async fn check_photo(app: &TestApp, token: &str, name: &str, want: &Value, m: &Value) {
    let id = m["id"].as_str().unwrap();
    assert_eq!(m["processing_status"], "completed", "{name}: {m}");
    assert_eq!(m["file_hash"], want["sha256"], "{name}");

    match (want["GPSLatitude"].as_f64(), want["GPSLongitude"].as_f64()) {
        // 0/0 is the "no fix" placeholder phones write (see timeline_media::exif::gps).
        (Some(lat), Some(lon)) if (lat, lon) != (0.0, 0.0) => {
            let loc = &m["location"];
            assert!(
                (loc["latitude"]
                    .as_f64()
                    .unwrap_or_else(|| panic!("{name}: no location: {m}"))
                    - lat)
                    .abs()
                    < 1e-5,
                "{name}: {loc}"
            );
            assert!(
                (loc["longitude"]
                    .as_f64()
                    .unwrap_or_else(|| panic!("{name}: no location: {m}"))
                    - lon)
                    .abs()
                    < 1e-5,
                "{name}: {loc}"
            );
            assert!(
                loc["timezone"].is_string(),
                "{name}: a GPS photo gets a time zone: {loc}"
            );
        }
        _ => assert!(m["location"].is_null(), "{name}: no GPS, no location: {m}"),
    }
    if let Some(dto) = want["DateTimeOriginal"].as_str() {
        // "2008:10:22 16:28:39" → the local wall-clock part of taken_at.
        let local = dto.replacen(':', "-", 2).replace(' ', "T");
        let taken = m["taken_at"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: no taken_at: {m}"));
        assert!(
            taken.starts_with(&local),
            "{name}: taken_at {taken} vs DateTimeOriginal {dto}"
        );
        if let Some(offset) = want["OffsetTimeOriginal"].as_str() {
            assert!(
                taken.ends_with(offset),
                "{name}: taken_at {taken} lacks offset {offset}"
            );
        }
    }
    let display = (
        m["width"].as_u64().unwrap() as u32,
        m["height"].as_u64().unwrap() as u32,
    );
    if let (Some(w), Some(h)) = (
        want["display_width"].as_u64(),
        want["display_height"].as_u64(),
    ) {
        assert_eq!(display, (w as u32, h as u32), "{name}: displayed size");
    }
    for (kind, edge) in [("thumb", 250), ("preview", 1440)] {
        let (status, img) = app
            .get_bytes(token, &format!("/v1/media/{id}/thumbnails/{kind}"))
            .await;
        assert_eq!(status, 200, "{name} {kind}");
        let size = image_size(&img);
        assert_eq!(
            short_edge(size),
            edge.min(short_edge(display)),
            "{name} {kind} {size:?} of {display:?}"
        );
        // Upright: the rendition has the displayed (post-orientation) aspect.
        assert_eq!(
            size.0 >= size.1,
            display.0 >= display.1,
            "{name} {kind} {size:?} not upright vs {display:?}"
        );
    }
}

#[sqlx::test(migrations = false)]
async fn fixtures_ingest_end_to_end(pool: PgPool) {
    let app = TestApp::start(pool, true).await;
    let (_, token) = app.user("photos@example.org").await;
    let want = expected();
    let files: Vec<(&str, Vec<u8>)> = want
        .keys()
        .map(|name| (name.as_str(), std::fs::read(fixtures().join(name)).unwrap()))
        .collect();
    for (name, bytes) in &files {
        // The recorded reference is the hash of the file as it is in the repository.
        let sha = hex::encode(Sha256::digest(bytes));
        assert_eq!(want[*name]["sha256"], sha.as_str(), "{name}");
    }
    let (status, body) = app.upload(&token, &files).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["job"]["status"], "pending");
    let job = app
        .wait_job(
            &token,
            body["job"]["id"].as_str().unwrap(),
            Duration::from_secs(180),
        )
        .await;
    assert_eq!(job["output_data"]["completed"], files.len(), "{job}");
    assert!(job["started_at"].is_string() && job["completed_at"].is_string());

    for uploaded in body["media"].as_array().unwrap() {
        let name = uploaded["filename"].as_str().unwrap();
        let (status, m) = app
            .get(
                &token,
                &format!("/v1/media/{}", uploaded["id"].as_str().unwrap()),
            )
            .await;
        assert_eq!(status, 200);
        check_photo(&app, &token, name, &want[name], &m).await;
    }

    // The original comes back byte for byte.
    let first = &body["media"][0];
    let (status, original) = app
        .get_bytes(
            &token,
            &format!("/v1/media/{}/original", first["id"].as_str().unwrap()),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        original,
        std::fs::read(fixtures().join(first["filename"].as_str().unwrap())).unwrap()
    );

    // The timeline: newest first, paged by cursor, every file once.
    let mut seen = Vec::new();
    let mut path = "/v1/media?limit=4".to_owned();
    loop {
        let (status, page) = app.get(&token, &path).await;
        assert_eq!(status, 200, "{page}");
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["id"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/v1/media?limit=4&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), files.len());
    let failed = app.get(&token, "/v1/media?status=failed").await.1;
    assert_eq!(failed["items"].as_array().map(Vec::len), Some(0));
}

#[sqlx::test(migrations = false)]
async fn same_bytes_twice_is_a_duplicate_and_delete_removes_everything(pool: PgPool) {
    let app = TestApp::start(pool, true).await;
    let (user, token) = app.user("dup@example.org").await;
    let bytes = std::fs::read(fixtures().join("DSCN0010.jpg")).unwrap();
    let (_, first) = app.upload(&token, &[("a.jpg", bytes.clone())]).await;
    let upload_bytes = bytes.clone();
    app.wait_job(
        &token,
        first["job"]["id"].as_str().unwrap(),
        Duration::from_secs(60),
    )
    .await;
    let (_, second) = app.upload(&token, &[("b.jpg", bytes)]).await;
    let job = app
        .wait_job(
            &token,
            second["job"]["id"].as_str().unwrap(),
            Duration::from_secs(60),
        )
        .await;
    assert_eq!(job["output_data"]["duplicate"], 1, "{job}");

    let original = first["media"][0]["id"].as_str().unwrap();
    let copy = second["media"][0]["id"].as_str().unwrap();
    let (_, m) = app.get(&token, &format!("/v1/media/{copy}")).await;
    assert_eq!(m["processing_status"], "duplicate");
    assert_eq!(m["duplicate_of"], original);
    let copy_dir = app.storage_dir.join(format!("media/{user}/{copy}"));
    assert!(
        !copy_dir.join("original").exists(),
        "the duplicate's stored copy is removed"
    );
    // Its bytes are the original's: served as they were uploaded, thumbnails too.
    let got = app
        .http
        .get(format!("{}/v1/media/{copy}/original", app.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(got.status().as_u16(), 200);
    assert_eq!(got.bytes().await.unwrap().as_ref(), upload_bytes.as_slice());
    for size in ["thumb", "preview"] {
        let (code, _) = app
            .get(&token, &format!("/v1/media/{copy}/thumbnails/{size}"))
            .await;
        assert_eq!(code, 200, "{size}");
    }
    // The place is named by another row (a location history entry): it stays.
    let place: uuid::Uuid = sqlx::query_scalar("SELECT id FROM locations")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO location_history (user_id, location_id, \"timestamp\")
         VALUES ($1, $2, now())",
    )
    .bind(user)
    .bind(place)
    .execute(&app.pool)
    .await
    .unwrap();

    let resp = app
        .http
        .delete(format!("{}/v1/media/{original}", app.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 204);
    assert_eq!(
        app.get(&token, &format!("/v1/media/{original}")).await.0,
        404
    );
    assert_eq!(app.get(&token, &format!("/v1/media/{copy}")).await.0, 404);
    let dir = app.storage_dir.join(format!("media/{user}/{original}"));
    for f in ["original", "thumb", "preview"] {
        assert!(!dir.join(f).exists(), "{f} left in storage");
    }
    // The location stays: another row still names it.
    let places = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM locations")
            .fetch_one(&app.pool)
            .await
            .unwrap()
    };
    assert_eq!(places().await, 1);

    // Named by nothing else, a deleted photo's place goes with it (API.md: only a location
    // still used by other rows stays).
    sqlx::query("DELETE FROM location_history")
        .execute(&app.pool)
        .await
        .unwrap();
    let (_, again) = app.upload(&token, &[("c.jpg", upload_bytes.clone())]).await;
    app.wait_job(
        &token,
        again["job"]["id"].as_str().unwrap(),
        Duration::from_secs(60),
    )
    .await;
    let third = again["media"][0]["id"].as_str().unwrap();
    let (_, m) = app.get(&token, &format!("/v1/media/{third}")).await;
    assert_eq!(m["location"]["id"], place.to_string(), "{m}");
    let resp = app
        .http
        .delete(format!("{}/v1/media/{third}", app.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 204);
    assert_eq!(places().await, 0);

    // Two photos taken at the same place (the same picture, one byte past its end: other
    // bytes), deleted at once as a multi-select does: the place goes with the second.
    let mut other = upload_bytes.clone();
    other.push(0);
    let (_, two) = app
        .upload(&token, &[("d.jpg", upload_bytes), ("e.jpg", other)])
        .await;
    app.wait_job(
        &token,
        two["job"]["id"].as_str().unwrap(),
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(places().await, 1);
    let delete = |i: usize| {
        let id = two["media"][i]["id"].as_str().unwrap().to_owned();
        app.http
            .delete(format!("{}/v1/media/{id}", app.base))
            .bearer_auth(&token)
            .send()
    };
    let (d, e) = tokio::join!(delete(0), delete(1));
    assert_eq!(d.unwrap().status().as_u16(), 204);
    assert_eq!(e.unwrap().status().as_u16(), 204);
    assert_eq!(places().await, 0);
}

/// A GPS fix far from any town (desert, open sea, ice) keeps its location: coordinates and
/// time zone, with no place name (names only within 50 km of a place), and taken_at in that
/// zone.
#[sqlx::test(migrations = false)]
async fn fixes_far_from_towns_keep_their_location(pool: PgPool) {
    let app = TestApp::start(pool, true).await;
    let (_, token) = app.user("far@example.org").await;
    let cases = [
        ("gps_sahara.jpg", 23.4162, 25.6628),
        ("gps_mid_atlantic.jpg", 30.0, -40.0),
        ("gps_antarctica.jpg", -80.0, 30.0),
    ];
    let files: Vec<(&str, Vec<u8>)> = cases
        .iter()
        .map(|(n, _, _)| (*n, std::fs::read(fixtures().join(n)).unwrap()))
        .collect();
    let (status, body) = app.upload(&token, &files).await;
    assert_eq!(status, 202, "{body}");
    app.wait_job(
        &token,
        body["job"]["id"].as_str().unwrap(),
        std::time::Duration::from_secs(60),
    )
    .await;
    for (i, (name, lat, lon)) in cases.iter().enumerate() {
        let id = body["media"][i]["id"].as_str().unwrap();
        let (_, m) = app.get(&token, &format!("/v1/media/{id}")).await;
        assert_eq!(m["processing_status"], "completed", "{name}: {m}");
        let l = &m["location"];
        assert!(
            (l["latitude"].as_f64().unwrap() - lat).abs() < 1e-3,
            "{name}: {l}"
        );
        assert!(
            (l["longitude"].as_f64().unwrap() - lon).abs() < 1e-3,
            "{name}: {l}"
        );
        assert!(l["timezone"].is_string(), "{name}: {l}");
        assert!(l["city"].is_null(), "{name}: {l}");
        assert_eq!(m["taken_at_source"], "gps_timezone", "{name}: {m}");
    }
}

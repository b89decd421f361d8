//! `timeline import` of a two-part Google Takeout written here by Google's naming rules: a
//! photo in part 1 with its sidecar in part 2 (numbered the other way round), an album copy, a
//! trashed item, a sidecar with no media and an entry whose name tries to climb out of the
//! export. Every fact lands where the sidecar says, by the rule (a file's own offset wins, the
//! sidecar fills the rest), nothing lands outside the store, and importing twice changes nothing.

use std::io::Write;
use std::process::Command;
use std::time::Duration;

use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::common::{TestApp, photo, url_of, walk};
use crate::ingest_cli::timeline_bin;
use crate::video::tempdir;

/// A JPEG with no EXIF at all (as Facebook and many apps leave them), distinct per `seed`.
pub(crate) fn plain_jpeg(seed: u8) -> Vec<u8> {
    let img = image::RgbImage::from_fn(64, 48, |x, y| {
        image::Rgb([seed, (x * 4) as u8, (y * 5) as u8])
    });
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
        .encode_image(&img)
        .unwrap();
    out
}

pub(crate) fn write_zip(path: &std::path::Path, entries: &[(&str, Vec<u8>)]) {
    let file = std::fs::File::create(path).unwrap();
    let mut zip = zip::ZipWriter::new(file);
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, bytes) in entries {
        zip.start_file(*name, options).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap();
}

fn sidecar(taken: i64, geo: (f64, f64), extra: serde_json::Value) -> Vec<u8> {
    let mut v = json!({
        "title": "x.jpg",
        "photoTakenTime": { "timestamp": taken.to_string(), "formatted": "…" },
        "geoData": { "latitude": 0.0, "longitude": 0.0, "altitude": 0.0 },
        "geoDataExif": { "latitude": geo.0, "longitude": geo.1, "altitude": 0.0 },
    });
    if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    serde_json::to_vec(&v).unwrap()
}

pub(crate) fn import(app: &TestApp, parts: &[&std::path::Path], email: &str) -> String {
    let out = Command::new(timeline_bin())
        .arg("import")
        .args(parts)
        .args(["--email", email])
        .env("DATABASE_URL", url_of(&app.pool))
        .env("TIMELINE_STORAGE", &app.storage_dir)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    text
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct Row {
    pub(crate) id: Uuid,
    pub(crate) filename: String,
    pub(crate) taken_at: Option<chrono::DateTime<chrono::Utc>>,
    pub(crate) taken_at_offset_minutes: Option<i16>,
    pub(crate) taken_at_source: Option<String>,
    pub(crate) country_code: Option<String>,
    pub(crate) city: Option<String>,
    pub(crate) import_facts: Option<serde_json::Value>,
    pub(crate) processing_status: String,
}

pub(crate) async fn rows(pool: &PgPool, user: Uuid) -> Vec<Row> {
    sqlx::query_as(
        "SELECT m.id, m.filename, m.taken_at, m.taken_at_offset_minutes, m.taken_at_source,
                l.country_code, l.city, m.import_facts, m.processing_status
         FROM media_files m LEFT JOIN locations l ON l.id = m.location_id
         WHERE m.user_id = $1 ORDER BY m.filename",
    )
    .bind(user)
    .fetch_all(pool)
    .await
    .unwrap()
}

#[sqlx::test(migrations = false)]
async fn a_two_part_takeout_lands_with_its_sidecars_albums_and_nothing_else(pool: PgPool) {
    let mut app = TestApp::start(pool.clone(), false).await;
    app.start_worker(&[]);
    let (user, token) = app.user("takeout@example.org").await;
    let dir = tempdir("takeout");
    let year = "Takeout/Google Photos/Photos from 2019";
    let album = "Takeout/Google Photos/Summer";
    let lake = plain_jpeg(1);
    let part1 = dir.join("takeout-20261205-001.zip");
    let part2 = dir.join("takeout-20261205-002.zip");
    write_zip(
        &part1,
        &[
            (&format!("{year}/IMG_0001.jpg"), photo("DSCN0010.jpg")),
            (&format!("{year}/IMG_0002(1).jpg"), lake.clone()),
            (&format!("{album}/IMG_0002(1).jpg"), lake.clone()),
            (
                &format!("{album}/metadata.json"),
                serde_json::to_vec(
                    &json!({"title": "Summer at the lake", "description": "August"}),
                )
                .unwrap(),
            ),
            (&format!("{year}/gone.jpg"), plain_jpeg(2)),
            (
                &format!("{year}/gone.jpg.json"),
                sidecar(1_565_600_000, (1.0, 1.0), json!({"trashed": true})),
            ),
            ("../../evil.jpg", plain_jpeg(3)),
            // 64 MB of zeros declared, a few KB compressed: refused at its declared size.
            (&format!("{year}/bomb.jpg"), vec![0u8; 64 << 20]),
            (&format!("{year}/bad.jpg.json"), b"[1, 2, 3]".to_vec()),
        ],
    );
    write_zip(
        &part2,
        &[
            (
                &format!("{year}/IMG_0002.jpg(1).json"),
                sidecar(
                    1_565_604_000, // 2019-08-12 10:00:00 UTC
                    (47.3769, 8.5417),
                    json!({"description": "at the lake", "favorited": true}),
                ),
            ),
            (
                &format!("{year}/IMG_0001.jpg.supplemental-metadata.json"),
                // 2008-10-22 14:28:39 UTC: the camera's 16:28:39 in Italy's summer time.
                sidecar(1_224_685_719, (0.0, 0.0), json!({})),
            ),
            (
                &format!("{year}/nothing.jpg.json"),
                sidecar(5, (0.0, 0.0), json!({})),
            ),
        ],
    );

    let out = import(&app, &[&part1, &part2], "takeout@example.org");
    assert!(out.contains("gone.jpg: in Google Photos' trash"), "{out}");
    assert!(
        out.contains("nothing.jpg.json: a sidecar JSON with no media file"),
        "{out}"
    );
    assert!(
        out.contains("evil.jpg: imported from the file alone"),
        "{out}"
    );
    assert!(
        out.contains("bomb.jpg: refused: 67108864 bytes declared"),
        "{out}"
    );
    assert!(out.contains("bad.jpg.json: not a Takeout JSON"), "{out}");

    let found = rows(&pool, user).await;
    let names: Vec<&str> = found.iter().map(|r| r.filename.as_str()).collect();
    assert_eq!(
        names,
        ["IMG_0001.jpg", "IMG_0002(1).jpg", "evil.jpg"],
        "{found:#?}"
    );
    assert!(
        found.iter().all(|r| r.processing_status == "completed"),
        "{found:#?}"
    );

    // No offset in the file: the sidecar's instant, shown at the position's zone.
    let lake_row = &found[1];
    assert_eq!(
        lake_row.taken_at.map(|t| t.timestamp()),
        Some(1_565_604_000)
    );
    assert_eq!(lake_row.taken_at_source.as_deref(), Some("sidecar"));
    assert_eq!(lake_row.taken_at_offset_minutes, Some(120));
    assert_eq!(lake_row.country_code.as_deref(), Some("CH"), "{lake_row:?}");
    assert!(
        lake_row.city.as_deref().is_some_and(|c| c.contains("Z")),
        "{lake_row:?}"
    );
    let facts = lake_row.import_facts.as_ref().unwrap();
    assert_eq!(facts["description"], "at the lake");
    assert_eq!(facts["favorite"], true);
    assert_eq!(facts["source"], "google_photos");

    // The file's own position wins over the sidecar's (which was 0,0 anyway here).
    let tuscany = &found[0];
    assert_eq!(tuscany.country_code.as_deref(), Some("IT"), "{tuscany:?}");
    assert_eq!(tuscany.taken_at.map(|t| t.timestamp()), Some(1_224_685_719));
    assert_eq!(tuscany.taken_at_offset_minutes, Some(120));

    // The album holds the lake photo, stored once.
    let (status, albums) = app.get(&token, "/v1/collections").await;
    assert_eq!(status, 200);
    assert_eq!(albums["items"].as_array().unwrap().len(), 1, "{albums}");
    assert_eq!(albums["items"][0]["name"], "Summer at the lake");
    assert_eq!(albums["items"][0]["description"], "August");
    assert_eq!(albums["items"][0]["media_count"], 1);
    let id = albums["items"][0]["id"].as_str().unwrap();
    let (_, inside) = app
        .get(&token, &format!("/v1/collections/{id}/media"))
        .await;
    assert_eq!(inside["items"][0]["id"], lake_row.id.to_string());

    // The climbing name stayed a name: nothing outside the store, nothing beside the parts.
    let beside: Vec<_> = walk(&dir);
    assert_eq!(beside.len(), 2, "{beside:?}");
    assert!(!dir.join("../../evil.jpg").exists());
    assert!(
        walk(&app.storage_dir)
            .iter()
            .all(|p| p.starts_with(&app.storage_dir))
    );

    // The job is an import and ended.
    let job: (String, String) =
        sqlx::query_as("SELECT job_type, status FROM data_processing_jobs WHERE user_id = $1")
            .bind(user)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(job, ("import".to_owned(), "completed".to_owned()));

    // The same import again changes nothing.
    let objects = walk(&app.storage_dir).len();
    let again = import(&app, &[&part1, &part2], "takeout@example.org");
    let after = rows(&pool, user).await;
    assert_eq!(after.len(), 3, "{again}");
    assert_eq!(walk(&app.storage_dir).len(), objects, "{again}");
    let (_, albums) = app.get(&token, "/v1/collections").await;
    assert_eq!(albums["items"].as_array().unwrap().len(), 1);
    assert_eq!(albums["items"][0]["media_count"], 1);
    let _ = Duration::ZERO;
}

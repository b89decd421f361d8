//! `timeline import` of a Facebook "Download your information" export and of a two-part iCloud
//! Photos export whose first part was cut short, both written here by the formats' rules
//! (`docs/IMPORTS.md`). The dates and places Facebook keeps only in JSON land on the photos,
//! a captioned post becomes a memory with its text, place and photo, albums become collections,
//! mojibake is repaired; iCloud's CSV dates, favourites, deletions and albums land; a truncated
//! zip gives up the entries before the damage and names the rest; importing twice changes
//! nothing.

use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::common::{TestApp, photo};
use crate::imports::{import, plain_jpeg, rows, write_zip};
use crate::video::tempdir;

#[derive(Debug, sqlx::FromRow)]
struct Memory {
    title: String,
    description: Option<String>,
    memory_date: chrono::DateTime<chrono::Utc>,
    memory_type: String,
    source_platform: String,
    place: Option<String>,
    latitude: Option<f64>,
    media: Vec<String>,
}

async fn memories(pool: &PgPool, user: Uuid) -> Vec<Memory> {
    sqlx::query_as(
        "SELECT m.title, m.description, m.memory_date, m.memory_type, m.source_platform,
                l.name AS place, l.latitude,
                coalesce(array_agg(f.filename ORDER BY mm.position)
                         FILTER (WHERE f.id IS NOT NULL), '{}') AS media
         FROM memories m
         LEFT JOIN locations l ON l.id = m.location_id
         LEFT JOIN memory_media_files mm ON mm.memory_id = m.id
         LEFT JOIN media_files f ON f.id = mm.media_file_id
         WHERE m.user_id = $1 GROUP BY m.id, l.id ORDER BY m.memory_date",
    )
    .bind(user)
    .fetch_all(pool)
    .await
    .unwrap()
}

/// What the user's collections hold: (name, media count), by name.
async fn albums(app: &TestApp, token: &str) -> Vec<(String, i64)> {
    let (status, body) = app.get(token, "/v1/collections").await;
    assert_eq!(status, 200, "{body}");
    let mut out: Vec<(String, i64)> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_owned(),
                c["media_count"].as_i64().unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

/// A Facebook export of two photos in an album, one in a captioned post with a place and the
/// taken date and position of its exif data, mojibake included, and a message's attachment.
pub(crate) fn facebook_export(dir: &std::path::Path) -> std::path::PathBuf {
    let posts = "your_facebook_activity/posts";
    // Facebook's JSON as it writes it: UTF-8 bytes escaped one by one as Latin-1 (mojibake).
    let post_json = format!(
        r#"[
      {{"timestamp": 1600000500,
        "data": [{{"post": "Au lac \u00c3\u00a0 Z\u00c3\u00bcrich\nwith the boat"}}],
        "attachments": [{{"data": [
          {{"media": {{"uri": "{posts}/media/Lake_x1/1.jpg", "creation_timestamp": 1600000400,
                     "media_metadata": {{"photo_metadata": {{"exif_data": [
                       {{"taken_timestamp": 1600000000, "latitude": 47.3769, "longitude": 8.5417}}]}}}}}}}},
          {{"place": {{"name": "Z\u00c3\u00bcrichsee", "address": "Utoquai, Z\u00c3\u00bcrich",
                     "coordinate": {{"latitude": 47.36, "longitude": 8.545}}}}}}
        ]}}]}},
      {{"timestamp": 1600100000,
        "attachments": [{{"data": [{{"media": {{"uri": "{posts}/media/Lake_x1/2.jpg"}}}}]}}]}}
    ]"#
    );
    let album_json = format!(
        r#"{{"name": "Lac L\u00c3\u00a9man", "description": "summer",
          "photos": [
            {{"uri": "{posts}/media/Lake_x1/1.jpg", "creation_timestamp": 1600000400}},
            {{"uri": "{posts}/media/Lake_x1/2.jpg", "creation_timestamp": 1600000401,
              "description": "the \u0000boat"}}
          ]}}"#
    );
    let part = dir.join("facebook-jdoe-20261205.zip");
    write_zip(
        &part,
        &[
            (
                &format!("{posts}/your_posts__check_ins__photos_and_videos_1.json"),
                post_json.into_bytes(),
            ),
            (&format!("{posts}/album/0.json"), album_json.into_bytes()),
            (&format!("{posts}/media/Lake_x1/1.jpg"), plain_jpeg(31)),
            (&format!("{posts}/media/Lake_x1/2.jpg"), plain_jpeg(32)),
            (
                "your_facebook_activity/messages/inbox/bob_1/photos/9.jpg",
                plain_jpeg(33),
            ),
            (
                "your_facebook_activity/comments_and_reactions/likes.json",
                b"{}".to_vec(),
            ),
        ],
    );

    part
}

#[sqlx::test(migrations = false)]
async fn a_facebook_export_lands_with_its_json_dates_places_albums_and_posts(pool: PgPool) {
    let mut app = TestApp::start(pool.clone(), false).await;
    app.start_worker(&[]);
    let email = "facebook@example.org";
    let (user, token) = app.user(email).await;
    let part = facebook_export(&tempdir("facebook"));

    let out = import(&app, &[&part], email);
    assert!(out.contains("9.jpg: a message's attachment"), "{out}");
    assert!(
        out.contains("likes.json: not a post, album or photo"),
        "{out}"
    );
    assert!(out.contains("memories: 1 made, 0 already there"), "{out}");

    let found = rows(&pool, user).await;
    let names: Vec<&str> = found.iter().map(|r| r.filename.as_str()).collect();
    assert_eq!(names, ["1.jpg", "2.jpg"], "{found:#?}");
    assert!(
        found.iter().all(|r| r.processing_status == "completed"),
        "{found:#?}"
    );
    // The post's exif data: its taken date (over the album's creation date) and its position,
    // geocoded, with the zone's offset (Zürich, summer time).
    let one = &found[0];
    assert_eq!(one.taken_at.map(|t| t.timestamp()), Some(1_600_000_000));
    assert_eq!(one.taken_at_source.as_deref(), Some("sidecar"));
    assert_eq!(one.taken_at_offset_minutes, Some(120), "{one:?}");
    assert_eq!(one.country_code.as_deref(), Some("CH"), "{one:?}");
    assert!(
        one.city.as_deref().is_some_and(|c| c.contains('Z')),
        "{one:?}"
    );
    let facts = one.import_facts.as_ref().unwrap();
    assert_eq!(facts["source"], "facebook");
    // Only the album's creation date and description for the second (its NUL dropped:
    // PostgreSQL's text refuses one).
    let two = &found[1];
    assert_eq!(two.taken_at.map(|t| t.timestamp()), Some(1_600_000_401));
    assert_eq!(
        two.import_facts.as_ref().unwrap()["description"],
        "the boat"
    );

    assert_eq!(albums(&app, &token).await, [("Lac Léman".to_owned(), 2)]);

    // The captioned post is a memory: repaired text, the post's place, its photo.
    let made = memories(&pool, user).await;
    assert_eq!(made.len(), 1, "{made:#?}");
    let m = &made[0];
    assert_eq!(m.title, "Au lac à Zürich");
    assert_eq!(
        m.description.as_deref(),
        Some("Au lac à Zürich\nwith the boat")
    );
    assert_eq!(m.memory_date.timestamp(), 1_600_000_500);
    assert_eq!(
        (m.memory_type.as_str(), m.source_platform.as_str()),
        ("photo", "facebook")
    );
    assert_eq!(m.place.as_deref(), Some("Zürichsee"));
    assert_eq!(m.latitude, Some(47.36));
    assert_eq!(m.media, ["1.jpg"]);

    // The same export again changes nothing.
    let again = import(&app, &[&part], email);
    assert!(
        again.contains("memories: 0 made, 1 already there"),
        "{again}"
    );
    assert_eq!(rows(&pool, user).await.len(), 2, "{again}");
    assert_eq!(memories(&pool, user).await.len(), 1, "{again}");
    assert_eq!(albums(&app, &token).await, [("Lac Léman".to_owned(), 2)]);
    let links: i64 =
        sqlx::query_scalar("SELECT count(*) FROM memory_media_files WHERE user_id = $1")
            .bind(user)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(links, 1);
}

/// Cuts the zip at `path` a few KB into the data of its entry named `name` (its local header is
/// the name's first occurrence; the central directory, after it, is lost with the tail).
fn truncate_inside(path: &std::path::Path, name: &str) {
    let bytes = std::fs::read(path).unwrap();
    let at = bytes
        .windows(name.len())
        .position(|w| w == name.as_bytes())
        .unwrap();
    let cut = at + name.len() + 4096;
    assert!(
        cut < bytes.len() / 2,
        "the entry is big enough to be cut inside"
    );
    std::fs::write(path, &bytes[..cut]).unwrap();
}

#[sqlx::test(migrations = false)]
async fn an_icloud_export_with_a_truncated_part_imports_what_is_there(pool: PgPool) {
    let mut app = TestApp::start(pool.clone(), false).await;
    app.start_worker(&[]);
    let email = "icloud@example.org";
    let (user, token) = app.user(email).await;
    let dir = tempdir("icloud");
    let root = "iCloud Photos";
    let part1 = dir.join("iCloud Photos Part 1 of 2.zip");
    let part2 = dir.join("iCloud Photos Part 2 of 2.zip");
    write_zip(
        &part1,
        &[
            (&format!("{root}/Photos/IMG_0101.JPG"), plain_jpeg(41)),
            // A real photo, large enough to be cut in the middle: the download broke here.
            (
                &format!("{root}/Photos/IMG_0104.JPG"),
                photo("DSCN0010.jpg"),
            ),
        ],
    );
    truncate_inside(&part1, "IMG_0104.JPG");
    let details = "imgName,fileChecksum,favorite,hidden,deleted,originalCreationDate,viewCount,importDate\n\
        IMG_0101.JPG,a1,yes,no,no,\"Friday October 06,2023 12:11 PM GMT\",3,\"Friday October 06,2023 12:11 PM GMT\"\n\
        IMG_0102.JPG,a2,no,yes,no,\"Saturday October 07,2023 08:00 AM GMT\",0,\"Saturday October 07,2023 08:00 AM GMT\"\n\
        IMG_0103.JPG,a3,no,no,yes,\"Sunday October 08,2023 09:30 PM GMT\",0,\"Sunday October 08,2023 09:30 PM GMT\"\n\
        IMG_0104.JPG,a4,no,no,no,\"Monday October 09,2023 10:00 AM GMT\",0,\"Monday October 09,2023 10:00 AM GMT\"\n";
    write_zip(
        &part2,
        &[
            (&format!("{root}/Photos/IMG_0102.JPG"), plain_jpeg(42)),
            (&format!("{root}/Photos/IMG_0103.JPG"), plain_jpeg(43)),
            (
                &format!("{root}/Photos/Photo Details.csv"),
                details.as_bytes().to_vec(),
            ),
            (
                &format!("{root}/Albums/Trip.csv"),
                b"imgName\nIMG_0101.JPG\nIMG_0102.JPG\n".to_vec(),
            ),
            (&format!("{root}/Albums/Empty.csv"), Vec::new()),
        ],
    );

    let out = import(&app, &[&part1, &part2], email);
    assert!(
        out.contains("iCloud Photos Part 1 of 2.zip: a damaged zip"),
        "{out}"
    );
    assert!(
        out.contains("IMG_0104.JPG: "),
        "the cut entry is named: {out}"
    );
    assert!(out.contains("IMG_0103.JPG: deleted in iCloud"), "{out}");
    assert!(
        out.contains("Empty.csv: album \"Empty\" lists no photos"),
        "{out}"
    );

    let found = rows(&pool, user).await;
    let names: Vec<&str> = found.iter().map(|r| r.filename.as_str()).collect();
    assert_eq!(names, ["IMG_0101.JPG", "IMG_0102.JPG"], "{found:#?}");
    assert!(
        found.iter().all(|r| r.processing_status == "completed"),
        "{found:#?}"
    );
    // 2023-10-06 12:11 GMT, from the CSV (the file has no date of its own).
    assert_eq!(
        found[0].taken_at.map(|t| t.timestamp()),
        Some(1_696_594_260)
    );
    assert_eq!(found[0].taken_at_source.as_deref(), Some("sidecar"));
    let facts = found[0].import_facts.as_ref().unwrap();
    assert_eq!(
        (&facts["source"], &facts["favorite"]),
        (&json!("apple_photos"), &json!(true))
    );
    assert_eq!(
        found[1].taken_at.map(|t| t.timestamp()),
        Some(1_696_665_600)
    );
    assert_eq!(found[1].import_facts.as_ref().unwrap()["archived"], true);
    assert_eq!(albums(&app, &token).await, [("Trip".to_owned(), 2)]);

    // Again: nothing new (the damaged part is read the same way and named again).
    let again = import(&app, &[&part1, &part2], email);
    assert_eq!(rows(&pool, user).await.len(), 2, "{again}");
    assert_eq!(albums(&app, &token).await, [("Trip".to_owned(), 2)]);
}

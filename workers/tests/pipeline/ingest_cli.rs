//! `timeline ingest` (the real binary) over a folder of mixed photos, videos and audio, with a
//! file it cannot use and one over the size limit: those two are named in the summary and
//! skipped, nothing of theirs is stored, and everything else is processed.

use std::process::Command;

use sqlx::PgPool;

use crate::common::{TestApp, fixtures, url_of};
use crate::video::{tempdir, video_dir};

/// The `timeline` binary, built beside `timeline-worker` by the workspace build.
pub fn timeline_bin() -> std::path::PathBuf {
    let bin =
        std::path::PathBuf::from(env!("CARGO_BIN_EXE_timeline-worker")).with_file_name("timeline");
    assert!(
        bin.is_file(),
        "build the workspace first: {} missing",
        bin.display()
    );
    bin
}

/// Runs `timeline ingest DIR --email E` against the test's database and store; returns its
/// output after checking that it succeeded.
fn ingest(
    app: &TestApp,
    dir: &std::path::Path,
    email: &str,
    envs: &[(&str, &str)],
) -> std::process::Output {
    let out = Command::new(timeline_bin())
        .args(["ingest"])
        .arg(dir)
        .args(["--email", email])
        .env("DATABASE_URL", url_of(&app.pool))
        .env("TIMELINE_STORAGE", &app.storage_dir)
        .envs(envs.iter().copied())
        .output()
        .expect("timeline ingest");
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[sqlx::test(migrations = false)]
async fn ingest_takes_a_folder_of_photos_videos_and_audio(pool: PgPool) {
    let app = TestApp::start(pool, true).await;
    let (user, _) = app.user("roll@example.com").await;
    let dir = tempdir("roll");
    for (from, name) in [
        (fixtures().join("landscape_1.jpg"), "landscape_1.jpg"),
        (fixtures().join("IMG_5195.HEIC"), "IMG_5195.HEIC"),
        (video_dir().join("with-gps.mov"), "with-gps.mov"),
        (video_dir().join("video_mkv.mkv"), "video_mkv.mkv"),
        (video_dir().join("Issue 337 (dotnet).m4a"), "memo.m4a"),
        (video_dir().join("MVI_4823.AVI"), "too-big.avi"),
        (video_dir().join("manifest.tsv"), "notes.tsv"),
    ] {
        std::fs::copy(&from, dir.join(name)).expect("copy fixture");
    }
    // MVI_4823.AVI is 3.1 MB: over this limit it must be refused, not stored.
    let out = ingest(
        &app,
        &dir,
        "roll@example.com",
        &[("TIMELINE_MAX_FILE_BYTES", "2000000")],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("5 completed, 0 failed, 0 duplicate, 2 refused"),
        "{stdout}"
    );
    assert!(
        stdout.contains("refused  too-big.avi: too large"),
        "{stdout}"
    );
    assert!(
        stdout.contains("refused  notes.tsv: not a photo, video or audio file"),
        "{stdout}"
    );

    let kinds: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT filename, kind, processing_status FROM media_files WHERE user_id = $1 ORDER BY filename",
    )
    .bind(user)
    .fetch_all(&app.pool)
    .await
    .expect("rows");
    let got: Vec<(&str, &str)> = kinds
        .iter()
        .map(|(f, k, _)| (f.as_str(), k.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("IMG_5195.HEIC", "image"),
            ("landscape_1.jpg", "image"),
            ("memo.m4a", "audio"),
            ("video_mkv.mkv", "video"),
            ("with-gps.mov", "video"),
        ]
    );
    assert!(kinds.iter().all(|(_, _, s)| s == "completed"), "{kinds:?}");
    // Exactly the objects of the five rows: originals, and thumb + preview for each (the audio
    // file's waveform included); nothing from the refused files.
    let objects = crate::common::walk(&app.storage_dir).len();
    assert_eq!(objects, 15, "{:?}", crate::common::walk(&app.storage_dir));
    let _ = std::fs::remove_dir_all(dir);
}

/// Links are followed wherever they point: a linked photo and a linked folder are imported;
/// a broken link and a link loop are named with their reason; nothing is imported twice.
#[sqlx::test(migrations = false)]
async fn ingest_follows_links_and_names_the_broken_ones(pool: PgPool) {
    use std::os::unix::fs::symlink;
    let app = TestApp::start(pool, true).await;
    let (user, _) = app.user("links@example.com").await;
    let outside = tempdir("links-outside");
    std::fs::copy(fixtures().join("landscape_1.jpg"), outside.join("a.jpg")).expect("copy");
    std::fs::create_dir(outside.join("album")).expect("album");
    std::fs::copy(
        fixtures().join("landscape_5.jpg"),
        outside.join("album/b.jpg"),
    )
    .expect("copy");
    let dir = tempdir("links");
    symlink(outside.join("a.jpg"), dir.join("linked.jpg")).expect("file link");
    symlink(outside.join("album"), dir.join("album")).expect("folder link");
    symlink(outside.join("gone.jpg"), dir.join("broken.jpg")).expect("broken link");
    std::fs::create_dir(dir.join("sub")).expect("sub");
    symlink(&dir, dir.join("sub/loop")).expect("loop link");
    // Hidden entries are skipped and named too: a file, and a folder once (not its files).
    std::fs::write(dir.join(".DS_Store"), b"finder").expect("dot-file");
    std::fs::create_dir(dir.join(".thumbnails")).expect("dot-folder");
    std::fs::copy(
        fixtures().join("landscape_6.jpg"),
        dir.join(".thumbnails/c.jpg"),
    )
    .expect("copy");

    let out = ingest(&app, &dir, "links@example.com", &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("2 completed, 0 failed, 0 duplicate, 4 refused"),
        "{stdout}"
    );
    for hidden in [".DS_Store", ".thumbnails"] {
        assert!(
            stdout.contains(&format!("refused  {hidden}: hidden")),
            "{stdout}"
        );
    }
    assert!(!stdout.contains("c.jpg"), "{stdout}");
    assert!(
        stdout.contains("refused  broken.jpg: unreadable: broken link"),
        "{stdout}"
    );
    assert!(
        stdout.contains("refused  sub/loop: a folder already imported"),
        "{stdout}"
    );
    let names: Vec<String> =
        sqlx::query_scalar("SELECT filename FROM media_files WHERE user_id = $1 ORDER BY 1")
            .bind(user)
            .fetch_all(&app.pool)
            .await
            .expect("rows");
    assert_eq!(names, ["b.jpg", "linked.jpg"]);
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::remove_dir_all(outside);
}

/// A folder with nothing to import fails, and still names each file it skipped and why.
#[sqlx::test(migrations = false)]
async fn ingest_of_nothing_importable_names_what_it_refused(pool: PgPool) {
    let app = TestApp::start(pool, false).await;
    app.user("nothing@example.com").await;
    let dir = tempdir("nothing");
    std::fs::write(dir.join("notes.txt"), b"shopping list").expect("notes");
    std::fs::write(dir.join(".DS_Store"), b"finder").expect("dot-file");
    let out = Command::new(timeline_bin())
        .args(["ingest"])
        .arg(&dir)
        .args(["--email", "nothing@example.com"])
        .env("DATABASE_URL", url_of(&app.pool))
        .env("TIMELINE_STORAGE", &app.storage_dir)
        .output()
        .expect("timeline ingest");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stdout}");
    assert!(stderr.contains("2 files refused"), "{stderr}");
    assert!(
        stdout.contains("refused  notes.txt: not a photo, video or audio file"),
        "{stdout}"
    );
    assert!(stdout.contains("refused  .DS_Store: hidden"), "{stdout}");
    let _ = std::fs::remove_dir_all(dir);
}

/// A Motion Photo's clip joins the import as one more file: the progress lines count it in the
/// whole, so they never pass 100 % (they printed 35/34 files, 102 %).
#[sqlx::test(migrations = false)]
async fn ingest_progress_counts_a_motion_photos_clip_in_the_whole(pool: PgPool) {
    let app = TestApp::start(pool, true).await;
    app.user("motion@example.com").await;
    let dir = tempdir("motion-roll");
    std::fs::copy(video_dir().join("motionphoto.heic"), dir.join("m.heic")).expect("copy");
    std::fs::copy(fixtures().join("landscape_1.jpg"), dir.join("a.jpg")).expect("copy");
    let out = ingest(&app, &dir, "motion@example.com", &[]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        stdout.contains("3 completed"),
        "the clip is a file too: {stdout}"
    );
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("ingest: "))
        .collect();
    for line in &lines {
        let pct: u32 = line["ingest: ".len()..]
            .split('%')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("{line}"));
        assert!(pct <= 100, "{line}");
        let (done, whole) = line
            .split('(')
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .and_then(|f| f.split_once('/'))
            .unwrap_or_else(|| panic!("{line}"));
        assert!(
            done.parse::<u32>().unwrap_or(0) <= whole.parse::<u32>().unwrap_or(0),
            "{line}"
        );
    }
    assert!(
        lines
            .last()
            .is_some_and(|l| l.starts_with("ingest: 100% (3/3 files")),
        "{lines:?}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

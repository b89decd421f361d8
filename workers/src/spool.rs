//! The worker's spool folder: where originals from a remote store are copied for ffmpeg.
//!
//! Each worker process spools into a folder of its own (`worker-<id>/` under the configured
//! directory) and holds an exclusive lock on `worker-<id>.lock` for as long as it lives. A
//! worker killed with -9 leaves its folder behind; the next worker to start on the host sweeps
//! every folder whose lock nobody holds (its owner is gone), and never one of a live worker
//! that shares the directory.

use std::fs::File;
use std::path::{Path, PathBuf};

/// This process's spool folder; the folder is its own while `_lock` is held.
#[derive(Debug)]
pub struct Spool {
    pub dir: PathBuf,
    _lock: File,
}

/// Sweeps what dead workers left under `base`, then claims a folder for this process.
pub fn claim(base: &Path) -> std::io::Result<Spool> {
    std::fs::create_dir_all(base)?;
    let swept = sweep(base);
    if swept > 0 {
        tracing::info!(
            folders = swept,
            "swept the spool folders of stopped workers"
        );
    }
    let id = uuid::Uuid::new_v4().simple().to_string();
    let lock = File::create(base.join(format!("worker-{id}.lock")))?;
    lock.try_lock().map_err(std::io::Error::other)?;
    let dir = base.join(format!("worker-{id}"));
    std::fs::create_dir_all(&dir)?;
    Ok(Spool { dir, _lock: lock })
}

/// Removes the folders whose lock is free (their worker stopped); returns how many.
fn sweep(base: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(base) else {
        return 0;
    };
    let mut swept = 0;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(id) = name
            .strip_prefix("worker-")
            .and_then(|n| n.strip_suffix(".lock"))
        else {
            continue;
        };
        let Ok(lock) = File::options().write(true).open(entry.path()) else {
            continue;
        };
        // Held: a live worker's. Free: its owner is gone, and now we hold it while sweeping.
        if lock.try_lock().is_err() {
            continue;
        }
        let dir = base.join(format!("worker-{id}"));
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => swept += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(error = %e, folder = %dir.display(), "could not sweep a spool folder");
                continue;
            }
        }
        let _ = std::fs::remove_file(entry.path());
    }
    swept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_workers_folder_is_swept_and_a_live_ones_kept() {
        let base = std::env::temp_dir().join(format!("spool-test-{}", uuid::Uuid::new_v4()));
        let live = claim(&base).expect("claim");
        std::fs::write(live.dir.join("spool-a"), b"live").expect("write");
        // A worker killed with -9: its folder and lock file remain, the lock is free.
        let dead = claim(&base).expect("claim");
        std::fs::write(dead.dir.join("spool-b"), b"dead").expect("write");
        let dead_dir = dead.dir.clone();
        drop(dead);
        let next = claim(&base).expect("claim");
        assert!(!dead_dir.exists(), "the dead worker's folder is swept");
        assert!(
            live.dir.join("spool-a").exists(),
            "the live worker's is kept"
        );
        assert!(next.dir.exists());
        let _ = std::fs::remove_dir_all(&base);
    }
}

//! Tests of the video module: the corpus in `tests/fixtures/video/` checked against its
//! manifest and reference outputs ([`corpus`]), and hand-made hostile inputs ([`hostile`]).

mod corpus;
mod hostile;

use std::collections::HashMap;
use std::fs::File;
use std::path::PathBuf;

/// Path of a fixture in `tests/fixtures/video/`.
fn fixture(name: &str) -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/video/"
    ))
    .join(name)
}

/// An open fixture and its length.
fn open(name: &str) -> (File, u64) {
    let path = fixture(name);
    let file = File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let len = file.metadata().unwrap().len();
    (file, len)
}

/// `manifest.tsv` as file name → column → value.
fn manifest() -> HashMap<String, HashMap<String, String>> {
    let text = std::fs::read_to_string(fixture("manifest.tsv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split('\t').collect();
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let row: HashMap<String, String> = header
                .iter()
                .zip(line.split('\t'))
                .map(|(k, v)| ((*k).to_owned(), v.to_owned()))
                .collect();
            (row["filename"].clone(), row)
        })
        .collect()
}

fn json(name: &str) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(fixture(name)).unwrap()).unwrap()
}

/// Whether a file name has an ISO-BMFF movie extension.
fn is_bmff_movie(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    [".mp4", ".mov", ".3gp", ".m4a"]
        .iter()
        .any(|ext| lower.ends_with(ext))
}

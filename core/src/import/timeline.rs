//! A timeline export (`POST /v1/exports`, see `crate::export`) read back: the manifest
//! `timeline-export.json`, one sidecar per media file naming its original's entry, and
//! `collections.json` and `memories.json`. What the file itself tells (its date with an offset,
//! its GPS, Live Photo and Motion Photo pairing) the pipeline finds again from the bytes; the
//! sidecar gives what only the rows knew: a date or a position an earlier import's sidecar gave,
//! the description, favourite and archived flags, albums and memories.

use std::collections::HashMap;

use serde::Deserialize;

use super::{EntryMeta, ImportFacts, Place, Plan, Planned, PlannedMemory, Skipped, split};

/// The manifest's name and format tag (as `crate::export` writes them).
const MANIFEST: &str = "timeline-export.json";
const FORMAT: &str = "timeline-export";
/// The versions of the format this reads.
const VERSION: u32 = 1;

#[derive(Debug, Deserialize)]
struct Manifest {
    format: String,
    version: u32,
}

#[derive(Debug, Deserialize)]
struct Position {
    latitude: f64,
    longitude: f64,
}

#[derive(Debug, Deserialize)]
struct Sidecar {
    id: String,
    file: String,
    filename: String,
    #[serde(default)]
    taken_at_unix: Option<i64>,
    #[serde(default)]
    taken_at_source: Option<String>,
    #[serde(default)]
    location: Option<Position>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    favorite: bool,
    #[serde(default)]
    archived: bool,
    #[serde(default)]
    imported_from: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Collection {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    media: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct MemoryPlace {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    address: Option<String>,
    latitude: f64,
    longitude: f64,
}

#[derive(Debug, Deserialize)]
struct Memory {
    id: String,
    title: String,
    #[serde(default)]
    description: Option<String>,
    date: String,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    place: Option<MemoryPlace>,
    #[serde(default)]
    media: Vec<String>,
}

/// The memory kinds the schema knows, as static names.
const KINDS: &[&str] = &[
    "photo",
    "video",
    "text",
    "audio",
    "event",
    "checkin",
    "link",
    "milestone",
];

/// Plans the import of a timeline export.
pub fn plan(entries: &[EntryMeta], mut read: impl FnMut(usize) -> Result<Vec<u8>, String>) -> Plan {
    let mut plan = Plan::default();
    let Some((root, manifest)) = entries.iter().enumerate().find_map(|(i, e)| {
        let (dir, file) = split(&e.name);
        (file == MANIFEST).then(|| {
            (
                if dir.is_empty() {
                    String::new()
                } else {
                    format!("{dir}/")
                },
                i,
            )
        })
    }) else {
        plan.skipped.push(Skipped::new(
            MANIFEST,
            "missing: this is not a timeline export",
        ));
        return plan;
    };
    match read(manifest).and_then(|b| parse::<Manifest>(&b)) {
        Ok(m) if m.format == FORMAT && m.version == VERSION => {}
        Ok(m) => {
            plan.skipped.push(Skipped::new(
                &entries[manifest].name,
                format!(
                    "format {:?} version {}: not one this reads",
                    m.format, m.version
                ),
            ));
            return plan;
        }
        Err(reason) => {
            plan.skipped
                .push(Skipped::new(&entries[manifest].name, reason));
            return plan;
        }
    }
    let by_name: HashMap<&str, usize> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| (e.name.as_str(), i))
        .collect();
    let mut named = vec![false; entries.len()];
    named[manifest] = true;
    // Media id (as the export named it) → planned index.
    let mut planned: HashMap<String, usize> = HashMap::new();
    let (mut collections, mut memories) = (None, None);
    for (i, e) in entries.iter().enumerate() {
        let Some(rest) = e.name.strip_prefix(&root) else {
            continue;
        };
        if rest == "collections.json" {
            collections = Some(i);
            named[i] = true;
        } else if rest == "memories.json" {
            memories = Some(i);
            named[i] = true;
        } else if rest.starts_with("media/") && rest.ends_with(".json") {
            named[i] = true;
            let sidecar = match read(i).and_then(|b| parse::<Sidecar>(&b)) {
                Ok(s) => s,
                Err(reason) => {
                    plan.skipped.push(Skipped::new(&e.name, reason));
                    continue;
                }
            };
            let file = format!("{root}{}", sidecar.file);
            let Some(&entry) = by_name.get(file.as_str()) else {
                plan.skipped
                    .push(Skipped::new(&e.name, "its file is not in the archive"));
                continue;
            };
            named[entry] = true;
            planned.insert(sidecar.id.clone(), plan.media.len());
            plan.media.push(Planned {
                entry,
                filename: sidecar.filename.clone(),
                facts: Some(facts(&sidecar)),
                albums: Vec::new(),
            });
        }
    }
    if let Some(i) = collections {
        plan_collections(&mut plan, &planned, &entries[i].name, read(i));
    }
    if let Some(i) = memories {
        plan_memories(&mut plan, &planned, &entries[i].name, read(i));
    }
    for (i, e) in entries.iter().enumerate() {
        if named[i] || e.name.ends_with('/') {
            continue;
        }
        if e.name
            .strip_prefix(&root)
            .is_some_and(|r| r.starts_with("media/"))
        {
            // A file no sidecar names: imported from its bytes alone.
            plan.without_sidecar.push(e.name.clone());
            plan.media.push(Planned {
                entry: i,
                filename: split(&e.name).1.to_owned(),
                facts: None,
                albums: Vec::new(),
            });
        } else {
            plan.skipped
                .push(Skipped::new(&e.name, "not part of a timeline export"));
        }
    }
    plan
}

fn parse<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    serde_json::from_slice(bytes).map_err(|e| format!("not the JSON of a timeline export: {e}"))
}

/// What the sidecar adds to the file's own facts. The date only when it came from a sidecar
/// in the first place: otherwise the file tells it again, with its source.
fn facts(s: &Sidecar) -> ImportFacts {
    let taken_at = s
        .taken_at_unix
        .filter(|_| s.taken_at_source.as_deref() == Some("sidecar"));
    let position = s
        .location
        .as_ref()
        .and_then(|p| super::valid_position(p.latitude, p.longitude));
    ImportFacts {
        source: s.imported_from.clone().unwrap_or_else(|| "timeline".into()),
        taken_at,
        latitude: position.map(|p| p.0),
        longitude: position.map(|p| p.1),
        description: s.description.clone(),
        favorite: s.favorite,
        archived: s.archived,
    }
}

/// The items of a JSON list entry, each with its name (`name[k]`); the entry, or an item, of
/// another shape is named in the plan's skipped and left out.
fn items<T: serde::de::DeserializeOwned>(
    plan: &mut Plan,
    name: &str,
    bytes: Result<Vec<u8>, String>,
) -> Vec<(String, T)> {
    let list = match bytes.and_then(|b| parse::<Vec<serde_json::Value>>(&b)) {
        Ok(l) => l,
        Err(reason) => {
            plan.skipped.push(Skipped::new(name, reason));
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for (k, item) in list.into_iter().enumerate() {
        let at = format!("{name}[{k}]");
        match serde_json::from_value(item) {
            Ok(t) => out.push((at, t)),
            Err(e) => plan.skipped.push(Skipped::new(&at, e.to_string())),
        }
    }
    out
}

fn plan_collections(
    plan: &mut Plan,
    planned: &HashMap<String, usize>,
    name: &str,
    bytes: Result<Vec<u8>, String>,
) {
    for (_, c) in items::<Collection>(plan, name, bytes) {
        for id in &c.media {
            if let Some(&i) = planned.get(id) {
                plan.media[i].albums.push(c.name.clone());
            }
        }
        plan.albums.push((c.name, c.description));
    }
}

fn plan_memories(
    plan: &mut Plan,
    planned: &HashMap<String, usize>,
    name: &str,
    bytes: Result<Vec<u8>, String>,
) {
    for (at, m) in items::<Memory>(plan, name, bytes) {
        let Ok(date) = chrono::DateTime::parse_from_rfc3339(&m.date) else {
            plan.skipped.push(Skipped::new(
                &at,
                format!("a date that is not RFC 3339: {:?}", m.date),
            ));
            continue;
        };
        let kind = KINDS
            .iter()
            .find(|k| Some(**k) == m.kind.as_deref())
            .copied()
            .unwrap_or("photo");
        let place = m.place.and_then(|p| {
            super::valid_position(p.latitude, p.longitude).map(|(latitude, longitude)| Place {
                name: p.name,
                address: p.address,
                latitude,
                longitude,
            })
        });
        plan.memories.push(PlannedMemory {
            source_id: m.id,
            title: m.title,
            description: m.description,
            date: date.timestamp(),
            kind,
            place,
            media: m
                .media
                .iter()
                .filter_map(|id| planned.get(id).copied())
                .collect(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::test_entries;

    fn reader(
        files: HashMap<&'static str, String>,
        entries: &[EntryMeta],
    ) -> impl FnMut(usize) -> Result<Vec<u8>, String> {
        let names: Vec<String> = entries.iter().map(|e| e.name.clone()).collect();
        move |i| {
            files
                .get(names[i].as_str())
                .map(|s| s.clone().into_bytes())
                .ok_or_else(|| "unreadable".to_owned())
        }
    }

    #[test]
    fn sidecars_albums_and_memories_are_read_back() {
        let entries = test_entries(&[
            "x/media/a.jpg",
            "x/media/a.json",
            "x/media/b.mov",
            "x/media/b.json",
            "x/media/stray.jpg",
            "x/media/lost.json",
            "x/collections.json",
            "x/memories.json",
            "x/timeline-export.json",
            "x/other.txt",
        ]);
        let files = HashMap::from([
            (
                "x/timeline-export.json",
                r#"{"format":"timeline-export","version":1}"#.to_owned(),
            ),
            (
                "x/media/a.json",
                r#"{"id":"a","file":"media/a.jpg","filename":"IMG 1.jpg",
                "taken_at_unix":1600000000,"taken_at_source":"sidecar",
                "location":{"latitude":47.37,"longitude":8.54},"favorite":true,
                "imported_from":"google_photos","description":"lake"}"#
                    .to_owned(),
            ),
            (
                "x/media/b.json",
                r#"{"id":"b","file":"media/b.mov","filename":"IMG 1.MOV",
                "taken_at_unix":1600000000,"taken_at_source":"container_utc","location":null}"#
                    .to_owned(),
            ),
            (
                "x/media/lost.json",
                r#"{"id":"c","file":"media/c.jpg","filename":"c.jpg"}"#.to_owned(),
            ),
            (
                "x/collections.json",
                r#"[{"name":"Lake","description":"summer","media":["a","b"]},
                {"nothing":1}]"#
                    .to_owned(),
            ),
            (
                "x/memories.json",
                r#"[{"id":"m1","title":"At the lake","date":"2020-09-13T12:26:40+00:00",
                "type":"checkin","place":{"name":"Zürichsee","latitude":47.36,"longitude":8.545},
                "media":["a","c"]}]"#
                    .to_owned(),
            ),
        ]);
        let plan = plan(&entries, reader(files, &entries));
        assert_eq!(plan.media.len(), 3, "{plan:#?}");
        let a = &plan.media[0];
        assert_eq!((a.entry, a.filename.as_str()), (0, "IMG 1.jpg"));
        let facts = a.facts.as_ref().unwrap();
        assert_eq!(facts.taken_at, Some(1_600_000_000));
        assert_eq!(facts.position(), Some((47.37, 8.54)));
        assert_eq!(facts.source, "google_photos");
        assert!(facts.favorite);
        assert_eq!(a.albums, ["Lake"]);
        // A date the file itself gave is left to the file.
        assert_eq!(plan.media[1].facts.as_ref().unwrap().taken_at, None);
        assert_eq!(plan.media[2].entry, 4);
        assert_eq!(plan.without_sidecar, ["x/media/stray.jpg"]);
        assert_eq!(
            plan.albums,
            [("Lake".to_owned(), Some("summer".to_owned()))]
        );
        let m = &plan.memories[0];
        assert_eq!(
            (m.source_id.as_str(), m.kind, m.date),
            ("m1", "checkin", 1_600_000_000)
        );
        assert_eq!(m.media, [0]);
        assert_eq!(
            m.place.as_ref().and_then(|p| p.name.as_deref()),
            Some("Zürichsee")
        );
        let skipped: Vec<&str> = plan.skipped.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            skipped,
            ["x/media/lost.json", "x/collections.json[1]", "x/other.txt"],
            "{plan:#?}"
        );
    }

    #[test]
    fn an_archive_without_its_manifest_or_of_another_version_is_named() {
        let entries = test_entries(&["media/a.jpg"]);
        let none = plan(&entries, |_| Err("none".into()));
        assert!(none.media.is_empty());
        assert_eq!(none.skipped[0].name, MANIFEST);
        let entries = test_entries(&["timeline-export.json", "media/a.jpg"]);
        let other = plan(&entries, |_| {
            Ok(br#"{"format":"timeline-export","version":9}"#.to_vec())
        });
        assert!(other.media.is_empty());
        assert!(other.skipped[0].reason.contains("version 9"), "{other:#?}");
    }
}

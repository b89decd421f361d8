//! Google Takeout (Google Photos): which JSON sidecar belongs to which media file, which
//! folders are albums, what to skip. Pure planning over entry names and sidecar contents;
//! names are matched as strings and never become paths.
//!
//! Google's naming rules (as public importers found them: immich-go `adapters/googlePhotos`,
//! GooglePhotosTakeoutHelper PR #449):
//! - a sidecar is `NAME.EXT.supplemental-metadata.json` (older: `NAME.EXT.json`, some without
//!   the extension: `NAME.json`);
//! - the sidecar's name is cut at 46–51 characters, and the `supplemental-metadata` suffix with
//!   it, anywhere;
//! - a duplicate number sits in different places: `IMG(1).JPG` pairs with `IMG.JPG(1).json`
//!   and `IMG.JPG.supplemental-metadata(1).json`;
//! - edited copies `NAME-edited.EXT` (localized) share the original's sidecar;
//! - album folders hold copies of the year folders' photos and a `metadata.json` (its name
//!   localized) whose `title` is the album's name.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;

use super::{EntryMeta, ImportFacts, Plan, Planned, Skipped, is_media_name, split, valid_position};

/// Suffixes Google gives edited copies, by language.
const EDITED_SUFFIXES: &[&str] = &[
    "-edited",
    "-modifié",
    "-bearbeitet",
    "-editado",
    "-modificato",
    "-bewerkt",
    "-redigerad",
    "-redigeret",
    "-muokattu",
    "-editat",
    "-upravené",
    "-edytowane",
    "-編集済み",
];

/// The sidecar suffix, cut anywhere by Google's name limit.
const SUPPLEMENTAL: &str = ".supplemental-metadata";

/// A sidecar's name is cut once it reaches about this many UTF-16 units (46–51 seen): a match
/// on a prefix shorter than the media's name is only trusted at this length or more.
const TRUNCATED_AT: usize = 46;

/// What a photo sidecar says.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sidecar {
    /// When the photo was taken (a UTC instant, seconds); `None` for 0 or missing.
    pub taken_at: Option<i64>,
    /// `geoDataExif`, else `geoData`; 0,0 means none.
    pub position: Option<(f64, f64)>,
    pub description: Option<String>,
    pub favorite: bool,
    pub archived: bool,
    pub trashed: bool,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawSidecar {
    title: Option<String>,
    description: Option<String>,
    photo_taken_time: Option<RawTime>,
    creation_time: Option<RawTime>,
    geo_data: Option<RawGeo>,
    geo_data_exif: Option<RawGeo>,
    #[serde(default)]
    favorited: bool,
    #[serde(default)]
    archived: bool,
    #[serde(default)]
    trashed: bool,
}

#[derive(Debug, Deserialize)]
struct RawTime {
    timestamp: serde_json::Value,
}

#[derive(Debug, Deserialize)]
struct RawGeo {
    latitude: Option<f64>,
    longitude: Option<f64>,
}

/// A parsed JSON entry: a photo's sidecar or an album's metadata.
#[derive(Debug, Clone, PartialEq)]
enum Json {
    Photo(Sidecar),
    Album {
        title: String,
        description: Option<String>,
    },
}

fn timestamp(t: &RawTime) -> Option<i64> {
    let secs = match &t.timestamp {
        serde_json::Value::String(s) => s.trim().parse::<i64>().ok()?,
        serde_json::Value::Number(n) => n.as_i64()?,
        _ => return None,
    };
    (secs != 0).then_some(secs)
}

fn position(g: Option<&RawGeo>) -> Option<(f64, f64)> {
    let g = g?;
    valid_position(g.latitude?, g.longitude?)
}

/// Parses one JSON entry; `Err` with a reason for JSON of another shape.
fn parse(bytes: &[u8]) -> Result<Json, String> {
    let raw: RawSidecar =
        serde_json::from_slice(bytes).map_err(|e| format!("not a Takeout JSON: {e}"))?;
    if raw.photo_taken_time.is_some() || raw.geo_data.is_some() || raw.geo_data_exif.is_some() {
        let non_empty = |s: Option<String>| s.filter(|d| !d.trim().is_empty());
        return Ok(Json::Photo(Sidecar {
            taken_at: raw
                .photo_taken_time
                .as_ref()
                .and_then(timestamp)
                .or_else(|| raw.creation_time.as_ref().and_then(timestamp)),
            position: position(raw.geo_data_exif.as_ref())
                .or_else(|| position(raw.geo_data.as_ref())),
            description: non_empty(raw.description),
            favorite: raw.favorited,
            archived: raw.archived,
            trashed: raw.trashed,
        }));
    }
    match raw.title {
        Some(title) if !title.trim().is_empty() => Ok(Json::Album {
            title: title.trim().to_owned(),
            description: raw.description.filter(|d| !d.trim().is_empty()),
        }),
        _ => Err("a JSON with neither a photo's time nor an album's title".into()),
    }
}

/// `IMG_1(2).JPG` → (`IMG_1.JPG`, 2); `IMG_1.JPG` → (`IMG_1.JPG`, 0).
fn media_number(name: &str) -> (String, u32) {
    let (stem, ext) = match name.rfind('.') {
        Some(i) if i > 0 => (&name[..i], &name[i..]),
        _ => (name, ""),
    };
    match trailing_number(stem) {
        Some((base, n)) => (format!("{base}{ext}"), n),
        None => (name.to_owned(), 0),
    }
}

/// `X(12)` → (`X`, 12).
fn trailing_number(s: &str) -> Option<(&str, u32)> {
    let inner = s.strip_suffix(')')?;
    let open = inner.rfind('(')?;
    let n = inner[open + 1..].parse::<u32>().ok()?;
    (open > 0).then(|| (&inner[..open], n))
}

/// A sidecar's name without `.json` and its duplicate number: `IMG.JPG(1).json` and
/// `IMG.JPG.supplemental-metadata(1).json` → (`IMG.JPG…`, 1).
fn json_key(name: &str) -> Option<(&str, u32)> {
    let stem = name.strip_suffix(".json")?;
    Some(trailing_number(stem).unwrap_or((stem, 0)))
}

fn utf16_len(s: &str) -> usize {
    s.encode_utf16().count()
}

/// The original's name of an edited copy (`IMG-edited.jpg` → `IMG.jpg`).
fn unedited(name: &str) -> Option<String> {
    let (stem, ext) = match name.rfind('.') {
        Some(i) if i > 0 => (&name[..i], &name[i..]),
        _ => (name, ""),
    };
    EDITED_SUFFIXES
        .iter()
        .find_map(|s| stem.strip_suffix(s))
        .filter(|base| !base.is_empty())
        .map(|base| format!("{base}{ext}"))
}

/// How well a sidecar stem matches a media name (higher is better); `None`: no match.
fn score(json_stem: &str, media: &str) -> Option<usize> {
    let full = format!("{media}{SUPPLEMENTAL}");
    if json_stem == media || json_stem == full {
        return Some(3 * 1024 + utf16_len(json_stem));
    }
    // The suffix cut anywhere after the media's own name.
    if json_stem.len() > media.len() && full.starts_with(json_stem) {
        return Some(2 * 1024 + utf16_len(json_stem));
    }
    // The media's name itself cut (only long names are).
    if utf16_len(json_stem) >= TRUNCATED_AT && media.starts_with(json_stem) {
        return Some(1024 + utf16_len(json_stem));
    }
    // A sidecar without the media's extension.
    let without_ext = media
        .rfind('.')
        .map(|i| &media[..i])
        .filter(|s| !s.is_empty());
    (without_ext == Some(json_stem)).then_some(utf16_len(json_stem))
}

/// Whether a folder is one of Google's per-year folders (not an album).
fn is_year_folder(dir: &str) -> bool {
    let name = split(dir).1;
    let digits: String = name.chars().rev().take(4).collect();
    name.len() > 4
        && digits.chars().all(|c| c.is_ascii_digit())
        && !name
            .chars()
            .rev()
            .nth(4)
            .is_some_and(|c| c.is_ascii_digit())
}

/// Plans the import of the Takeout entries `entries` (every part's, together). `read` gives
/// a JSON entry's bytes (they are small; the caller caps them).
pub fn plan(entries: &[EntryMeta], mut read: impl FnMut(usize) -> Result<Vec<u8>, String>) -> Plan {
    let mut plan = Plan::default();
    // Per folder: its sidecars (stem, number, parsed) and its media (entry index).
    let mut jsons: BTreeMap<&str, Vec<(&str, u32, Sidecar)>> = BTreeMap::new();
    let mut album_meta: HashMap<&str, (String, Option<String>)> = HashMap::new();
    let mut media: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, e) in entries.iter().enumerate() {
        let (dir, name) = split(&e.name);
        if name.ends_with(".json") {
            let parsed = read(i).and_then(|b| parse(&b));
            match (parsed, json_key(name)) {
                (Ok(Json::Photo(s)), Some((stem, n))) => {
                    jsons.entry(dir).or_default().push((stem, n, s));
                }
                (Ok(Json::Album { title, description }), _) => {
                    album_meta.insert(dir, (title, description));
                }
                (Err(reason), _) => plan.skipped.push(Skipped::new(&e.name, reason)),
                (Ok(_), None) => {}
            }
        } else if is_media_name(name) {
            media.entry(dir).or_default().push(i);
        } else if !name.is_empty() {
            plan.skipped
                .push(Skipped::new(&e.name, "not a photo, video or sidecar"));
        }
    }

    let mut used: HashMap<(&str, usize), bool> = HashMap::new();
    // One media file per (name, size): year folders first, so albums link to that copy.
    let mut seen: HashMap<(String, u64), usize> = HashMap::new();
    let mut dirs: Vec<&str> = media.keys().copied().collect();
    dirs.sort_by_key(|d| (!is_year_folder(d), *d));
    for dir in dirs {
        let album = match album_meta.get(dir) {
            Some((title, _)) => Some(title.clone()),
            None if is_year_folder(dir) || dir.is_empty() => None,
            None => Some(split(dir).1.to_owned()).filter(|n| {
                !matches!(
                    n.as_str(),
                    "" | "." | ".." | "Google Photos" | "Google Fotos"
                )
            }),
        };
        if let Some(name) = &album
            && !plan.albums.iter().any(|(n, _)| n == name)
        {
            let description = album_meta.get(dir).and_then(|(_, d)| d.clone());
            plan.albums.push((name.clone(), description));
        }
        let sidecars = jsons.get(dir).map(Vec::as_slice).unwrap_or_default();
        for &i in &media[dir] {
            let name = split(&entries[i].name).1;
            let found = find_sidecar(name, sidecars);
            if let Some(j) = found {
                used.insert((dir, j), true);
            }
            let sidecar = found.map(|j| sidecars[j].2.clone());
            if sidecar.as_ref().is_some_and(|s| s.trashed) {
                plan.skipped
                    .push(Skipped::new(&entries[i].name, "in Google Photos' trash"));
                continue;
            }
            let key = (name.to_owned(), entries[i].size);
            if let Some(&k) = seen.get(&key) {
                let p: &mut Planned = &mut plan.media[k];
                if p.facts.is_none() {
                    p.facts = sidecar.as_ref().map(ImportFacts::from);
                }
                if let Some(a) = &album
                    && !p.albums.contains(a)
                {
                    p.albums.push(a.clone());
                }
                continue;
            }
            if sidecar.is_none() {
                plan.without_sidecar.push(entries[i].name.clone());
            }
            seen.insert(key, plan.media.len());
            plan.media.push(Planned {
                entry: i,
                filename: name.to_owned(),
                facts: sidecar.as_ref().map(ImportFacts::from),
                albums: album.iter().cloned().collect(),
            });
        }
    }
    for (dir, list) in &jsons {
        for (j, (stem, n, _)) in list.iter().enumerate() {
            if !used.contains_key(&(*dir, j)) {
                let number = if *n > 0 {
                    format!("({n})")
                } else {
                    String::new()
                };
                let name = if dir.is_empty() {
                    format!("{stem}{number}.json")
                } else {
                    format!("{dir}/{stem}{number}.json")
                };
                plan.skipped
                    .push(Skipped::new(&name, "a sidecar JSON with no media file"));
            }
        }
    }
    // A media file imported from its own bytes is named once, not also as a copy.
    plan.without_sidecar.retain(|n| {
        plan.media
            .iter()
            .any(|p| entries[p.entry].name == *n && p.facts.is_none())
    });
    plan
}

/// The best sidecar in the folder for the media file `name` (its own, or its original's for
/// an edited copy).
fn find_sidecar(name: &str, sidecars: &[(&str, u32, Sidecar)]) -> Option<usize> {
    let (base, n) = media_number(name);
    let best = |media: &str, n: u32| {
        sidecars
            .iter()
            .enumerate()
            .filter(|(_, (_, m, _))| *m == n)
            .filter_map(|(j, (stem, _, _))| score(stem, media).map(|s| (s, j)))
            .max()
            .map(|(_, j)| j)
    };
    best(&base, n)
        .or_else(|| (n > 0).then(|| best(name, 0)).flatten())
        .or_else(|| unedited(&base).and_then(|original| best(&original, n)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::test_entries as entries;

    fn sidecar_json(ts: i64) -> Vec<u8> {
        format!(r#"{{"title":"x","photoTakenTime":{{"timestamp":"{ts}"}},"geoData":{{"latitude":0.0,"longitude":0.0}}}}"#)
            .into_bytes()
    }

    /// Plans with sidecars whose timestamp is their entry index, so a pairing is visible.
    fn plan_of(names: &[&str]) -> Plan {
        let es = entries(names);
        plan(&es, |i| {
            if es[i].name.ends_with("metadata.json") && !es[i].name.contains("supplemental") {
                Ok(br#"{"title":"Summer 2019","description":"the lake"}"#.to_vec())
            } else {
                Ok(sidecar_json(1_000 + i as i64))
            }
        })
    }

    fn pair_of(p: &Plan, file: &str) -> Option<i64> {
        p.media
            .iter()
            .find(|m| m.filename == file)
            .unwrap_or_else(|| panic!("{file} not planned: {p:#?}"))
            .facts
            .as_ref()
            .and_then(|s| s.taken_at)
    }

    #[test]
    fn sidecars_pair_by_every_naming_rule() {
        let d = "Takeout/Google Photos/Photos from 2019";
        let long = "PXL_20190812_101112345.PORTRAIT-01.COVER_long_name.jpg";
        let names = [
            format!("{d}/IMG_1.JPG"),
            format!("{d}/IMG_1.JPG.supplemental-metadata.json"),
            format!("{d}/IMG_2.JPG"),
            format!("{d}/IMG_2.JPG.json"),
            format!("{d}/IMG_3.JPG"),
            format!("{d}/IMG_3.JPG.supplemental-me.json"),
            format!("{d}/IMG_4(1).JPG"),
            format!("{d}/IMG_4.JPG(1).json"),
            format!("{d}/IMG_4.JPG"),
            format!("{d}/IMG_4.JPG.json"),
            format!("{d}/IMG_5(1).JPG"),
            format!("{d}/IMG_5.JPG.supplemental-metadata(1).json"),
            format!("{d}/{long}"),
            format!("{d}/{}.json", &long[..46]),
            format!("{d}/IMG_6-edited.JPG"),
            format!("{d}/IMG_6.JPG"),
            format!("{d}/IMG_6.JPG.supplemental-metadata.json"),
            format!("{d}/IMG_7-bearbeitet.jpg"),
            format!("{d}/IMG_7.jpg.json"),
            format!("{d}/IMG_8.jpg"),
            format!("{d}/IMG_8.json"),
            format!("{d}/alone.jpg"),
            format!("{d}/orphan.jpg.json"),
        ];
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let p = plan_of(&refs);
        assert_eq!(pair_of(&p, "IMG_1.JPG"), Some(1_001));
        assert_eq!(pair_of(&p, "IMG_2.JPG"), Some(1_003));
        assert_eq!(pair_of(&p, "IMG_3.JPG"), Some(1_005), "a cut suffix");
        assert_eq!(
            pair_of(&p, "IMG_4(1).JPG"),
            Some(1_007),
            "(1) after the extension"
        );
        assert_eq!(
            pair_of(&p, "IMG_4.JPG"),
            Some(1_009),
            "the unnumbered one its own"
        );
        assert_eq!(
            pair_of(&p, "IMG_5(1).JPG"),
            Some(1_011),
            "(1) after the suffix"
        );
        assert_eq!(pair_of(&p, long), Some(1_013), "a name cut at 46");
        assert_eq!(
            pair_of(&p, "IMG_6-edited.JPG"),
            Some(1_016),
            "the original's"
        );
        assert_eq!(pair_of(&p, "IMG_6.JPG"), Some(1_016));
        assert_eq!(
            pair_of(&p, "IMG_7-bearbeitet.jpg"),
            Some(1_018),
            "localized edit"
        );
        assert_eq!(
            pair_of(&p, "IMG_8.jpg"),
            Some(1_020),
            "no extension in the sidecar"
        );
        assert_eq!(pair_of(&p, "alone.jpg"), None);
        assert_eq!(p.without_sidecar, vec![format!("{d}/alone.jpg")]);
        let skipped: Vec<&str> = p.skipped.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(skipped, vec![format!("{d}/orphan.jpg.json")]);
        assert!(p.albums.is_empty(), "a year folder is no album");
    }

    #[test]
    fn album_copies_are_stored_once_and_linked_to_each_album() {
        let names = [
            "Takeout/Google Photos/Photos from 2019/a.jpg",
            "Takeout/Google Photos/Photos from 2019/a.jpg.supplemental-metadata.json",
            "Takeout/Google Photos/Summer/a.jpg",
            "Takeout/Google Photos/Summer/a.jpg.supplemental-metadata.json",
            "Takeout/Google Photos/Summer/metadata.json",
            "Takeout/Google Photos/Lake/a.jpg",
            "Takeout/Google Photos/Lake/b.jpg",
        ];
        let p = plan_of(&names);
        assert_eq!(p.media.len(), 2, "{p:#?}");
        let a = &p.media[0];
        assert_eq!(a.entry, 0, "the year folder's copy is stored");
        assert_eq!(a.albums, vec!["Lake".to_owned(), "Summer 2019".to_owned()]);
        assert_eq!(a.facts.as_ref().and_then(|s| s.taken_at), Some(1_001));
        assert_eq!(p.media[1].albums, vec!["Lake".to_owned()]);
        assert!(
            p.albums
                .contains(&("Summer 2019".to_owned(), Some("the lake".to_owned())))
        );
        assert!(p.albums.contains(&("Lake".to_owned(), None)));
    }

    #[test]
    fn sidecar_fields_and_bad_json() {
        let json =
            br#"{"title":"a.jpg","description":"at the lake","favorited":true,"archived":true,
            "photoTakenTime":{"timestamp":"1565604672"},
            "geoData":{"latitude":1.5,"longitude":2.5},
            "geoDataExif":{"latitude":46.2,"longitude":6.1}}"#;
        assert_eq!(
            parse(json),
            Ok(Json::Photo(Sidecar {
                taken_at: Some(1_565_604_672),
                position: Some((46.2, 6.1)),
                description: Some("at the lake".into()),
                favorite: true,
                archived: true,
                trashed: false,
            }))
        );
        let zero = br#"{"photoTakenTime":{"timestamp":"0"},"geoDataExif":{"latitude":0.0,"longitude":0.0},"geoData":{"latitude":3.0,"longitude":4.0}}"#;
        let Ok(Json::Photo(s)) = parse(zero) else {
            panic!("a sidecar")
        };
        assert_eq!((s.taken_at, s.position), (None, Some((3.0, 4.0))));
        assert!(parse(b"[1,2]").is_err());
        assert!(parse(br#"{"photoTakenTime":{"timestamp":{"x":1}}}"#).is_ok());
        assert!(parse(br#"{"unrelated":true}"#).is_err());
        assert!(parse(b"{\"title\": 12}").is_err());
    }

    #[test]
    fn trashed_items_are_skipped_with_their_reason() {
        let es = entries(&["Photos from 2020/t.jpg", "Photos from 2020/t.jpg.json"]);
        let p = plan(&es, |_| {
            Ok(br#"{"photoTakenTime":{"timestamp":"5"},"trashed":true}"#.to_vec())
        });
        assert!(p.media.is_empty());
        assert_eq!(p.skipped[0].reason, "in Google Photos' trash");
    }

    #[test]
    fn numbering_and_edit_names() {
        assert_eq!(media_number("IMG(1).JPG"), ("IMG.JPG".into(), 1));
        assert_eq!(media_number("(1).JPG"), ("(1).JPG".into(), 0));
        assert_eq!(json_key("a.jpg(2).json"), Some(("a.jpg", 2)));
        assert_eq!(unedited("x-modifié.jpg").as_deref(), Some("x.jpg"));
        assert_eq!(unedited("-edited.jpg"), None);
        assert!(is_year_folder("Takeout/Google Photos/Photos from 2019"));
        assert!(is_year_folder("Takeout/Google Fotos/Fotos von 2019"));
        assert!(!is_year_folder("Takeout/Google Photos/Trip 12019"));
        assert!(!is_year_folder("Takeout/Google Photos/Summer"));
    }
}

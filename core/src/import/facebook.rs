//! Facebook "Download your information" (JSON format): which media the posts, albums and
//! uncategorized photos name, with the dates and places Facebook keeps only in JSON (it strips
//! EXIF from the files), the albums, and the posts that become memories. Pure planning over
//! entry names and JSON contents; `uri`s and names are matched as strings, never paths.
//!
//! The format (sources in `docs/IMPORTS.md`):
//! - posts: `…/posts/your_posts__check_ins__photos_and_videos_N.json` (older: `your_posts_N.json`),
//!   an array of posts with `timestamp`, `data[].post` (the text) and `attachments[].data[]`
//!   holding a `media` or a `place`;
//! - albums: `…/posts/album/N.json` with `name`, `description` and `photos[]`;
//! - uncategorized photos: `your_uncategorized_photos*.json` with `other_photos_v2[]`;
//! - a media object: `uri` (from the export's root), `creation_timestamp`, `description`, and
//!   `media_metadata.{photo,video}_metadata.exif_data[0]` with `taken_timestamp` and sometimes
//!   `latitude`/`longitude`; a date is `taken_timestamp`, else `creation_timestamp`, else the
//!   post's `timestamp` (seconds, some exports milliseconds);
//! - text is mojibake: UTF-8 bytes written as `\u00c3\u00a9` escapes, one per byte.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{
    EntryMeta, ImportFacts, Place, Plan, Planned, PlannedMemory, Skipped, is_media_name, split,
    valid_position,
};

/// A memory's title: the text's first line, cut here (characters).
const TITLE_CHARS: usize = 100;
/// The schema's limit on a memory's description.
const DESCRIPTION_CHARS: usize = 50_000;
/// A timestamp above this is milliseconds (1e11 seconds is the year 5138).
const MILLIS_ABOVE: i64 = 100_000_000_000;

#[derive(Debug, Deserialize)]
struct RawMedia {
    uri: Option<String>,
    creation_timestamp: Option<Value>,
    description: Option<String>,
    media_metadata: Option<RawMediaMeta>,
}

#[derive(Debug, Deserialize)]
struct RawMediaMeta {
    photo_metadata: Option<RawExifs>,
    video_metadata: Option<RawExifs>,
}

#[derive(Debug, Deserialize)]
struct RawExifs {
    #[serde(default)]
    exif_data: Vec<RawExif>,
}

#[derive(Debug, Deserialize)]
struct RawExif {
    taken_timestamp: Option<Value>,
    latitude: Option<f64>,
    longitude: Option<f64>,
}

#[derive(Debug, Deserialize)]
struct RawPost {
    timestamp: Option<Value>,
    #[serde(default)]
    data: Vec<RawPostData>,
    #[serde(default)]
    attachments: Vec<RawAttachment>,
}

#[derive(Debug, Deserialize)]
struct RawPostData {
    post: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RawAttachment {
    #[serde(default)]
    data: Vec<RawAttachmentData>,
}

#[derive(Debug, Deserialize)]
struct RawAttachmentData {
    media: Option<RawMedia>,
    place: Option<RawPlace>,
}

#[derive(Debug, Deserialize)]
struct RawPlace {
    name: Option<String>,
    address: Option<String>,
    coordinate: Option<RawCoordinate>,
}

#[derive(Debug, Deserialize)]
struct RawCoordinate {
    latitude: f64,
    longitude: f64,
}

#[derive(Debug, Deserialize)]
struct RawAlbum {
    name: String,
    description: Option<String>,
    #[serde(default)]
    photos: Vec<RawMedia>,
}

#[derive(Debug, Deserialize)]
struct RawUncategorized {
    other_photos_v2: Vec<RawMedia>,
}

/// Repairs Facebook's mojibake: a string whose characters are all below 256 and whose bytes
/// (one per character) are valid UTF-8 was UTF-8 written as Latin-1; anything else is kept.
pub fn repair(s: &str) -> String {
    if s.is_ascii() || s.chars().any(|c| u32::from(c) > 0xFF) {
        return s.to_owned();
    }
    let bytes: Vec<u8> = s.chars().filter_map(|c| u8::try_from(c).ok()).collect();
    String::from_utf8(bytes).unwrap_or_else(|_| s.to_owned())
}

/// A timestamp in seconds (milliseconds converted); `None` for 0, negative or not a number.
fn seconds(v: Option<&Value>) -> Option<i64> {
    let n = match v? {
        Value::Number(n) => n.as_i64()?,
        Value::String(s) => s.trim().parse::<i64>().ok()?,
        _ => return None,
    };
    match n {
        n if n <= 0 => None,
        n if n > MILLIS_ABOVE => Some(n / 1000),
        n => Some(n),
    }
}

/// The text repaired and trimmed, if any is left.
fn text(s: Option<&String>) -> Option<String> {
    s.map(|t| repair(t).trim().to_owned())
        .filter(|t| !t.is_empty())
}

impl RawMedia {
    fn exif(&self) -> Option<&RawExif> {
        let meta = self.media_metadata.as_ref()?;
        meta.photo_metadata
            .as_ref()
            .or(meta.video_metadata.as_ref())?
            .exif_data
            .first()
    }

    /// The media's facts and how good its date is (2: taken, 1: created, 0: the post's);
    /// `fallback` is the post's date.
    fn facts(&self, fallback: Option<i64>, place: Option<(f64, f64)>) -> (ImportFacts, u8) {
        let exif = self.exif();
        let (taken, rank) = match (
            seconds(exif.and_then(|e| e.taken_timestamp.as_ref())),
            seconds(self.creation_timestamp.as_ref()),
        ) {
            (Some(t), _) => (Some(t), 2),
            (None, Some(c)) => (Some(c), 1),
            (None, None) => (fallback, 0),
        };
        let position = exif
            .and_then(|e| valid_position(e.latitude?, e.longitude?))
            .or(place);
        let facts = ImportFacts {
            source: "facebook".into(),
            taken_at: taken,
            latitude: position.map(|p| p.0),
            longitude: position.map(|p| p.1),
            description: text(self.description.as_ref()),
            favorite: false,
            archived: false,
        };
        (facts, rank)
    }
}

/// What a JSON entry is, by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Posts,
    Album,
    Uncategorized,
}

fn kind(name: &str) -> Option<Kind> {
    let (dir, file) = split(name);
    let file = file.strip_suffix(".json")?;
    if file.starts_with("your_posts") {
        Some(Kind::Posts)
    } else if split(dir).1 == "album" {
        Some(Kind::Album)
    } else if file.starts_with("your_uncategorized_photos") {
        Some(Kind::Uncategorized)
    } else {
        None
    }
}

/// A posts JSON's posts with their index, and the ones of another shape with their reason (one
/// odd post is named; the others are imported).
type Posts = (Vec<(usize, RawPost)>, Vec<(usize, String)>);

/// The posts of a posts JSON: an array, or (older exports) an object holding one.
fn posts(bytes: &[u8]) -> Result<Posts, String> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
    let list = match v {
        Value::Array(a) => a,
        Value::Object(o) => o
            .into_iter()
            .find_map(|(_, v)| match v {
                Value::Array(a) => Some(a),
                _ => None,
            })
            .ok_or("a posts JSON with no list of posts")?,
        _ => return Err("a posts JSON that is neither a list nor an object".into()),
    };
    let (mut good, mut bad) = (Vec::new(), Vec::new());
    for (n, p) in list.into_iter().enumerate() {
        match serde_json::from_value(p) {
            Ok(post) => good.push((n, post)),
            Err(e) => bad.push((n, format!("a post of another shape: {e}"))),
        }
    }
    Ok((good, bad))
}

/// Builds the plan as the JSON entries are read.
struct Planner<'a> {
    entries: &'a [EntryMeta],
    /// Every media entry by each of its name's suffixes at a `/`, so a `uri` from the export's
    /// root finds its entry under any top folder the zip adds.
    by_uri: HashMap<&'a str, usize>,
    /// Entry index → index in `plan.media`.
    planned: HashMap<usize, usize>,
    /// Index in `plan.media` → how good its date is (see [`RawMedia::facts`]).
    date_rank: HashMap<usize, u8>,
    plan: Plan,
}

impl<'a> Planner<'a> {
    fn new(entries: &'a [EntryMeta]) -> Self {
        let mut by_uri = HashMap::new();
        for (i, e) in entries.iter().enumerate() {
            if !is_media_name(&e.name) {
                continue;
            }
            by_uri.entry(e.name.as_str()).or_insert(i);
            for (at, _) in e.name.match_indices('/') {
                by_uri.entry(&e.name[at + 1..]).or_insert(i);
            }
        }
        Self {
            entries,
            by_uri,
            planned: HashMap::new(),
            date_rank: HashMap::new(),
            plan: Plan::default(),
        }
    }

    /// Plans the media `m` (named by the JSON entry `json`), merging what several JSONs say of
    /// one file; returns its index in `plan.media`.
    fn media(
        &mut self,
        json: &str,
        m: &RawMedia,
        (facts, rank): (ImportFacts, u8),
        album: Option<&str>,
    ) -> Option<usize> {
        let Some(uri) = m.uri.as_deref().map(|u| u.trim_start_matches('/')) else {
            self.plan
                .skipped
                .push(Skipped::new(json, "a media object with no uri"));
            return None;
        };
        let Some(&entry) = self.by_uri.get(uri) else {
            self.plan.skipped.push(Skipped::new(
                uri,
                format!("named by {json} but not in the export"),
            ));
            return None;
        };
        let k = *self.planned.entry(entry).or_insert_with(|| {
            self.plan.media.push(Planned {
                entry,
                filename: split(&self.entries[entry].name).1.to_owned(),
                facts: None,
                albums: Vec::new(),
            });
            self.plan.media.len() - 1
        });
        let p = &mut self.plan.media[k];
        let better_date = self.date_rank.get(&k).is_none_or(|&r| rank > r);
        if better_date && facts.taken_at.is_some() {
            self.date_rank.insert(k, rank);
        }
        match &mut p.facts {
            None => p.facts = Some(facts),
            Some(f) => {
                if better_date && facts.taken_at.is_some() || f.taken_at.is_none() {
                    f.taken_at = facts.taken_at.or(f.taken_at);
                }
                if f.position().is_none() {
                    (f.latitude, f.longitude) = (facts.latitude, facts.longitude);
                }
                f.description = f.description.take().or(facts.description);
            }
        }
        if let Some(a) = album
            && !p.albums.iter().any(|x| x == a)
        {
            p.albums.push(a.to_owned());
        }
        Some(k)
    }

    fn post(&mut self, json: &str, n: usize, post: &RawPost) {
        let date = seconds(post.timestamp.as_ref());
        let body = post
            .data
            .iter()
            .find_map(|d| text(d.post.as_ref()))
            .filter(|t| !t.is_empty());
        let place = post
            .attachments
            .iter()
            .flat_map(|a| &a.data)
            .find_map(|d| d.place.as_ref())
            .and_then(|p| {
                let c = p.coordinate.as_ref()?;
                let (latitude, longitude) = valid_position(c.latitude, c.longitude)?;
                Some(Place {
                    name: text(p.name.as_ref()),
                    address: text(p.address.as_ref()),
                    latitude,
                    longitude,
                })
            });
        let at = place.as_ref().map(|p| (p.latitude, p.longitude));
        let mut media = Vec::new();
        let mut uris = Vec::new();
        for m in post
            .attachments
            .iter()
            .flat_map(|a| &a.data)
            .filter_map(|d| d.media.as_ref())
        {
            if let Some(k) = self.media(json, m, m.facts(date, at), None)
                && !media.contains(&k)
            {
                media.push(k);
                uris.push(m.uri.clone().unwrap_or_default());
            }
        }
        let Some(body) = body else { return };
        let Some(date) = date.or_else(|| {
            media
                .iter()
                .find_map(|&k| self.plan.media[k].facts.as_ref()?.taken_at)
        }) else {
            self.plan.skipped.push(Skipped::new(
                &format!("{json} post {n}"),
                "a post with no date",
            ));
            return;
        };
        let place = place.or_else(|| {
            media.iter().find_map(|&k| {
                let (latitude, longitude) = self.plan.media[k].facts.as_ref()?.position()?;
                Some(Place {
                    name: None,
                    address: None,
                    latitude,
                    longitude,
                })
            })
        });
        let kind = match media.first() {
            None => "text",
            Some(&k) if is_video(&self.plan.media[k].filename) => "video",
            Some(_) => "photo",
        };
        let mut id = Sha256::new();
        id.update(date.to_be_bytes());
        id.update(body.as_bytes());
        for u in &uris {
            id.update([0]);
            id.update(u.as_bytes());
        }
        self.plan.memories.push(PlannedMemory {
            source_id: format!("post:{}", &hex::encode(id.finalize())[..32]),
            title: title(&body),
            description: Some(body.chars().take(DESCRIPTION_CHARS).collect()),
            date,
            kind,
            place,
            media,
        });
    }

    fn album(&mut self, json: &str, album: &RawAlbum) {
        let Some(name) = text(Some(&album.name)) else {
            self.plan
                .skipped
                .push(Skipped::new(json, "an album with no name"));
            return;
        };
        if !self.plan.albums.iter().any(|(n, _)| *n == name) {
            let description = text(album.description.as_ref());
            self.plan.albums.push((name.clone(), description));
        }
        for m in &album.photos {
            self.media(json, m, m.facts(None, None), Some(&name));
        }
    }
}

fn is_video(name: &str) -> bool {
    let ext = name.rsplit_once('.').map_or("", |(_, e)| e);
    ["mp4", "mov", "m4v", "3gp", "mkv", "webm", "avi"]
        .iter()
        .any(|v| v.eq_ignore_ascii_case(ext))
}

/// The first line of the text, cut at [`TITLE_CHARS`] characters with an ellipsis.
fn title(body: &str) -> String {
    let line = body.lines().next().unwrap_or(body).trim();
    if line.chars().count() <= TITLE_CHARS {
        return line.to_owned();
    }
    let cut: String = line.chars().take(TITLE_CHARS - 1).collect();
    format!("{}…", cut.trim_end())
}

/// Whether an entry is a message's attachment (other people's photos in a conversation, not
/// the user's library).
fn is_message(name: &str) -> bool {
    name.split('/').any(|c| c == "messages" || c == "inbox")
}

/// Plans the import of the Facebook entries `entries` (every part's, together). `read` gives
/// a JSON entry's bytes (the caller caps them).
pub fn plan(entries: &[EntryMeta], mut read: impl FnMut(usize) -> Result<Vec<u8>, String>) -> Plan {
    let mut p = Planner::new(entries);
    // Albums first, so a photo's album is known whichever JSON names it first; posts next,
    // whose media facts fill in what albums lack.
    let mut jsons: Vec<(Kind, usize)> = entries
        .iter()
        .enumerate()
        .filter_map(|(i, e)| kind(&e.name).map(|k| (k, i)))
        .collect();
    jsons.sort_by_key(|&(k, i)| (k != Kind::Album, k != Kind::Posts, i));
    for (k, i) in jsons {
        let name = &entries[i].name;
        let bytes = match read(i) {
            Ok(b) => b,
            Err(e) => {
                p.plan.skipped.push(Skipped::new(name, e));
                continue;
            }
        };
        match k {
            Kind::Posts => match posts(&bytes) {
                Ok((list, odd)) => {
                    for (n, post) in &list {
                        p.post(name, *n, post);
                    }
                    for (n, why) in odd {
                        p.plan
                            .skipped
                            .push(Skipped::new(&format!("{name} post {n}"), why));
                    }
                }
                Err(e) => p.plan.skipped.push(Skipped::new(name, e)),
            },
            Kind::Album => match serde_json::from_slice::<RawAlbum>(&bytes) {
                Ok(album) => p.album(name, &album),
                Err(e) => p
                    .plan
                    .skipped
                    .push(Skipped::new(name, format!("not an album JSON: {e}"))),
            },
            Kind::Uncategorized => match serde_json::from_slice::<RawUncategorized>(&bytes) {
                Ok(u) => {
                    for m in &u.other_photos_v2 {
                        p.media(name, m, m.facts(None, None), None);
                    }
                }
                Err(e) => p.plan.skipped.push(Skipped::new(
                    name,
                    format!("not an uncategorized photos JSON: {e}"),
                )),
            },
        }
    }
    for (i, e) in entries.iter().enumerate() {
        if p.planned.contains_key(&i) {
            continue;
        }
        if is_media_name(&e.name) {
            if is_message(&e.name) {
                p.plan.skipped.push(Skipped::new(
                    &e.name,
                    "a message's attachment, not a post or album",
                ));
                continue;
            }
            p.plan.without_sidecar.push(e.name.clone());
            p.plan.media.push(Planned {
                entry: i,
                filename: split(&e.name).1.to_owned(),
                facts: None,
                albums: Vec::new(),
            });
        } else if kind(&e.name).is_none() {
            p.plan.skipped.push(Skipped::new(
                &e.name,
                "not a post, album or photo (Facebook's other records are not imported)",
            ));
        }
    }
    p.plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::test_entries as entries;

    const ROOT: &str = "facebook-jdoe-2024/your_facebook_activity/posts";

    fn plan_with(names: &[&str], jsons: &[(&str, &str)]) -> Plan {
        let es = entries(names);
        plan(&es, |i| {
            jsons
                .iter()
                .find(|(n, _)| es[i].name.ends_with(n))
                .map(|(_, j)| j.as_bytes().to_vec())
                .ok_or_else(|| "no such JSON".to_owned())
        })
    }

    #[test]
    fn mojibake_is_repaired_and_real_latin1_kept() {
        assert_eq!(
            repair("Caf\u{00c3}\u{00a9} \u{00f0}\u{009f}\u{0098}\u{0080}"),
            "Café 😀"
        );
        assert_eq!(repair("café"), "café", "Latin-1 that is not UTF-8 stays");
        assert_eq!(repair("日本"), "日本");
        assert_eq!(repair("plain"), "plain");
    }

    #[test]
    fn seconds_and_milliseconds() {
        assert_eq!(
            seconds(Some(&Value::from(1_600_000_000))),
            Some(1_600_000_000)
        );
        assert_eq!(
            seconds(Some(&Value::from(1_600_000_000_123_i64))),
            Some(1_600_000_000)
        );
        assert_eq!(seconds(Some(&Value::from(0))), None);
        assert_eq!(seconds(Some(&Value::from("12"))), Some(12));
        assert_eq!(seconds(Some(&Value::Bool(true))), None);
    }

    #[test]
    fn posts_albums_and_their_media() {
        let names = [
            &format!("{ROOT}/your_posts__check_ins__photos_and_videos_1.json") as &str,
            &format!("{ROOT}/album/0.json"),
            &format!("{ROOT}/media/Lake_abc/1.jpg"),
            &format!("{ROOT}/media/Lake_abc/2.jpg"),
            &format!("{ROOT}/media/Lake_abc/3.mp4"),
            "facebook-jdoe-2024/your_facebook_activity/messages/inbox/bob/photos/9.jpg",
            "facebook-jdoe-2024/your_facebook_activity/other/likes.json",
        ];
        let posts = r#"[
          {"timestamp": 1600000500,
           "data": [{"post": "Au lac \u00c3\u00a0 Gen\u00c3\u00a8ve\nsecond line"}],
           "attachments": [{"data": [
             {"media": {"uri": "your_facebook_activity/posts/media/Lake_abc/1.jpg",
                        "creation_timestamp": 1600000400,
                        "media_metadata": {"photo_metadata": {"exif_data": [
                          {"taken_timestamp": 1600000000, "latitude": 46.2, "longitude": 6.15}]}}}},
             {"place": {"name": "Jet d'Eau", "coordinate": {"latitude": 46.207, "longitude": 6.156}}}
           ]}]},
          {"timestamp": 1600009999,
           "attachments": [{"data": [{"media": {"uri": "your_facebook_activity/posts/media/Lake_abc/3.mp4",
              "creation_timestamp": 1600009000}}]}]},
          {"timestamp": 1600100000, "data": [{"post": "just words"}]},
          {"timestamp": "soon"}
        ]"#;
        let album = r#"{"name": "Lac L\u00c3\u00a9man", "description": "summer",
          "photos": [
            {"uri": "your_facebook_activity/posts/media/Lake_abc/1.jpg", "creation_timestamp": 1600000400},
            {"uri": "your_facebook_activity/posts/media/Lake_abc/2.jpg", "creation_timestamp": 1600000401,
             "description": "the boat"},
            {"uri": "your_facebook_activity/posts/media/gone.jpg"}
          ]}"#;
        let p = plan_with(
            &names,
            &[
                ("your_posts__check_ins__photos_and_videos_1.json", posts),
                ("album/0.json", album),
            ],
        );
        assert_eq!(
            p.albums,
            vec![("Lac Léman".to_owned(), Some("summer".to_owned()))]
        );
        let find = |f: &str| p.media.iter().position(|m| m.filename == f).unwrap();
        let one = &p.media[find("1.jpg")];
        let facts = one.facts.as_ref().unwrap();
        assert_eq!(
            facts.taken_at,
            Some(1_600_000_000),
            "the post's taken date wins over the album's creation date"
        );
        assert_eq!(
            facts.position(),
            Some((46.2, 6.15)),
            "the post's exif filled the place"
        );
        assert_eq!(one.albums, vec!["Lac Léman".to_owned()]);
        let two = p.media[find("2.jpg")].facts.as_ref().unwrap();
        assert_eq!(two.description.as_deref(), Some("the boat"));
        let video = p.media[find("3.mp4")].facts.as_ref().unwrap();
        assert_eq!(video.taken_at, Some(1_600_009_000));
        assert_eq!(p.media.len(), 3, "{p:#?}");

        assert_eq!(p.memories.len(), 2, "{:#?}", p.memories);
        let m = &p.memories[0];
        assert_eq!(m.title, "Au lac à Genève");
        assert_eq!(
            m.description.as_deref(),
            Some("Au lac à Genève\nsecond line")
        );
        assert_eq!(m.date, 1_600_000_500);
        assert_eq!(m.kind, "photo");
        assert_eq!(m.media, vec![find("1.jpg")]);
        let place = m.place.as_ref().unwrap();
        assert_eq!(place.name.as_deref(), Some("Jet d'Eau"));
        assert_eq!((place.latitude, place.longitude), (46.207, 6.156));
        assert_eq!(p.memories[1].kind, "text");
        assert!(p.memories[0].source_id.starts_with("post:"));
        assert_ne!(p.memories[0].source_id, p.memories[1].source_id);

        let skipped: Vec<(&str, &str)> = p
            .skipped
            .iter()
            .map(|s| (s.name.as_str(), s.reason.as_str()))
            .collect();
        assert!(
            skipped
                .iter()
                .any(|(n, r)| n.ends_with("gone.jpg") && r.contains("not in the export")),
            "{skipped:?}"
        );
        assert!(
            skipped.iter().any(|(n, _)| n.contains("/inbox/")),
            "{skipped:?}"
        );
        assert!(
            skipped.iter().any(|(n, _)| n.ends_with("likes.json")),
            "{skipped:?}"
        );
        assert!(p.without_sidecar.is_empty());
    }

    #[test]
    fn wrong_shapes_are_named_not_fatal() {
        let names = [
            &format!("{ROOT}/your_posts_1.json") as &str,
            &format!("{ROOT}/album/1.json"),
            &format!("{ROOT}/your_uncategorized_photos.json"),
            &format!("{ROOT}/media/x.jpg"),
        ];
        let p = plan_with(
            &names,
            &[
                ("your_posts_1.json", r#"{"a": 1}"#),
                ("album/1.json", "[1, 2]"),
                ("your_uncategorized_photos.json", "not json"),
            ],
        );
        assert_eq!(p.skipped.len(), 3, "{:#?}", p.skipped);
        assert_eq!(p.without_sidecar, vec![format!("{ROOT}/media/x.jpg")]);
        assert_eq!(p.media.len(), 1);
    }

    #[test]
    fn one_odd_post_is_named_and_the_others_kept() {
        let names = [
            &format!("{ROOT}/your_posts_1.json") as &str,
            &format!("{ROOT}/media/x.jpg"),
        ];
        let posts = format!(
            r#"[{{"timestamp": 1600000000, "data": [{{"post": "hi"}}],
                 "attachments": [{{"data": [{{"media": {{"uri": "{ROOT}/media/x.jpg"}}}}]}}]}},
                {{"data": "not a list"}}]"#
        );
        let p = plan_with(&names, &[("your_posts_1.json", &posts)]);
        assert_eq!(p.memories.len(), 1, "{p:#?}");
        assert_eq!(p.media.len(), 1, "{p:#?}");
        assert_eq!(p.skipped.len(), 1, "{p:#?}");
        assert!(
            p.skipped[0].name.ends_with("your_posts_1.json post 1"),
            "{p:#?}"
        );
    }

    #[test]
    fn long_titles_are_cut_on_characters() {
        let long = "é".repeat(150);
        let t = title(&long);
        assert_eq!(t.chars().count(), TITLE_CHARS);
        assert!(t.ends_with('…'));
    }
}

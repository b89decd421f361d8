//! iCloud Photos (privacy.apple.com export): the dates, favourites and hidden or deleted
//! marks of `Photo Details*.csv`, and the albums of `Albums/<name>.csv`. Pure planning over
//! entry names and CSV contents; an `imgName` is matched against entries' file names as a
//! string, never a path.
//!
//! The format (immich-go `adapters/folder/icloud.go`): `Photos/Photo Details*.csv` has
//! `imgName,fileChecksum,favorite,hidden,deleted,originalCreationDate,viewCount,importDate`
//! with dates like `Friday October 06,2023 12:11 PM GMT`; `Albums/<name>.csv` has one column
//! `imgName` and may be empty. A multi-part export repeats the `Photos/` folder per part.

use std::collections::HashMap;

use chrono::NaiveDateTime;

use super::{EntryMeta, ImportFacts, Plan, Planned, Skipped, is_media_name, split};

/// One row of `Photo Details*.csv`.
#[derive(Debug, Clone, Default, PartialEq)]
struct Details {
    taken_at: Option<i64>,
    favorite: bool,
    hidden: bool,
    deleted: bool,
}

/// `Friday October 06,2023 12:11 PM GMT` → Unix seconds. Apple writes GMT; another zone name
/// cannot be told from its abbreviation, so such a date is left to the file.
fn parse_date(s: &str) -> Option<i64> {
    let s = s.trim();
    let rest = s.split_once(' ')?.1.trim();
    let rest = rest
        .strip_suffix(" GMT")
        .or_else(|| rest.strip_suffix(" UTC"))?;
    let t = NaiveDateTime::parse_from_str(rest, "%B %d,%Y %I:%M %p").ok()?;
    Some(t.and_utc().timestamp())
}

fn yes(s: &str) -> bool {
    matches!(s.trim().to_ascii_lowercase().as_str(), "yes" | "true" | "1")
}

/// A CSV's rows as maps of column → value, and its unreadable rows (line, reason).
type Rows = (Vec<HashMap<String, String>>, Vec<(u64, String)>);

/// Reads a CSV's rows; `Err` with a reason for another shape. An unreadable row is named and
/// the others read.
fn rows(bytes: &[u8], needed: &str) -> Result<Rows, String> {
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(bytes);
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| format!("not a CSV: {e}"))?
        .iter()
        .map(|h| h.trim().trim_start_matches('\u{feff}').to_owned())
        .collect();
    if headers.iter().all(|h| h.is_empty()) {
        return Ok((Vec::new(), Vec::new()));
    }
    if !headers.iter().any(|h| h == needed) {
        return Err(format!("a CSV with no {needed} column"));
    }
    let (mut good, mut bad) = (Vec::new(), Vec::new());
    for r in reader.records() {
        match r {
            Ok(r) => good.push(
                headers
                    .iter()
                    .cloned()
                    .zip(r.iter().map(str::to_owned))
                    .collect(),
            ),
            Err(e) => {
                let line = e.position().map_or(0, csv::Position::line);
                bad.push((line, format!("an unreadable row: {e}")));
            }
        }
    }
    Ok((good, bad))
}

/// What a CSV entry is, by its name.
enum Csv<'a> {
    Details,
    Album(&'a str),
}

fn csv_kind(name: &str) -> Option<Csv<'_>> {
    let (dir, file) = split(name);
    let stem = file.strip_suffix(".csv")?;
    if stem.starts_with("Photo Details") {
        Some(Csv::Details)
    } else if split(dir).1 == "Albums" && !stem.trim().is_empty() {
        Some(Csv::Album(stem.trim()))
    } else {
        None
    }
}

/// Plans the import of the iCloud entries `entries` (every part's, together). `read` gives a
/// CSV entry's bytes (the caller caps them).
pub fn plan(entries: &[EntryMeta], mut read: impl FnMut(usize) -> Result<Vec<u8>, String>) -> Plan {
    let mut plan = Plan::default();
    let mut details: HashMap<String, Details> = HashMap::new();
    let mut albums: Vec<(String, Vec<String>)> = Vec::new();
    let mut by_name: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, e) in entries.iter().enumerate() {
        let name = &e.name;
        let file = split(name).1;
        if is_media_name(name) {
            by_name.entry(file).or_default().push(i);
            continue;
        }
        let Some(kind) = csv_kind(name) else {
            if !file.is_empty() {
                plan.skipped.push(Skipped::new(
                    name,
                    "not a photo, video or iCloud Photos CSV",
                ));
            }
            continue;
        };
        let needed = "imgName";
        match read(i).and_then(|b| rows(&b, needed)) {
            Err(reason) => plan.skipped.push(Skipped::new(name, reason)),
            Ok((list, odd)) => {
                for (line, why) in odd {
                    plan.skipped
                        .push(Skipped::new(&format!("{name} line {line}"), why));
                }
                match kind {
                    Csv::Details => {
                        for row in list {
                            let get = |k: &str| row.get(k).map_or("", String::as_str);
                            details.insert(
                                get(needed).trim().to_owned(),
                                Details {
                                    taken_at: parse_date(get("originalCreationDate")),
                                    favorite: yes(get("favorite")),
                                    hidden: yes(get("hidden")),
                                    deleted: yes(get("deleted")),
                                },
                            );
                        }
                    }
                    Csv::Album(album) if list.is_empty() => {
                        plan.skipped.push(Skipped::new(
                            name,
                            format!("album {album:?} lists no photos"),
                        ));
                    }
                    Csv::Album(album) => {
                        let names = list
                            .iter()
                            .filter_map(|r| r.get(needed))
                            .map(|n| n.trim().to_owned())
                            .filter(|n| !n.is_empty())
                            .collect();
                        albums.push((album.to_owned(), names));
                    }
                }
            }
        }
    }
    let mut planned: HashMap<usize, usize> = HashMap::new();
    for (i, e) in entries.iter().enumerate() {
        let file = split(&e.name).1;
        if !is_media_name(&e.name) {
            continue;
        }
        let d = details.get(file);
        if d.is_some_and(|d| d.deleted) {
            plan.skipped.push(Skipped::new(
                &e.name,
                "deleted in iCloud (Recently Deleted)",
            ));
            continue;
        }
        if d.is_none() {
            plan.without_sidecar.push(e.name.clone());
        }
        planned.insert(i, plan.media.len());
        plan.media.push(Planned {
            entry: i,
            filename: file.to_owned(),
            facts: d.map(|d| ImportFacts {
                source: "apple_photos".into(),
                taken_at: d.taken_at,
                favorite: d.favorite,
                archived: d.hidden,
                ..ImportFacts::default()
            }),
            albums: Vec::new(),
        });
    }
    for (album, names) in albums {
        plan.albums.push((album.clone(), None));
        for n in names {
            let found: Vec<usize> = by_name
                .get(n.as_str())
                .into_iter()
                .flatten()
                .filter_map(|i| planned.get(i).copied())
                .collect();
            if found.is_empty() && !details.get(&n).is_some_and(|d| d.deleted) {
                plan.skipped.push(Skipped::new(
                    &format!("Albums/{album}.csv: {n}"),
                    "listed by the album but not in the export",
                ));
            }
            for k in found {
                let p = &mut plan.media[k];
                if !p.albums.contains(&album) {
                    p.albums.push(album.clone());
                }
            }
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::test_entries as entries;

    #[test]
    fn dates_in_apples_format() {
        assert_eq!(
            parse_date("Friday October 06,2023 12:11 PM GMT"),
            Some(1_696_594_260)
        );
        assert_eq!(
            parse_date("Monday January 01,2024 12:05 AM GMT"),
            Some(1_704_067_500)
        );
        assert_eq!(parse_date("Friday October 06,2023 12:11 PM PDT"), None);
        assert_eq!(parse_date("yesterday"), None);
    }

    #[test]
    fn details_and_albums_across_parts() {
        let names = [
            "iCloud Photos Part 1 of 2/Photos/IMG_1.JPG",
            "iCloud Photos Part 1 of 2/Photos/IMG_2.JPG",
            "iCloud Photos Part 1 of 2/Photos/Photo Details.csv",
            "iCloud Photos Part 2 of 2/Photos/IMG_3.HEIC",
            "iCloud Photos Part 2 of 2/Photos/IMG_4.JPG",
            "iCloud Photos Part 2 of 2/Photos/Photo Details-1.csv",
            "iCloud Photos Part 2 of 2/Albums/Trip.csv",
            "iCloud Photos Part 2 of 2/Albums/Empty.csv",
            "iCloud Photos Part 2 of 2/Memories/x.mov.json",
        ];
        let es = entries(&names);
        let p = plan(&es, |i| {
            Ok(match es[i].name.rsplit('/').next().unwrap_or_default() {
                "Photo Details.csv" => "imgName,fileChecksum,favorite,hidden,deleted,originalCreationDate,viewCount,importDate\n\
                    IMG_1.JPG,abc,yes,no,no,\"Friday October 06,2023 12:11 PM GMT\",1,\"Friday October 06,2023 12:11 PM GMT\"\n\
                    IMG_2.JPG,def,no,yes,yes,\"Friday October 06,2023 12:12 PM GMT\",0,x\n",
                "Photo Details-1.csv" => "imgName,fileChecksum,favorite,hidden,deleted,originalCreationDate\n\
                    IMG_3.HEIC,ghi,no,yes,no,\"Saturday October 07,2023 09:00 AM GMT\"\n",
                "Trip.csv" => "imgName\nIMG_1.JPG\nIMG_3.HEIC\nIMG_2.JPG\nIMG_9.JPG\n",
                _ => "",
            }
            .as_bytes()
            .to_vec())
        });
        let get = |f: &str| p.media.iter().find(|m| m.filename == f);
        let one = get("IMG_1.JPG").unwrap();
        let facts = one.facts.as_ref().unwrap();
        assert_eq!(facts.taken_at, Some(1_696_594_260));
        assert!(facts.favorite && !facts.archived);
        assert_eq!(one.albums, vec!["Trip".to_owned()]);
        assert!(get("IMG_2.JPG").is_none(), "deleted");
        let three = get("IMG_3.HEIC").unwrap();
        assert!(three.facts.as_ref().unwrap().archived, "hidden");
        assert_eq!(three.albums, vec!["Trip".to_owned()]);
        assert!(get("IMG_4.JPG").unwrap().facts.is_none());
        assert_eq!(
            p.without_sidecar,
            vec!["iCloud Photos Part 2 of 2/Photos/IMG_4.JPG".to_owned()]
        );
        let reasons: Vec<String> = p
            .skipped
            .iter()
            .map(|s| format!("{}: {}", s.name, s.reason))
            .collect();
        assert_eq!(reasons.len(), 4, "{reasons:#?}");
        assert!(
            reasons
                .iter()
                .any(|r| r.contains("IMG_2.JPG") && r.contains("deleted"))
        );
        assert!(reasons.iter().any(|r| r.contains("IMG_9.JPG")));
        assert!(reasons.iter().any(|r| r.contains("Empty.csv")));
        assert!(reasons.iter().any(|r| r.contains("x.mov.json")));
        assert_eq!(p.albums, vec![("Trip".to_owned(), None)]);
    }

    #[test]
    fn csv_of_another_shape_is_named() {
        assert!(rows(b"a,b\n1,2\n", "imgName").is_err());
        assert_eq!(rows(b"", "imgName"), Ok((Vec::new(), Vec::new())));
        assert_eq!(
            rows(b"\xef\xbb\xbfimgName\nA.JPG\n", "imgName").map(|r| r.0.len()),
            Ok(1)
        );
    }

    #[test]
    fn an_unreadable_row_is_named_and_the_others_read() {
        let (good, bad) = rows(
            b"imgName,favorite\nA.JPG,yes\n\xff\xfe,no\nB.JPG,no\n",
            "imgName",
        )
        .expect("a CSV");
        assert_eq!(good.len(), 2);
        assert_eq!(bad.len(), 1, "{bad:?}");
        assert_eq!(bad[0].0, 3);
    }
}

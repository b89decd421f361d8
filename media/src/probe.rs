//! What ffprobe says about a video or audio file, as typed facts: duration, display size after
//! the rotation matrix, codecs, frame rate, bitrate, and the container tags that carry a date,
//! a place or a Live Photo identifier. Pure: JSON text in (`ffprobe -print_format json
//! -show_format -show_streams`), facts out; running ffprobe is [`crate::ffmpeg`]'s job.

use chrono::{DateTime, FixedOffset, NaiveDateTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value};

/// Longest tag value we keep, in characters.
const MAX_TAG_CHARS: usize = 500;
/// Most tags we keep in `metadata`.
const MAX_TAGS: usize = 64;

/// Why ffprobe's answer could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// Not the JSON shape ffprobe prints.
    #[error("unreadable probe output: {0}")]
    Json(#[from] serde_json::Error),
    /// The file has neither a video nor an audio stream.
    #[error("no video or audio stream in the file")]
    NoStreams,
}

/// A date a container carries, with what is known about its zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerDate {
    /// A wall clock with its own offset (Apple's `creationdate`, an offset `©day`).
    WithOffset(DateTime<FixedOffset>),
    /// An exact UTC instant (MP4/MOV `mvhd`, Matroska `DateUTC`).
    Utc(DateTime<Utc>),
    /// A wall clock with no zone (AVI `IDIT`).
    Local(NaiveDateTime),
}

/// The facts of one file.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamFacts {
    /// ffprobe's demuxer names (`mov,mp4,m4a,3gp,3g2,mj2`, `matroska,webm`, `avi`, …).
    pub format_name: String,
    /// Seconds; `None` when nothing states it.
    pub duration_seconds: Option<f64>,
    /// Whether there is a real video stream (cover art in audio files does not count).
    pub has_video: bool,
    /// Display size: the coded size turned by the rotation matrix.
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// Clockwise degrees to turn the coded picture for display (0, 90, 180, 270).
    pub rotation_cw: u32,
    pub video_codec: Option<String>,
    pub audio_codec: Option<String>,
    /// Frames per second (average, else nominal).
    pub frame_rate: Option<f64>,
    /// Bits per second of the whole file.
    pub bitrate: Option<i64>,
    pub audio_channels: Option<i64>,
    pub audio_sample_rate: Option<i64>,
    /// The best date the format tags give (see [`StreamFacts::date`]).
    pub date: Option<ContainerDate>,
    /// ISO 6709 position text (`location`, Apple's `…location.ISO6709`).
    pub location: Option<String>,
    /// Apple's `com.apple.quicktime.content.identifier` (Live Photo pairing).
    pub content_identifier: Option<String>,
    pub make: Option<String>,
    pub model: Option<String>,
    /// The format's tags, sanitised and bounded, for `metadata`.
    pub tags: Map<String, Value>,
}

#[derive(Debug, Deserialize)]
struct Output {
    #[serde(default)]
    streams: Vec<Stream>,
    format: Option<Format>,
}

#[derive(Debug, Deserialize)]
struct Format {
    format_name: Option<String>,
    duration: Option<String>,
    bit_rate: Option<String>,
    #[serde(default)]
    tags: Map<String, Value>,
}

#[derive(Debug, Deserialize)]
struct Stream {
    codec_type: Option<String>,
    codec_name: Option<String>,
    width: Option<u32>,
    height: Option<u32>,
    avg_frame_rate: Option<String>,
    r_frame_rate: Option<String>,
    duration: Option<String>,
    channels: Option<i64>,
    sample_rate: Option<String>,
    #[serde(default)]
    disposition: Map<String, Value>,
    #[serde(default)]
    tags: Map<String, Value>,
    #[serde(default)]
    side_data_list: Vec<Map<String, Value>>,
}

/// Parses ffprobe's JSON.
pub fn parse(json: &str) -> Result<StreamFacts, ProbeError> {
    let out: Output = serde_json::from_str(json)?;
    let format = out.format.unwrap_or(Format {
        format_name: None,
        duration: None,
        bit_rate: None,
        tags: Map::new(),
    });
    let video = out.streams.iter().find(|s| {
        s.codec_type.as_deref() == Some("video")
            // An MP3's or M4A's cover picture is a one-frame "video" stream.
            && s.disposition.get("attached_pic").and_then(Value::as_i64) != Some(1)
    });
    let audio = out
        .streams
        .iter()
        .find(|s| s.codec_type.as_deref() == Some("audio"));
    if video.is_none() && audio.is_none() {
        return Err(ProbeError::NoStreams);
    }
    let rotation_cw = video.map_or(0, rotation_cw);
    let (width, height) = match video.map(|v| (v.width, v.height)) {
        Some((Some(w), Some(h))) if w > 0 && h > 0 => {
            if rotation_cw % 180 == 90 {
                (Some(h), Some(w))
            } else {
                (Some(w), Some(h))
            }
        }
        _ => (None, None),
    };
    let duration_seconds = number(format.duration.as_deref())
        .or_else(|| video.and_then(|v| number(v.duration.as_deref())))
        .or_else(|| audio.and_then(|a| number(a.duration.as_deref())))
        .filter(|d| d.is_finite() && *d >= 0.0);
    let frame_rate = video.and_then(|v| {
        ratio(v.avg_frame_rate.as_deref()).or_else(|| ratio(v.r_frame_rate.as_deref()))
    });
    let tag = |k: &str| tag_text(&format.tags, k);
    let content_identifier = tag("com.apple.quicktime.content.identifier");
    let location = tag("com.apple.quicktime.location.ISO6709")
        .or_else(|| tag("location"))
        .or_else(|| tag("location-eng"));
    Ok(StreamFacts {
        format_name: format.format_name.clone().unwrap_or_default(),
        duration_seconds,
        has_video: video.is_some(),
        width,
        height,
        rotation_cw,
        video_codec: video.and_then(|v| v.codec_name.clone()),
        audio_codec: audio.and_then(|a| a.codec_name.clone()),
        frame_rate,
        bitrate: number(format.bit_rate.as_deref()).map(|b| b as i64),
        audio_channels: audio.and_then(|a| a.channels),
        audio_sample_rate: audio.and_then(|a| number(a.sample_rate.as_deref()).map(|r| r as i64)),
        date: date_from_tags(&format.tags, video, audio),
        location,
        content_identifier,
        make: tag("com.apple.quicktime.make").or_else(|| tag("make")),
        model: tag("com.apple.quicktime.model").or_else(|| tag("model")),
        tags: sanitised(&format.tags),
    })
}

/// Clockwise display rotation: the display matrix's `rotation` (counter-clockwise degrees, so
/// -90 means a quarter turn clockwise) or the older `rotate` tag (clockwise).
fn rotation_cw(v: &Stream) -> u32 {
    let from_matrix = v.side_data_list.iter().find_map(|sd| {
        sd.get("rotation").and_then(|r| {
            r.as_f64()
                .or_else(|| r.as_str().and_then(|s| s.parse().ok()))
        })
    });
    let degrees = match from_matrix {
        Some(ccw) => -ccw,
        None => tag_text(&v.tags, "rotate")
            .and_then(|s| s.parse::<f64>().ok())
            .unwrap_or(0.0),
    };
    if !degrees.is_finite() {
        return 0;
    }
    let quarter = (degrees / 90.0).round() as i64;
    (quarter.rem_euclid(4) * 90) as u32
}

/// The best date among the tags: an offset-carrying Apple date, else `creation_time` (UTC when
/// it says so, a bare wall clock otherwise, as AVI's `IDIT`). Zero and epoch dates are no date.
fn date_from_tags(
    tags: &Map<String, Value>,
    video: Option<&Stream>,
    audio: Option<&Stream>,
) -> Option<ContainerDate> {
    if let Some(d) = tag_text(tags, "com.apple.quicktime.creationdate").and_then(|s| parse_date(&s))
    {
        return Some(d);
    }
    let creation = tag_text(tags, "creation_time")
        .or_else(|| video.and_then(|v| tag_text(&v.tags, "creation_time")))
        .or_else(|| audio.and_then(|a| tag_text(&a.tags, "creation_time")))
        .or_else(|| tag_text(tags, "date"));
    creation.and_then(|s| parse_date(&s))
}

/// Parses the date spellings containers use: RFC 3339 (`2019-01-24T08:01:24.000000Z`), ISO
/// with a compact offset (`2019-07-24T11:25:40+0300`), and bare wall clocks (`2012-09-10
/// 20:52:00`, `2012:09:10 20:52:00`). Dates before 1900 or exactly at the 1904/1970 epochs —
/// what an unset clock writes — are `None`.
pub fn parse_date(raw: &str) -> Option<ContainerDate> {
    let s = raw.trim();
    let parsed = if let Ok(d) = DateTime::parse_from_rfc3339(s) {
        if s.ends_with('Z') || s.ends_with("+00:00") {
            ContainerDate::Utc(d.with_timezone(&Utc))
        } else {
            ContainerDate::WithOffset(d)
        }
    } else if let Some(d) = [
        "%Y-%m-%dT%H:%M:%S%z",
        "%Y-%m-%dT%H:%M:%S%.f%z",
        "%Y:%m:%d %H:%M:%S%z",
    ]
    .iter()
    .find_map(|f| DateTime::parse_from_str(s, f).ok())
    {
        ContainerDate::WithOffset(d)
    } else {
        let local = [
            "%Y-%m-%d %H:%M:%S",
            "%Y-%m-%dT%H:%M:%S",
            "%Y:%m:%d %H:%M:%S",
            "%Y-%m-%dT%H:%M:%S%.f",
        ]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())?;
        ContainerDate::Local(local)
    };
    let naive = match parsed {
        ContainerDate::WithOffset(d) => d.naive_utc(),
        ContainerDate::Utc(d) => d.naive_utc(),
        ContainerDate::Local(d) => d,
    };
    let year = chrono::Datelike::year(&naive);
    let epoch = |y: i32| {
        chrono::NaiveDate::from_ymd_opt(y, 1, 1)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .is_some_and(|e| e == naive)
    };
    (year >= 1900 && !epoch(1904) && !epoch(1970)).then_some(parsed)
}

fn number(s: Option<&str>) -> Option<f64> {
    s?.trim().parse::<f64>().ok().filter(|n| n.is_finite())
}

/// `30000/1001` → 29.97; `0/0` → None.
fn ratio(s: Option<&str>) -> Option<f64> {
    let (n, d) = s?.split_once('/')?;
    let (n, d): (f64, f64) = (n.parse().ok()?, d.parse().ok()?);
    let r = n / d;
    (r.is_finite() && r > 0.0 && r < 10_000.0).then_some(r)
}

fn tag_text(tags: &Map<String, Value>, key: &str) -> Option<String> {
    let v = tags.get(key)?.as_str()?;
    let clean = clean(v);
    (!clean.is_empty()).then_some(clean)
}

fn clean(v: &str) -> String {
    v.chars()
        .filter(|c| !c.is_control())
        .take(MAX_TAG_CHARS)
        .collect::<String>()
        .trim()
        .to_owned()
}

fn sanitised(tags: &Map<String, Value>) -> Map<String, Value> {
    tags.iter()
        .filter_map(|(k, v)| Some((clean(k), Value::String(clean(v.as_str()?)))))
        .filter(|(k, _)| !k.is_empty())
        .take(MAX_TAGS)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference() -> Value {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/video/ffprobe.json"
        );
        let text = std::fs::read_to_string(path).unwrap_or_default();
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    fn facts(name: &str) -> StreamFacts {
        let r = reference();
        let one = r
            .get(name)
            .unwrap_or_else(|| panic!("{name} missing from ffprobe.json"));
        parse(&one.to_string()).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    #[test]
    fn rotated_phone_clip() {
        let f = facts("with-gps.mov");
        assert_eq!((f.width, f.height), (Some(320), Some(568)));
        assert_eq!(f.rotation_cw, 90);
        assert_eq!(f.video_codec.as_deref(), Some("h264"));
        assert_eq!(f.audio_codec.as_deref(), Some("aac"));
        assert!((f.duration_seconds.unwrap_or(0.0) - 4.001667).abs() < 1e-6);
        assert!((f.frame_rate.unwrap_or(0.0) - 72000.0 / 2401.0).abs() < 1e-6);
        let want = DateTime::parse_from_rfc3339("2019-07-24T11:25:40+03:00").ok();
        assert_eq!(f.date, want.map(ContainerDate::WithOffset));
        assert_eq!(f.location.as_deref(), Some("+32.0929+034.8620+028.516/"));
        assert_eq!(f.make.as_deref(), Some("Apple"));
        assert_eq!(f.model.as_deref(), Some("iPhone 6"));
    }

    #[test]
    fn rotation_270_clockwise() {
        let f = facts("video_rotate.mp4");
        assert_eq!(f.rotation_cw, 270);
        assert_eq!((f.width, f.height), (Some(60), Some(80)));
    }

    #[test]
    fn dates_of_other_containers() {
        let mkv = facts("video_mkv.mkv");
        assert_eq!(
            mkv.date,
            DateTime::parse_from_rfc3339("2019-01-24T08:01:24Z")
                .ok()
                .map(|d| ContainerDate::Utc(d.with_timezone(&Utc)))
        );
        let avi = facts("MVI_4823.AVI");
        assert_eq!(
            avi.date,
            NaiveDateTime::parse_from_str("2012-09-10 20:52:00", "%Y-%m-%d %H:%M:%S")
                .ok()
                .map(ContainerDate::Local)
        );
        assert_eq!(avi.rotation_cw, 0);
        assert_eq!((avi.width, avi.height), (Some(640), Some(480)));
        let live = facts("IMG_7943_HEVC.MOV");
        assert_eq!(
            live.content_identifier.as_deref(),
            Some("9B539AB8-A668-4FA6-9207-EB653A5E7E3C")
        );
    }

    #[test]
    fn audio_only() {
        let f = facts("Issue 337 (dotnet).m4a");
        assert!(!f.has_video);
        assert_eq!(f.audio_codec.as_deref(), Some("alac"));
        assert_eq!((f.width, f.height), (None, None));
        assert!((f.duration_seconds.unwrap_or(0.0) - 11.288).abs() < 1e-6);
    }

    #[test]
    fn zero_and_epoch_dates_are_no_date() {
        assert_eq!(parse_date("0000-00-00 00:00:00"), None);
        assert_eq!(parse_date("1904-01-01T00:00:00.000000Z"), None);
        assert_eq!(parse_date("1970-01-01T00:00:00.000000Z"), None);
        assert!(parse_date("2005-10-28T17:36:40.000000Z").is_some());
    }

    #[test]
    fn hostile_json_is_an_error_not_a_panic() {
        assert!(parse("").is_err());
        assert!(parse("{}").is_err());
        assert!(parse(r#"{"streams":[{"codec_type":"video","width":0,"height":5}]}"#).is_ok());
        let weird = r#"{"streams":[{"codec_type":"video","side_data_list":[{"rotation":1e308}]}],
                        "format":{"duration":"NaN","bit_rate":"x","tags":{"creation_time":"zz"}}}"#;
        let f = parse(weird).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(f.duration_seconds, None);
        assert_eq!(f.date, None);
    }
}

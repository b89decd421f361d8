//! The few XMP properties that locate a Motion Photo's video: Google/Samsung `Camera:MotionPhoto`,
//! the legacy `MicroVideo*` properties, and the `Container:Directory` item list.
//!
//! Not an XML parser: properties are found by local name, whatever namespace prefix the writer
//! chose (`GCamera:`, `Camera:`, `Container:`, `Item:`), in both attribute
//! (`GCamera:MicroVideoOffset="123"`) and element (`<Item:Length>123</Item:Length>`) syntax.
//! The packet is at most 64 KiB (one APP1 segment), so linear scans are cheap.

/// Where the XMP says the video is, counted from the end of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TailVideo {
    /// Bytes from the start of the video to the end of the file.
    pub from_end: u64,
    /// Length of the video.
    pub len: u64,
}

/// What an XMP packet says about an embedded video.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct MotionXmp {
    /// Candidate locations, best first: the `Container:Directory` item, then `MicroVideoOffset`.
    pub candidates: Vec<TailVideo>,
    /// `MotionPhotoPresentationTimestampUs` or `MicroVideoPresentationTimestampUs`; -1 (the
    /// spec's "unset") is `None`.
    pub presentation_timestamp_us: Option<i64>,
}

/// Reads the Motion Photo properties of an XMP packet.
pub(crate) fn motion(xmp: &str) -> MotionXmp {
    let mut candidates = Vec::new();
    if let Some(tail) = directory_video(xmp) {
        candidates.push(tail);
    }
    // The legacy offset alone is enough (some writers omit `MicroVideo="1"`): every candidate is
    // checked against the bytes anyway.
    if let Some(offset) = value(xmp, "MicroVideoOffset").and_then(|v| v.trim().parse::<u64>().ok())
    {
        let tail = TailVideo {
            from_end: offset,
            len: offset,
        };
        if offset > 0 && !candidates.contains(&tail) {
            candidates.push(tail);
        }
    }
    let presentation_timestamp_us = [
        "MotionPhotoPresentationTimestampUs",
        "MicroVideoPresentationTimestampUs",
    ]
    .iter()
    .find_map(|name| value(xmp, name).and_then(|v| v.trim().parse::<i64>().ok()))
    .filter(|&t| t >= 0);
    MotionXmp {
        candidates,
        presentation_timestamp_us,
    }
}

/// The video item of a `Container:Directory`. Secondary items are concatenated after the primary
/// image in directory order, so the video starts at the sum of its own and all later items'
/// lengths before the end of the file (as media3's MotionPhotoDescription computes it).
fn directory_video(xmp: &str) -> Option<TailVideo> {
    let start = find_property(xmp, "Directory")?;
    let section = &xmp[start..];
    let end = section.find(":Directory>").unwrap_or(section.len());
    let items: Vec<&str> = section[..end].split("<rdf:li").skip(1).take(64).collect();
    let index = items.iter().position(|item| {
        value(item, "Semantic").is_some_and(|s| s.trim() == "MotionPhoto")
            || value(item, "Mime").is_some_and(|m| m.trim().starts_with("video/"))
    })?;
    if index == 0 {
        // The first item is the primary image itself, never the appended video.
        return None;
    }
    let mut from_end = 0u64;
    for item in &items[index..] {
        let length = value(item, "Length").and_then(|v| v.trim().parse::<u64>().ok())?;
        from_end = from_end.checked_add(length)?;
    }
    let len = value(items[index], "Length")?.trim().parse::<u64>().ok()?;
    (len > 0).then_some(TailVideo { from_end, len })
}

/// Byte position just after the first `prefix:local` property name (attribute or element).
fn find_property(text: &str, local: &str) -> Option<usize> {
    let pattern = format!(":{local}");
    let bytes = text.as_bytes();
    let mut from = 0usize;
    while let Some(found) = text.get(from..)?.find(&pattern) {
        let at = from + found;
        let after = at + pattern.len();
        let has_prefix = at > 0 && is_name_byte(bytes[at - 1]);
        let ends_name = bytes
            .get(after)
            .is_some_and(|&b| b == b'=' || b == b'>' || b.is_ascii_whitespace());
        if has_prefix && ends_name {
            return Some(after);
        }
        from = after;
    }
    None
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// The value of the first property named `local`, e.g. `"123"` from `GCamera:X="123"` or from
/// `<GCamera:X>123</GCamera:X>`. Entities are not decoded: the values we need are numbers and
/// plain words.
pub(crate) fn value<'a>(text: &'a str, local: &str) -> Option<&'a str> {
    let mut from = 0usize;
    loop {
        let after = from + find_property(text.get(from..)?, local)?;
        let rest = text.get(after..)?;
        let trimmed = rest.trim_start();
        if let Some(attr) = trimmed.strip_prefix('=') {
            let attr = attr.trim_start();
            let quote = attr.chars().next().filter(|&q| q == '"' || q == '\'')?;
            let inner = &attr[1..];
            return inner.find(quote).map(|end| &inner[..end]);
        }
        if let Some(element) = trimmed.strip_prefix('>') {
            let end = element.find('<').unwrap_or(element.len());
            return Some(&element[..end]);
        }
        // Something like `xmlns:X=` is handled above; anything else: keep looking.
        from = after;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_and_element_values() {
        let xmp = r#"<x GCamera:MicroVideo="1" GCamera:MicroVideoOffset = '42'>
            <Camera:MotionPhotoPresentationTimestampUs>2056590</Camera:MotionPhotoPresentationTimestampUs>"#;
        assert_eq!(value(xmp, "MicroVideo"), Some("1"));
        assert_eq!(value(xmp, "MicroVideoOffset"), Some("42"));
        assert_eq!(
            value(xmp, "MotionPhotoPresentationTimestampUs"),
            Some("2056590")
        );
        assert_eq!(value(xmp, "Video"), None);
        assert_eq!(value(xmp, "MotionPhoto"), None);
        let m = motion(xmp);
        assert_eq!(
            m.candidates,
            vec![TailVideo {
                from_end: 42,
                len: 42
            }]
        );
        assert_eq!(m.presentation_timestamp_us, Some(2_056_590));
    }

    #[test]
    fn directory_sums_lengths_from_the_video_item() {
        let xmp = r#"<Container:Directory><rdf:Seq>
            <rdf:li rdf:parseType="Resource"><Container:Item Item:Mime="image/jpeg" Item:Semantic="Primary" Item:Length="0" Item:Padding="0"/></rdf:li>
            <rdf:li rdf:parseType="Resource"><Container:Item Item:Mime="video/mp4" Item:Semantic="MotionPhoto" Item:Length="1000"/></rdf:li>
            <rdf:li><Container:Item><Item:Semantic>GainMap</Item:Semantic><Item:Length>24</Item:Length></Container:Item></rdf:li>
            </rdf:Seq></Container:Directory>"#;
        let m = motion(xmp);
        assert_eq!(
            m.candidates,
            vec![TailVideo {
                from_end: 1024,
                len: 1000
            }]
        );
        assert_eq!(m.presentation_timestamp_us, None);
    }

    #[test]
    fn directory_without_video_or_with_bad_lengths() {
        let only_primary = r#"<Container:Directory><rdf:li><Container:Item Item:Semantic="Primary" Item:Length="0"/></rdf:li></Container:Directory>"#;
        assert!(motion(only_primary).candidates.is_empty());
        let bad = r#"<Container:Directory><rdf:li><Container:Item Item:Semantic="Primary"/></rdf:li><rdf:li><Container:Item Item:Semantic="MotionPhoto" Item:Length="-5"/></rdf:li></Container:Directory>"#;
        assert!(motion(bad).candidates.is_empty());
        let unset = r#"GCamera:MotionPhotoPresentationTimestampUs="-1""#;
        assert_eq!(motion(unset).presentation_timestamp_us, None);
    }
}

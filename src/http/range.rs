//! HTTP `Range` requests on stored objects (RFC 9110 §14): the single byte range a video
//! player sends to seek; anything fancier is answered with the whole object, as allowed.

/// What a `Range` header asks of an object of `size` bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum Request {
    /// One satisfiable range (half-open).
    Bytes(std::ops::Range<u64>),
    /// A valid range that starts past the end.
    Unsatisfiable,
    /// Not a single byte range we serve: answer with the whole object.
    Ignored,
}

pub fn parse(header: &str, size: u64) -> Request {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return Request::Ignored;
    };
    if spec.contains(',') {
        return Request::Ignored;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Request::Ignored;
    };
    let (first, last) = (first.trim(), last.trim());
    let num = |s: &str| s.parse::<u64>().ok();
    match (first.is_empty(), last.is_empty()) {
        // `-n`: the last n bytes.
        (true, false) => match num(last) {
            Some(0) => Request::Unsatisfiable,
            Some(n) => Request::Bytes(size.saturating_sub(n)..size),
            None => Request::Ignored,
        },
        (false, _) => {
            let Some(a) = num(first) else {
                return Request::Ignored;
            };
            let b = if last.is_empty() {
                Some(u64::MAX)
            } else {
                num(last)
            };
            match b {
                Some(b) if b < a => Request::Ignored,
                Some(_) if a >= size => Request::Unsatisfiable,
                Some(b) => Request::Bytes(a..b.saturating_add(1).min(size)),
                None => Request::Ignored,
            }
        }
        (true, true) => Request::Ignored,
    }
}

/// The status and the byte range to answer a request with `headers` for an object of `size`
/// bytes: 206 with the range asked for, 200 with the whole object, or 416.
pub fn plan(
    headers: &axum::http::HeaderMap,
    size: u64,
) -> Result<(axum::http::StatusCode, std::ops::Range<u64>), super::error::ApiError> {
    use axum::http::StatusCode;
    let requested = headers
        .get(axum::http::header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(|v| parse(v, size));
    match requested {
        None | Some(Request::Ignored) => Ok((StatusCode::OK, 0..size)),
        Some(Request::Unsatisfiable) => Err(super::error::ApiError::RangeNotSatisfiable { size }),
        Some(Request::Bytes(r)) => Ok((StatusCode::PARTIAL_CONTENT, r)),
    }
}

/// The headers of a ranged answer: `Accept-Ranges`, `Content-Length`, and for a 206 its
/// `Content-Range`.
pub fn set_headers(
    h: &mut axum::http::HeaderMap,
    status: axum::http::StatusCode,
    range: &std::ops::Range<u64>,
    size: u64,
) {
    use axum::http::{HeaderValue, StatusCode, header};
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(
        header::CONTENT_LENGTH,
        HeaderValue::from(range.end - range.start),
    );
    if status == StatusCode::PARTIAL_CONTENT
        && let Ok(v) = HeaderValue::from_str(&format!(
            "bytes {}-{}/{size}",
            range.start,
            range.end.saturating_sub(1)
        ))
    {
        h.insert(header::CONTENT_RANGE, v);
    }
}

#[cfg(test)]
mod tests {
    use super::{Request::*, parse};

    #[test]
    fn single_ranges() {
        assert_eq!(parse("bytes=0-99", 1000), Bytes(0..100));
        assert_eq!(parse("bytes=900-", 1000), Bytes(900..1000));
        assert_eq!(parse("bytes=-100", 1000), Bytes(900..1000));
        assert_eq!(parse("bytes=-5000", 1000), Bytes(0..1000));
        assert_eq!(parse("bytes=990-5000", 1000), Bytes(990..1000));
        assert_eq!(parse("bytes=1000-", 1000), Unsatisfiable);
        assert_eq!(parse("bytes=-0", 1000), Unsatisfiable);
    }

    #[test]
    fn everything_else_gets_the_whole_file() {
        for h in [
            "bytes=0-1,5-6",
            "items=0-5",
            "bytes=5-1",
            "bytes=a-b",
            "bytes=-",
            "bytes=18446744073709551616-",
        ] {
            assert_eq!(parse(h, 1000), Ignored, "{h}");
        }
    }
}

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

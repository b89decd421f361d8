//! A cap on the header block of each part of a `multipart/form-data` body.
//!
//! The multipart parser (multer, under axum) limits how many headers a part has, not how long
//! they are: it buffers a header line until it ends, so one `X-Pad:` line of 1 GiB took the web
//! process to 2 GB. This wrapper watches the body on its way to the parser: after every
//! boundary it counts the bytes up to the blank line that ends the part's headers, and stops
//! the body once they pass [`MAX_PART_HEADER_BYTES`]. The parser never sees the rest.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::Stream;
use memchr::memmem::Finder;

/// Largest header block of one part (all its header lines together).
pub const MAX_PART_HEADER_BYTES: usize = 8 << 10;

/// Set when a body was stopped for an over-long header block: the handler answers 431.
#[derive(Debug, Clone, Default)]
pub struct Tripped(Arc<AtomicBool>);

impl Tripped {
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Where the scan is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// In a part's body (or the preamble): looking for the next delimiter.
    Body,
    /// Just past a delimiter: `--` here means the closing one.
    AfterDelimiter,
    /// In a part's header block, this many bytes in.
    Headers(usize),
    /// Past the closing delimiter: nothing more to check.
    Done,
}

/// The scanner, fed the body's bytes in order, whatever their chunking.
#[derive(Debug)]
pub struct Scanner {
    delimiter: Finder<'static>,
    blank_line: Finder<'static>,
    state: State,
    /// The last bytes of what was scanned, so a delimiter or a blank line split across two
    /// chunks is still seen.
    carry: Vec<u8>,
}

impl Scanner {
    pub fn new(boundary: &str) -> Self {
        Self {
            delimiter: Finder::new(format!("\r\n--{boundary}").as_bytes()).into_owned(),
            blank_line: Finder::new(b"\r\n\r\n").into_owned(),
            state: State::Body,
            // The first delimiter may open the body with no line break before it.
            carry: b"\r\n".to_vec(),
        }
    }

    /// Takes in the next bytes; `false` once a header block is over the cap.
    pub fn feed(&mut self, chunk: &[u8]) -> bool {
        let mut data = std::mem::take(&mut self.carry);
        data.extend_from_slice(chunk);
        let mut at = 0;
        loop {
            match self.state {
                State::Done => return true,
                State::Body => match self.delimiter.find(&data[at..]) {
                    Some(i) => {
                        at += i + self.delimiter.needle().len();
                        self.state = State::AfterDelimiter;
                    }
                    None => {
                        let keep = self.delimiter.needle().len() - 1;
                        self.carry = data[data.len().saturating_sub(keep).max(at)..].to_vec();
                        return true;
                    }
                },
                State::AfterDelimiter => {
                    if data.len() - at < 2 {
                        self.carry = data[at..].to_vec();
                        return true;
                    }
                    self.state = if &data[at..at + 2] == b"--" {
                        State::Done
                    } else {
                        State::Headers(0)
                    };
                }
                State::Headers(seen) => match self.blank_line.find(&data[at..]) {
                    Some(i) => {
                        if seen + i > MAX_PART_HEADER_BYTES {
                            return false;
                        }
                        // The blank line's CRLF pair may open the next delimiter's search.
                        at += i + 2;
                        self.state = State::Body;
                    }
                    None => {
                        // Up to 3 bytes may begin the blank line: carried, counted later.
                        let keep = (data.len() - at).min(3);
                        let counted = data.len() - at - keep;
                        if seen + counted > MAX_PART_HEADER_BYTES {
                            return false;
                        }
                        self.state = State::Headers(seen + counted);
                        self.carry = data[data.len() - keep..].to_vec();
                        return true;
                    }
                },
            }
        }
    }
}

/// The body stream, stopped (with an error) once a part's header block is over the cap.
pub struct Guarded<S> {
    inner: S,
    scanner: Scanner,
    tripped: Tripped,
}

impl<S> Guarded<S> {
    pub fn new(inner: S, boundary: &str) -> (Self, Tripped) {
        let tripped = Tripped::default();
        let guarded = Self {
            inner,
            scanner: Scanner::new(boundary),
            tripped: tripped.clone(),
        };
        (guarded, tripped)
    }
}

impl<S> std::fmt::Debug for Guarded<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guarded")
            .field("scanner", &self.scanner)
            .finish()
    }
}

impl<S, E> Stream for Guarded<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: Into<axum::BoxError>,
{
    type Item = Result<Bytes, axum::BoxError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.tripped.is_set() {
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                if self.scanner.feed(&chunk) {
                    Poll::Ready(Some(Ok(chunk)))
                } else {
                    self.tripped.0.store(true, Ordering::Relaxed);
                    Poll::Ready(Some(Err("a part's headers are too long".into())))
                }
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            other => other.map(|o| o.map(|r| r.map_err(Into::into))),
        }
    }
}

/// The boundary of a `multipart/form-data` content type, if it names one.
pub fn boundary_of(content_type: &str) -> Option<String> {
    content_type.split(';').skip(1).find_map(|param| {
        let (name, value) = param.trim().split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| value.trim().trim_matches('"').to_owned())
            .filter(|b| !b.is_empty() && b.len() <= 200)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(header_pad: usize) -> Vec<u8> {
        let mut b =
            b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.jpg\"\r\n"
                .to_vec();
        b.extend(b"X-Pad: ");
        b.extend(std::iter::repeat_n(b'a', header_pad));
        b.extend(b"\r\n\r\n");
        b.extend(std::iter::repeat_n(b'z', 100_000));
        b.extend(b"\r\n--XyZ\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhi");
        b.extend(b"\r\n--XyZ--\r\n");
        b.extend(std::iter::repeat_n(b'e', 20_000));
        b
    }

    fn passes(bytes: &[u8], chunk: usize) -> bool {
        let mut s = Scanner::new("XyZ");
        bytes.chunks(chunk).all(|c| s.feed(c))
    }

    #[test]
    fn headers_within_the_cap_pass_at_any_chunking() {
        let b = body(7_000);
        for chunk in [1, 2, 3, 5, 7, 64, 4096, b.len()] {
            assert!(passes(&b, chunk), "chunks of {chunk}");
        }
    }

    #[test]
    fn an_over_long_header_block_stops_at_any_chunking() {
        let b = body(9_000);
        for chunk in [1, 3, 64, 4096, b.len()] {
            assert!(!passes(&b, chunk), "chunks of {chunk}");
        }
        // A header line that never ends is stopped within the cap, not at its end.
        let mut endless = b"--XyZ\r\nX-Pad: ".to_vec();
        endless.extend(std::iter::repeat_n(b'a', 1 << 20));
        let mut s = Scanner::new("XyZ");
        let fed = endless.chunks(1024).take_while(|c| s.feed(c)).count();
        assert!(fed * 1024 <= MAX_PART_HEADER_BYTES + 2048, "{fed} chunks");
    }

    #[test]
    fn boundaries_are_read_from_the_content_type() {
        assert_eq!(
            boundary_of("multipart/form-data; boundary=abc").as_deref(),
            Some("abc")
        );
        assert_eq!(
            boundary_of("multipart/form-data; charset=utf-8; BOUNDARY=\"a b\"").as_deref(),
            Some("a b")
        );
        assert_eq!(boundary_of("multipart/form-data"), None);
    }
}

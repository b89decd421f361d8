//! One part of an S3 multipart upload, stored while its bytes are still arriving.
//!
//! object_store's `put_part` takes a whole part in memory, so a resumable upload's `PATCH` of
//! one part would receive all of it before storing any of it, and the client's next chunk
//! would wait for both. Here the part is an `UploadPart` that object_store presigns (its
//! documented way for a request it does not send itself, `UNSIGNED-PAYLOAD`), sent by reqwest
//! with a body that the request handler feeds as bytes come in: receiving and storing overlap.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use object_store::aws::AmazonS3;
use object_store::path::Path;
use object_store::signer::{SignedUrlOptions, Signer};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::Error;

/// How long a presigned part URL is valid: the request starts at once, so this only has to
/// outlast clock skew.
const URL_VALIDITY: Duration = Duration::from_secs(900);

/// Sends parts straight to the S3 endpoint of a store.
#[derive(Clone, Debug)]
pub(super) struct Streamer {
    s3: Arc<AmazonS3>,
    http: reqwest::Client,
}

impl Streamer {
    /// A client with the same progress-based limits as the store's own (connect, stall, idle).
    pub(super) fn new(
        s3: Arc<AmazonS3>,
        connect: Duration,
        stall: Duration,
    ) -> Result<Self, Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(connect)
            .read_timeout(stall)
            .pool_idle_timeout(Duration::from_secs(90))
            .build()
            .map_err(|e| Error::Part(e.to_string()))?;
        Ok(Self { s3, http })
    }

    /// Starts part `index` (from 0) of upload `id` at the full key `key`, `len` bytes long.
    pub(super) async fn start(
        &self,
        key: &Path,
        id: &str,
        index: usize,
        len: u64,
    ) -> Result<PartWriter, Error> {
        let options = SignedUrlOptions::new().with_query([
            ("partNumber", (index + 1).to_string()),
            ("uploadId", id.to_owned()),
        ]);
        let url = self
            .s3
            .signed_url_opts(reqwest::Method::PUT, key, URL_VALIDITY, &options)
            .await?;
        // Unbounded, yet never more than the part: a caller hands over a part's bytes without
        // waiting for this connection, so the next part starts on its own while this one is
        // still on its way; the caller bounds how many parts are in flight.
        let (tx, mut rx) = mpsc::unbounded_channel::<Result<Bytes, std::io::Error>>();
        let body = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
        // An explicit Content-Length: S3 refuses a part sent chunked, and a body that ends
        // short of it fails the request instead of storing a short part.
        let request = self
            .http
            .put(url)
            .header(reqwest::header::CONTENT_LENGTH, len)
            .body(reqwest::Body::wrap_stream(body));
        let task = tokio::spawn(async move {
            let response = request
                .send()
                .await
                .map_err(|e| Error::Part(describe(&e)))?;
            let status = response.status();
            let etag = response
                .headers()
                .get(reqwest::header::ETAG)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            if !status.is_success() {
                let text = response.text().await.unwrap_or_default();
                let text: String = text.chars().take(300).collect();
                return Err(Error::Part(format!("the store answered {status}: {text}")));
            }
            etag.ok_or_else(|| Error::Part("the store's answer had no ETag".into()))
        });
        Ok(PartWriter {
            tx: Some(tx),
            task,
            len,
            sent: 0,
        })
    }
}

/// reqwest's error with its causes (the top level alone says only "error sending request").
fn describe(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// A part being stored. Dropped before [`PartWriter::finish`], its request is cut off and
/// the store keeps nothing of it (the body ends short of its Content-Length).
#[derive(Debug)]
pub struct PartWriter {
    tx: Option<mpsc::UnboundedSender<Result<Bytes, std::io::Error>>>,
    task: JoinHandle<Result<String, Error>>,
    len: u64,
    sent: u64,
}

impl PartWriter {
    /// The part's length in bytes.
    pub fn size(&self) -> u64 {
        self.len
    }

    /// Bytes handed over so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Whether every byte of the part has been handed over.
    pub fn is_full(&self) -> bool {
        self.sent >= self.len
    }

    /// Hands bytes over (they must fit in the part), without waiting for the store.
    pub async fn send(&mut self, bytes: Bytes) -> Result<(), Error> {
        let n = bytes.len() as u64;
        if self.sent + n > self.len {
            return Err(Error::Part("more bytes than the part holds".into()));
        }
        let sent = match &self.tx {
            Some(tx) => tx.send(Ok(bytes)).is_ok(),
            None => false,
        };
        if !sent {
            // The request ended early: its outcome says why.
            self.tx = None;
            return Err(match (&mut self.task).await {
                Ok(Err(e)) => e,
                _ => Error::Part("the part's request ended before its body".into()),
            });
        }
        self.sent += n;
        Ok(())
    }

    /// Waits for the store to keep the whole part; returns its ETag.
    pub async fn finish(mut self) -> Result<String, Error> {
        if !self.is_full() {
            return Err(Error::Part("the part is not complete".into()));
        }
        self.tx = None;
        match (&mut self.task).await {
            Ok(result) => result,
            Err(e) => Err(Error::Part(format!("the part's request stopped: {e}"))),
        }
    }
}

impl Drop for PartWriter {
    fn drop(&mut self) {
        self.task.abort();
    }
}

//! Image decoding in child processes, so a deadline is real: a decode past it is killed and
//! its memory returned to the system at once (a thread cannot be stopped; a process can).
//!
//! Each child is this same binary started as `timeline-worker __decoder`, under an
//! address-space limit (`prlimit --as`, as for ffmpeg). Children are kept and reused — one per
//! step in flight — so the fast path pays no `exec` per photo and keeps its warm allocator (the
//! cost is one pipe copy of the original and of the renditions: see docs/PERFORMANCE.md). A
//! child that times out, crashes or hits its memory limit is killed and replaced on next use.
//!
//! Protocol over the child's stdin/stdout, one request at a time:
//! request `{"mime": "...", "len": N}\n` + N bytes; answer `{"ok": {...}}\n` + the preview's and
//! the thumbnail's bytes, or `{"err": "reason"}\n`.

use std::io::{BufRead, Read, Write};
use std::path::PathBuf;
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use timeline_media::ImageFormat;
use timeline_media::thumbnail::{self, Limits, Rendition, Thumbnails};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use crate::error::StepError;

/// The hidden first argument that makes `timeline-worker` a decoder child.
pub const CHILD_ARG: &str = "__decoder";

/// Largest request or answer header line (a few dozen bytes in practice).
const MAX_HEADER: u64 = 4096;

#[derive(Debug, Serialize, Deserialize)]
struct Request {
    mime: String,
    len: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Sizes {
    display_width: u32,
    display_height: u32,
    preview: Dims,
    thumb: Dims,
}

#[derive(Debug, Serialize, Deserialize)]
struct Dims {
    width: u32,
    height: u32,
    mime: String,
    len: u64,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Answer {
    Ok(Sizes),
    Err(String),
}

/// A pool of decoder children.
#[derive(Debug)]
pub struct Decoders {
    exe: PathBuf,
    limits: Limits,
    max_memory_bytes: u64,
    /// Idle children per lane: `[interactive, bulk]`.
    idle: [std::sync::Mutex<Vec<Proc>>; 2],
}

/// CPU niceness of the children that decode bulk work (imports, reprocessing). The children
/// of the interactive lane run at the worker's own priority, so a user's upload being decoded
/// next to a big import gets most of a core instead of an equal share (CFS weights: nice 10
/// is about a tenth of nice 0).
pub const BULK_NICENESS: u8 = 10;

/// One running child; killed when dropped.
#[derive(Debug)]
struct Proc {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Decoders {
    /// Children of the running executable, with these decoder limits and address-space cap.
    pub fn new(limits: Limits, max_memory_bytes: u64) -> std::io::Result<Self> {
        Ok(Self {
            exe: std::env::current_exe()?,
            limits,
            max_memory_bytes,
            idle: [
                std::sync::Mutex::new(Vec::new()),
                std::sync::Mutex::new(Vec::new()),
            ],
        })
    }

    /// Renders `bytes` in a child within `timeout`; past it the child is killed. `bulk` work
    /// goes to children running at [`BULK_NICENESS`].
    pub async fn render(
        &self,
        bytes: bytes::Bytes,
        format: ImageFormat,
        timeout: Duration,
        bulk: bool,
    ) -> Result<Thumbnails, StepError> {
        let lane = usize::from(bulk);
        let mut proc = match self.take_idle(lane) {
            Some(p) => p,
            None => self.spawn(bulk)?,
        };
        match tokio::time::timeout(timeout, exchange(&mut proc, &bytes, format)).await {
            Ok(Ok(Answered::Rendered(t))) => {
                self.give_back(lane, proc);
                Ok(t)
            }
            Ok(Ok(Answered::Refused(reason))) => {
                self.give_back(lane, proc);
                Err(StepError::Permanent(reason))
            }
            // The child died mid-request: its memory limit, a crash or a signal.
            Ok(Err(e)) => Err(StepError::Permanent(died(proc, e).await)),
            Err(_) => {
                drop(proc); // kill_on_drop: the decode stops and its memory is returned
                Err(StepError::Permanent(format!(
                    "processing took longer than {}s",
                    timeout.as_secs_f64()
                )))
            }
        }
    }

    /// An idle child that is still alive (one that died while idle — the OOM killer, an
    /// operator's kill — is reaped and dropped, so it never fails the next photo).
    fn take_idle(&self, lane: usize) -> Option<Proc> {
        let mut idle = self.idle[lane].lock().ok()?;
        while let Some(mut proc) = idle.pop() {
            if matches!(proc.child.try_wait(), Ok(None)) {
                return Some(proc);
            }
        }
        None
    }

    fn give_back(&self, lane: usize, proc: Proc) {
        if let Ok(mut idle) = self.idle[lane].lock() {
            idle.push(proc);
        }
    }

    fn spawn(&self, bulk: bool) -> Result<Proc, StepError> {
        // `nice` (coreutils) lowers the CPU priority of bulk children; it cannot be raised back
        // without privileges, hence children per lane rather than renicing one.
        let mut cmd = if bulk {
            let mut c = Command::new("nice");
            c.arg("-n").arg(BULK_NICENESS.to_string()).arg("prlimit");
            c
        } else {
            Command::new("prlimit")
        };
        cmd.arg(format!("--as={}", self.max_memory_bytes))
            .arg("--")
            .arg(&self.exe)
            .arg(CHILD_ARG)
            .arg(self.limits.max_pixels.to_string())
            .arg(self.limits.max_dimension.to_string())
            .arg(self.limits.max_alloc_bytes.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .map_err(|e| StepError::Transient(format!("cannot start the image decoder: {e}")))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(StepError::Transient("decoder pipes missing".into()));
        };
        Ok(Proc {
            child,
            stdin,
            stdout: BufReader::new(stdout),
        })
    }
}

enum Answered {
    Rendered(Thumbnails),
    Refused(String),
}

async fn exchange(proc: &mut Proc, bytes: &[u8], format: ImageFormat) -> std::io::Result<Answered> {
    let request = Request {
        mime: format.mime().to_owned(),
        len: bytes.len() as u64,
    };
    let mut line = serde_json::to_vec(&request)?;
    line.push(b'\n');
    proc.stdin.write_all(&line).await?;
    proc.stdin.write_all(bytes).await?;
    proc.stdin.flush().await?;

    let mut header = Vec::new();
    (&mut proc.stdout)
        .take(MAX_HEADER)
        .read_until(b'\n', &mut header)
        .await?;
    if header.last() != Some(&b'\n') {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "no answer",
        ));
    }
    match serde_json::from_slice::<Answer>(&header)? {
        Answer::Err(reason) => Ok(Answered::Refused(reason)),
        Answer::Ok(sizes) => {
            let preview = read_rendition(&mut proc.stdout, &sizes.preview).await?;
            let thumb = read_rendition(&mut proc.stdout, &sizes.thumb).await?;
            Ok(Answered::Rendered(Thumbnails {
                display_width: sizes.display_width,
                display_height: sizes.display_height,
                preview,
                thumb,
            }))
        }
    }
}

/// Renditions are small (a 1440 px JPEG); anything claiming more than this is a broken child.
const MAX_RENDITION_BYTES: u64 = 64 << 20;

async fn read_rendition(r: &mut BufReader<ChildStdout>, dims: &Dims) -> std::io::Result<Rendition> {
    if dims.len > MAX_RENDITION_BYTES {
        return Err(std::io::Error::other("rendition too large"));
    }
    let mut bytes = vec![0; usize::try_from(dims.len).map_err(std::io::Error::other)?];
    r.read_exact(&mut bytes).await?;
    Ok(Rendition {
        bytes,
        width: dims.width,
        height: dims.height,
        mime: if dims.mime == "image/webp" {
            "image/webp"
        } else {
            "image/jpeg"
        },
    })
}

/// The reason of a child that died mid-request (reaped here).
async fn died(mut proc: Proc, e: std::io::Error) -> String {
    let _ = proc.child.start_kill();
    match proc.child.wait().await {
        Ok(status) => {
            use std::os::unix::process::ExitStatusExt;
            match status.signal() {
                Some(sig) => format!(
                    "the image decoder was stopped by signal {sig} (out of memory or crashed)"
                ),
                None => format!("the image decoder failed: {e} ({status})"),
            }
        }
        Err(_) => format!("the image decoder failed: {e}"),
    }
}

/// The child's main loop: answers requests until stdin closes. Runs before any runtime or
/// logging is set up; nothing but answers goes to stdout.
pub fn child_main(args: &[String]) -> ExitCode {
    let parse = |i: usize| args.get(i).and_then(|s| s.parse::<u64>().ok());
    let (Some(max_pixels), Some(max_dimension), Some(max_alloc_bytes)) =
        (parse(0), parse(1), parse(2))
    else {
        eprintln!("usage: timeline-worker {CHILD_ARG} MAX_PIXELS MAX_DIMENSION MAX_ALLOC_BYTES");
        return ExitCode::FAILURE;
    };
    let limits = Limits {
        max_pixels,
        max_dimension: u32::try_from(max_dimension).unwrap_or(u32::MAX),
        max_alloc_bytes,
    };
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let stdout = std::io::stdout();
    let mut output = std::io::BufWriter::new(stdout.lock());
    loop {
        match serve_one(&mut input, &mut output, &limits) {
            Ok(true) => {}
            Ok(false) => return ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("timeline decoder: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
}

/// Serves one request; `Ok(false)` at end of input.
fn serve_one(
    input: &mut impl BufRead,
    output: &mut impl Write,
    limits: &Limits,
) -> std::io::Result<bool> {
    let mut header = Vec::new();
    input
        .by_ref()
        .take(MAX_HEADER)
        .read_until(b'\n', &mut header)?;
    if header.is_empty() {
        return Ok(false);
    }
    let request: Request = serde_json::from_slice(&header)?;
    let mut bytes = vec![0; usize::try_from(request.len).map_err(std::io::Error::other)?];
    input.read_exact(&mut bytes)?;
    let answer = match ImageFormat::from_mime(&request.mime) {
        Some(format) => render(&bytes, format, limits).map_err(|e| e.to_string()),
        None => Err(format!("unsupported: {}", request.mime)),
    };
    drop(bytes);
    match answer {
        Ok(t) => {
            let sizes = Sizes {
                display_width: t.display_width,
                display_height: t.display_height,
                preview: dims(&t.preview),
                thumb: dims(&t.thumb),
            };
            serde_json::to_writer(&mut *output, &Answer::Ok(sizes))?;
            output.write_all(b"\n")?;
            output.write_all(&t.preview.bytes)?;
            output.write_all(&t.thumb.bytes)?;
        }
        Err(reason) => {
            serde_json::to_writer(&mut *output, &Answer::Err(reason))?;
            output.write_all(b"\n")?;
        }
    }
    output.flush()?;
    Ok(true)
}

fn dims(r: &Rendition) -> Dims {
    Dims {
        width: r.width,
        height: r.height,
        mime: r.mime.to_owned(),
        len: r.bytes.len() as u64,
    }
}

/// Reads the EXIF orientation itself (a millisecond) rather than waiting for the EXIF step, so
/// the two steps run independently; HEIF pixels come back already rotated.
pub fn render(
    bytes: &[u8],
    format: ImageFormat,
    limits: &Limits,
) -> Result<Thumbnails, thumbnail::ThumbnailError> {
    let orientation = match format {
        ImageFormat::Heif => None,
        _ => timeline_media::exif::extract(bytes)
            .ok()
            .and_then(|f| f.orientation),
    };
    thumbnail::render(bytes, format, orientation, limits)
}

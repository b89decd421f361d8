//! ffprobe and ffmpeg as child processes: the video and audio decoders are C code fed hostile
//! input, so each runs in a process of its own, under an address-space limit (`prlimit --as`),
//! with a deadline after which it is killed, its output capped, its demuxer forced from the
//! format we sniffed (no guessing, no playlists) and only local files allowed. A crash, a hang
//! or a memory bomb costs that one file; the worker goes on.
//!
//! On top of the runner: [`probe`] (ffprobe JSON → [`StreamFacts`]), [`poster`] (the first
//! frame of the opening seconds that is not black or blank, upright, at preview size) and
//! [`waveform`] (an audio file's picture).

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

use crate::format::{AudioFormat, MediaFormat, VideoFormat};
use crate::probe::{self, ProbeError, StreamFacts};
use crate::thumbnail::{self, PREVIEW_SHORT_EDGE, ThumbnailError, Thumbnails};

/// Limits of one child process.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Killed after this long.
    pub timeout: Duration,
    /// Address-space limit (virtual memory, so generous: decoder threads reserve stacks).
    pub max_memory_bytes: u64,
    /// Decoder threads.
    pub threads: u32,
}

impl Default for Limits {
    /// 120 s, 3 GiB of address space, 2 threads.
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(120),
            max_memory_bytes: 3 << 30,
            threads: 2,
        }
    }
}

/// Why a probe or a poster failed. Messages are meant for users' failure lists.
#[derive(Debug, thiserror::Error)]
pub enum AvError {
    /// ffmpeg could not read the file (it says why).
    #[error("unreadable {what}: {detail}")]
    Unreadable { what: &'static str, detail: String },
    /// Past the deadline: killed.
    #[error("{what} took longer than {}s and was stopped", .secs)]
    Timeout { what: &'static str, secs: f64 },
    /// The file has no picture to show.
    #[error("no video frame could be decoded")]
    NoFrame,
    #[error(transparent)]
    Probe(#[from] ProbeError),
    #[error(transparent)]
    Render(#[from] ThumbnailError),
    /// ffmpeg/ffprobe/prlimit missing or not startable: the host is broken, not the file.
    #[error("could not run {program}: {source}")]
    Spawn {
        program: &'static str,
        #[source]
        source: std::io::Error,
    },
}

impl AvError {
    /// Whether the fault is the host's (a missing tool), so retrying elsewhere may help.
    pub fn is_host_fault(&self) -> bool {
        matches!(self, Self::Spawn { .. })
    }
}

/// ffmpeg's demuxer for a sniffed format: forcing it means a file is read as what we accepted
/// it as, never as whatever ffmpeg guesses (an HLS playlist, a concat script).
fn demuxer(format: MediaFormat) -> Option<&'static str> {
    Some(match format {
        MediaFormat::Video(
            VideoFormat::Mp4 | VideoFormat::QuickTime | VideoFormat::M4v | VideoFormat::ThreeGp,
        )
        | MediaFormat::Audio(AudioFormat::M4a) => "mov",
        MediaFormat::Video(VideoFormat::WebM | VideoFormat::Matroska) => "matroska",
        MediaFormat::Video(VideoFormat::Avi) => "avi",
        MediaFormat::Audio(AudioFormat::Mp3) => "mp3",
        MediaFormat::Audio(AudioFormat::Wav) => "wav",
        MediaFormat::Audio(AudioFormat::Ogg) => "ogg",
        MediaFormat::Audio(AudioFormat::Flac) => "flac",
        MediaFormat::Image(_) => return None,
    })
}

/// The input arguments shared by ffprobe and ffmpeg.
fn input_args(path: &Path, format: MediaFormat) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = vec!["-protocol_whitelist".into(), "file".into()];
    if let Some(d) = demuxer(format) {
        args.push("-f".into());
        args.push(d.into());
    }
    args.push("-i".into());
    // `file:` so a path can never be read as an option or another protocol.
    let mut p = std::ffi::OsString::from("file:");
    p.push(path.as_os_str());
    args.push(p);
    args
}

/// A running child whose stdout we read ourselves; killed when dropped.
struct Child {
    child: tokio::process::Child,
    stderr: tokio::task::JoinHandle<String>,
}

fn spawn(
    program: &'static str,
    args: Vec<std::ffi::OsString>,
    limits: &Limits,
) -> Result<Child, AvError> {
    let mut cmd = Command::new("prlimit");
    cmd.arg(format!("--as={}", limits.max_memory_bytes))
        .arg("--core=0")
        .arg("--")
        .arg(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .map_err(|source| AvError::Spawn { program, source })?;
    let stderr = child.stderr.take();
    // Drain stderr as it comes (a full pipe would stall the child); keep its tail.
    let stderr = tokio::spawn(async move {
        match stderr {
            Some(s) => read_capped(s, 64 << 10).await.map_or_else(
                |_| String::new(),
                |(bytes, _)| String::from_utf8_lossy(&bytes).into_owned(),
            ),
            None => String::new(),
        }
    });
    Ok(Child { child, stderr })
}

/// Reads up to `cap` bytes, then discards the rest; returns the bytes and whether it was cut.
async fn read_capped<R: AsyncRead + Unpin>(
    mut r: R,
    cap: usize,
) -> std::io::Result<(Vec<u8>, bool)> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    let mut cut = false;
    loop {
        let n = r.read(&mut buf).await?;
        if n == 0 {
            return Ok((out, cut));
        }
        let room = cap.saturating_sub(out.len());
        out.extend_from_slice(&buf[..n.min(room)]);
        cut |= n > room;
    }
}

/// ffmpeg's last two meaningful lines, for a user-facing reason: the last is often generic
/// ("Invalid data found when processing input") and the one before says why ("moov atom not
/// found"). ffmpeg starts its lines with the input's name (`file:/…/original: …`) or a
/// component tag (`[mov,mp4,… @ 0x55d…] `): the path is the server's business and the tag is
/// noise, so both are cut out.
fn reason(stderr: &str, status: std::process::ExitStatus, input: &Path) -> String {
    let path = input.to_string_lossy();
    let clean = |l: &str| {
        let l = l
            .replace(&format!("file:{path}: "), "")
            .replace(&format!("file:{path}"), "the file")
            .replace(path.as_ref(), "the file");
        let l = match (l.starts_with('['), l.find("] ")) {
            (true, Some(end)) => l[end + 2..].to_owned(),
            _ => l,
        };
        l.chars()
            .filter(|c| !c.is_control())
            .take(300)
            .collect::<String>()
    };
    let mut lines: Vec<String> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .rev()
        .take(2)
        .map(clean)
        .filter(|l| !l.is_empty())
        .collect();
    lines.dedup();
    lines.reverse();
    match (lines.is_empty(), status.code()) {
        (false, _) => lines.join(": "),
        (true, Some(code)) => format!("exit status {code}"),
        (true, None) => "killed by a signal (memory limit or crash)".to_owned(),
    }
}

/// Runs ffprobe on a local file.
pub async fn probe(
    path: &Path,
    format: MediaFormat,
    limits: &Limits,
) -> Result<StreamFacts, AvError> {
    let mut args: Vec<std::ffi::OsString> = [
        "-v",
        "error",
        "-print_format",
        "json",
        "-show_format",
        "-show_streams",
    ]
    .iter()
    .map(Into::into)
    .collect();
    args.extend(input_args(path, format));
    let mut child = spawn("ffprobe", args, limits)?;
    let stdout = child.child.stdout.take();
    let run = async {
        let (json, _) = match stdout {
            Some(s) => read_capped(s, 8 << 20).await.unwrap_or_default(),
            None => Default::default(),
        };
        let status = child.child.wait().await;
        (json, status)
    };
    let (json, status) = tokio::time::timeout(limits.timeout, run)
        .await
        .map_err(|_| AvError::Timeout {
            what: "probing the file",
            secs: limits.timeout.as_secs_f64(),
        })?;
    let stderr = (&mut child.stderr).await.unwrap_or_default();
    let status = status.map_err(|source| AvError::Spawn {
        program: "ffprobe",
        source,
    })?;
    if !status.success() {
        return Err(AvError::Unreadable {
            what: "file",
            detail: reason(&stderr, status, path),
        });
    }
    Ok(probe::parse(&String::from_utf8_lossy(&json))?)
}

/// How far into a clip we look for a poster frame, and how often.
const POSTER_WINDOW_SECS: u32 = 5;
const POSTER_FPS: u32 = 2;

/// The poster of a video: the first frame of the opening seconds (sampled twice a second) that
/// is not black or blank, else the most detailed one; scaled by ffmpeg to preview size (never
/// up), turned upright by ffmpeg from the display matrix, then rendered like a photo.
pub async fn poster(
    path: &Path,
    format: MediaFormat,
    facts: &StreamFacts,
    limits: &Limits,
) -> Result<Thumbnails, AvError> {
    let display = match (facts.width, facts.height) {
        (Some(w), Some(h)) => (w, h),
        _ => return Err(AvError::NoFrame),
    };
    let (w, h) = thumbnail::target_size(display.0, display.1, PREVIEW_SHORT_EDGE);
    let mut args = ffmpeg_args(path, format, limits);
    // The first frame, then one every 1/POSTER_FPS s (a plain `fps` filter drops the only
    // frame of a clip shorter than its period).
    let filter = format!(
        "select='isnan(prev_selected_t)+gte(t-prev_selected_t\\,{})',scale={w}:{h}:flags=bilinear,format=rgb24",
        1.0 / f64::from(POSTER_FPS)
    );
    for a in [
        "-map",
        "0:v:0",
        "-an",
        "-sn",
        "-dn",
        "-t",
        &POSTER_WINDOW_SECS.to_string(),
        "-vf",
        &filter,
        // One output frame per selected frame (constant-rate output would repeat them).
        "-fps_mode",
        "vfr",
        "-frames:v",
        &(POSTER_WINDOW_SECS * POSTER_FPS).to_string(),
    ] {
        args.push(a.into());
    }
    let frame = first_good_frame(args, path, limits, "decoding the poster frame").await?;
    render(frame, Some(display)).await
}

/// ffmpeg's leading arguments: quiet, no stdin, bounded threads, then the input.
fn ffmpeg_args(path: &Path, format: MediaFormat, limits: &Limits) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = vec![
        "-v".into(),
        "error".into(),
        "-nostdin".into(),
        "-threads".into(),
        limits.threads.to_string().into(),
    ];
    args.extend(input_args(path, format));
    args
}

/// Renders a frame like a photo, on the blocking pool. `display` defaults to the frame's size.
async fn render(frame: Frame, display: Option<(u32, u32)>) -> Result<Thumbnails, AvError> {
    let (rgb, w, h) = frame;
    let display = display.unwrap_or((w, h));
    tokio::task::spawn_blocking(move || thumbnail::render_frame(rgb, w, h, display))
        .await
        .map_err(|e| AvError::Render(ThumbnailError::Internal(e.to_string())))?
        .map_err(AvError::from)
}

/// An audio file's waveform as its picture (1000×250, rendered like a photo).
pub async fn waveform(
    path: &Path,
    format: MediaFormat,
    limits: &Limits,
) -> Result<Thumbnails, AvError> {
    let mut args = ffmpeg_args(path, format, limits);
    for a in [
        "-filter_complex",
        "[0:a:0]aformat=channel_layouts=mono,showwavespic=s=1000x250:colors=0x4f8fd8,format=rgb24[w]",
        "-map",
        "[w]",
        "-frames:v",
        "1",
    ] {
        args.push(a.into());
    }
    let frame = first_good_frame(args, path, limits, "drawing the waveform").await?;
    render(frame, None).await
}

/// One decoded RGB frame: pixels, width, height.
type Frame = (Vec<u8>, u32, u32);

/// Reads PPM frames from ffmpeg (the output arguments are added here, beside the reader that
/// expects them) until one is not blank (then kills it: the rest is not
/// needed); returns that frame, or the most detailed one seen.
async fn first_good_frame(
    args: Vec<std::ffi::OsString>,
    path: &Path,
    limits: &Limits,
    what: &'static str,
) -> Result<Frame, AvError> {
    let mut args = args;
    args.extend(["-f", "image2pipe", "-c:v", "ppm", "pipe:1"].map(std::ffi::OsString::from));
    let mut child = spawn("ffmpeg", args, limits)?;
    let Some(mut stdout) = child.child.stdout.take() else {
        return Err(AvError::NoFrame);
    };
    let read = async {
        let mut best: Option<(f64, Frame)> = None;
        while let Some(frame) = read_ppm(&mut stdout).await? {
            let detail = frame_detail(&frame.0);
            if !detail.blank {
                return Ok::<_, std::io::Error>(Some(frame));
            }
            if best.as_ref().is_none_or(|(d, _)| detail.score > *d) {
                best = Some((detail.score, frame));
            }
        }
        Ok(best.map(|(_, f)| f))
    };
    let found = tokio::time::timeout(limits.timeout, read)
        .await
        .map_err(|_| AvError::Timeout {
            what,
            secs: limits.timeout.as_secs_f64(),
        })?;
    match found {
        Ok(Some(frame)) => {
            // Done with it: stop decoding now rather than waiting for the rest.
            let _ = child.child.start_kill();
            Ok(frame)
        }
        Ok(None) | Err(_) => {
            let status = tokio::time::timeout(Duration::from_secs(5), child.child.wait()).await;
            let stderr = (&mut child.stderr).await.unwrap_or_default();
            match status {
                Ok(Ok(status)) if !status.success() => Err(AvError::Unreadable {
                    what: "video",
                    detail: reason(&stderr, status, path),
                }),
                _ => Err(AvError::NoFrame),
            }
        }
    }
}

/// Largest frame we accept from ffmpeg (it is scaled to preview size, so far below this).
const MAX_FRAME_BYTES: u64 = 64 << 20;

/// One binary PPM (`P6 W H 255\n` + RGB) from the stream; `None` at a clean end.
async fn read_ppm<R: AsyncRead + Unpin>(r: &mut R) -> std::io::Result<Option<Frame>> {
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_owned());
    let mut fields: Vec<String> = Vec::with_capacity(4);
    let mut current = String::new();
    let mut byte = [0u8; 1];
    let mut first = true;
    while fields.len() < 4 {
        let n = r.read(&mut byte).await?;
        if n == 0 {
            return if first && current.is_empty() {
                Ok(None)
            } else {
                Err(bad("truncated frame header"))
            };
        }
        first = false;
        let c = byte[0];
        if c.is_ascii_whitespace() {
            if !current.is_empty() {
                fields.push(std::mem::take(&mut current));
            }
        } else if current.len() < 16 {
            current.push(char::from(c));
        } else {
            return Err(bad("malformed frame header"));
        }
    }
    let num = |s: &str| s.parse::<u32>().map_err(|_| bad("malformed frame size"));
    if fields[0] != "P6" || fields[3] != "255" {
        return Err(bad("unexpected frame format"));
    }
    let (w, h) = (num(&fields[1])?, num(&fields[2])?);
    let len = u64::from(w) * u64::from(h) * 3;
    if w == 0 || h == 0 || len > MAX_FRAME_BYTES {
        return Err(bad("frame size out of range"));
    }
    let mut rgb = vec![0u8; usize::try_from(len).map_err(|_| bad("frame too large"))?];
    r.read_exact(&mut rgb).await?;
    Ok(Some((rgb, w, h)))
}

/// How much a frame shows.
#[derive(Debug, Clone, Copy)]
struct Detail {
    /// Black, or one flat colour (a fade, a lens cap, a title card's empty background).
    blank: bool,
    /// Luma standard deviation: the tiebreak when every frame is blank.
    score: f64,
}

/// Luma mean and spread over a sample of pixels.
fn frame_detail(rgb: &[u8]) -> Detail {
    const STEP: usize = 7; // every 7th pixel: plenty for a mean and a spread
    let (mut n, mut sum, mut sq) = (0f64, 0f64, 0f64);
    for px in rgb.chunks_exact(3).step_by(STEP) {
        let y = 0.299 * f64::from(px[0]) + 0.587 * f64::from(px[1]) + 0.114 * f64::from(px[2]);
        n += 1.0;
        sum += y;
        sq += y * y;
    }
    if n == 0.0 {
        return Detail {
            blank: true,
            score: 0.0,
        };
    }
    let mean = sum / n;
    let std = (sq / n - mean * mean).max(0.0).sqrt();
    Detail {
        blank: mean < 20.0 || std < 8.0,
        score: std + mean / 100.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/video")
            .join(name)
    }

    fn mov() -> MediaFormat {
        MediaFormat::Video(VideoFormat::Mp4)
    }

    #[tokio::test]
    async fn a_logo_fading_in_from_white_gets_a_poster_that_shows_it() {
        let path = fixture("sample.3gp");
        let limits = Limits::default();
        let facts = probe(&path, mov(), &limits).await.unwrap();
        assert_eq!((facts.width, facts.height), (Some(176), Some(144)));
        let t = poster(&path, mov(), &facts, &limits).await.unwrap();
        let img = image::load_from_memory(&t.preview.bytes).unwrap().to_rgb8();
        let d = frame_detail(img.as_raw());
        assert!(!d.blank, "{d:?}");
    }

    #[tokio::test]
    async fn broken_and_foreign_files_fail_with_ffmpegs_reason() {
        let limits = Limits::default();
        let e = probe(&fixture("bad_truncated_no_moov.mov"), mov(), &limits)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("moov atom not found"), "{e}");
        assert!(
            !e.to_string().contains(".mov"),
            "the reason names no path: {e}"
        );
        // A JPEG forced through the MP4 demuxer is not "guessed" into something else.
        let jpeg = fixture("motion_google.jpg");
        assert!(probe(&jpeg, mov(), &limits).await.is_err());
    }

    #[tokio::test]
    async fn a_hanging_decoder_is_killed_at_the_deadline() {
        let limits = Limits {
            timeout: Duration::from_millis(1),
            ..Limits::default()
        };
        let e = probe(&fixture("Issue 515 (java).mp4"), mov(), &limits)
            .await
            .unwrap_err();
        assert!(matches!(e, AvError::Timeout { .. }), "{e}");
    }

    #[tokio::test]
    async fn audio_gets_a_waveform() {
        let path = fixture("Issue 337 (dotnet).m4a");
        let t = waveform(
            &path,
            MediaFormat::Audio(AudioFormat::M4a),
            &Limits::default(),
        )
        .await
        .unwrap();
        assert_eq!((t.preview.width, t.preview.height), (1000, 250));
    }

    #[test]
    fn flat_and_black_frames_are_blank() {
        assert!(frame_detail(&[0u8; 300]).blank);
        assert!(frame_detail(&[128u8; 300]).blank);
        let stripes: Vec<u8> = (0..3000)
            .map(|i| if (i / 30) % 2 == 0 { 20 } else { 230 })
            .collect();
        assert!(!frame_detail(&stripes).blank);
    }

    #[tokio::test]
    async fn ppm_frames_parse_and_hostile_headers_fail() {
        let mut two = b"P6\n2 1\n255\n".to_vec();
        two.extend_from_slice(&[1, 2, 3, 4, 5, 6]);
        two.extend_from_slice(b"P6 1 1 255\n");
        two.extend_from_slice(&[9, 9, 9]);
        let mut r = &two[..];
        let a = read_ppm(&mut r).await.unwrap().unwrap();
        assert_eq!((a.1, a.2, a.0.len()), (2, 1, 6));
        let b = read_ppm(&mut r).await.unwrap().unwrap();
        assert_eq!((b.1, b.2), (1, 1));
        assert!(read_ppm(&mut r).await.unwrap().is_none());
        for bad in [
            &b"P5 1 1 255\n\0"[..],
            b"P6 99999 99999 255\n",
            b"P6 1",
            b"P6 0 5 255\n",
        ] {
            let mut r = bad;
            assert!(read_ppm(&mut r).await.is_err(), "{bad:?}");
        }
    }
}

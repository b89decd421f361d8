//! The reference for `scripts/bench-upload.sh`: one file put straight into the store by
//! object_store's multipart upload (the same client and settings the API uses), no HTTP in
//! between. `TIMELINE_STORAGE=s3://bucket/prefix AWS_…=… cargo run --release --example s3_put FILE`
//! prints the seconds it took. With `--serial`, one 8 MiB part at a time (each waited for before
//! the next is sent): the store's speed with one part in flight, which is all a client that
//! sends one part per request can have.

use futures::StreamExt;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: s3_put FILE [--serial]")?;
    let serial = std::env::args().any(|a| a == "--serial");
    let url = std::env::var("TIMELINE_STORAGE")?;
    let storage = timeline::storage::Storage::from_url(&url)?;
    let file = tokio::fs::File::open(&path).await?;
    let mut chunks = chunks_of(file);
    let key = object_store::path::Path::from(format!("bench/{}", uuid::Uuid::new_v4()));
    let started = std::time::Instant::now();
    let size = if serial {
        let id = storage.create_multipart(&key).await?;
        let (mut parts, mut size) = (Vec::new(), 0);
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk?;
            size += chunk.len() as u64;
            parts.push(storage.put_part(&key, &id, parts.len(), chunk).await?);
        }
        storage.complete_multipart(&key, &id, &parts).await?;
        size
    } else {
        storage.put_stream(&key, chunks).await?
    };
    let secs = started.elapsed().as_secs_f64();
    storage.delete(&key).await?;
    let mut out = std::io::stdout().lock();
    std::io::Write::write_all(&mut out, format!("{secs:.3} {size}\n").as_bytes())?;
    Ok(())
}

/// The file as a stream of 8 MiB chunks (as the API receives a body).
fn chunks_of(
    file: tokio::fs::File,
) -> impl futures::Stream<Item = Result<bytes::Bytes, timeline::storage::Error>> + Unpin {
    use tokio::io::AsyncReadExt;
    futures::stream::unfold(file, |mut file| async move {
        let mut buf = vec![0u8; 8 << 20];
        let mut got = 0;
        while got < buf.len() {
            match file.read(&mut buf[got..]).await {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) => return Some((Err(e.into()), file)),
            }
        }
        if got == 0 {
            return None;
        }
        buf.truncate(got);
        Some((Ok(bytes::Bytes::from(buf)), file))
    })
    .boxed()
}

// Uploads one file with tus-js-client under Node, as a phone app's camera-roll sync would:
// resumable, in chunks, retrying through cut connections and restarted servers.
//   node upload.mjs ENDPOINT TOKEN FILE CHUNK_BYTES [with-creation]
// Prints one JSON line: {"url", "media_id", "job_id", "retries"}; exits non-zero on failure.
import fs from 'node:fs';
import path from 'node:path';
import * as tus from 'tus-js-client';

const [endpoint, token, file, chunk, mode] = process.argv.slice(2);
const data = fs.readFileSync(file);
let mediaId = null;
let jobId = null;
let retries = 0;

const upload = new tus.Upload(data, {
  endpoint,
  chunkSize: Number(chunk) || Infinity,
  uploadDataDuringCreation: mode === 'with-creation',
  retryDelays: Array(80).fill(500),
  headers: { Authorization: `Bearer ${token}` },
  metadata: { filename: path.basename(file), filetype: 'application/octet-stream' },
  onAfterResponse(_req, res) {
    mediaId = res.getHeader('Timeline-Media-Id') || mediaId;
    jobId = res.getHeader('Timeline-Job-Id') || jobId;
  },
  onShouldRetry(err) {
    retries += 1;
    const status = err.originalResponse ? err.originalResponse.getStatus() : 0;
    // As tus-js-client's default: not on a client error, but on 409 and 423.
    return !(status >= 400 && status < 500) || status === 409 || status === 423;
  },
  onError(err) {
    console.error(`upload failed: ${err}`);
    process.exit(1);
  },
  onSuccess() {
    console.log(JSON.stringify({ url: upload.url, media_id: mediaId, job_id: jobId, retries }));
  },
});
upload.start();

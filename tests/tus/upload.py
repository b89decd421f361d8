"""Uploads one file with tuspy (the Python tus client), in chunks, each with a SHA-256
Upload-Checksum, retrying through cut connections and restarted servers.

    python upload.py ENDPOINT TOKEN FILE CHUNK_BYTES [PURPOSE | KEY=VALUE]

PURPOSE `import` uploads an archive for POST /v1/imports (`purpose` metadata); KEY=VALUE adds
that metadata instead (`filetype=application/zip`, API.md's form).

Prints one JSON line: {"url"}; exits non-zero on failure."""

import hashlib
import json
import os
import sys

from tusclient import client
from tusclient.uploader import Uploader


class Sha256Uploader(Uploader):
    # tuspy checksums with SHA-1 unless told otherwise; the server speaks SHA-256.
    CHECKSUM_ALGORITHM_PAIR = ("sha256", hashlib.sha256)


def main() -> None:
    endpoint, token, path, chunk = sys.argv[1:5]
    metadata = {"filename": os.path.basename(path)}
    if len(sys.argv) > 5:
        key, eq, value = sys.argv[5].partition("=")
        if eq:
            metadata[key] = value
        else:
            metadata["purpose"] = sys.argv[5]
    c = client.TusClient(endpoint, headers={"Authorization": f"Bearer {token}"})
    up = Sha256Uploader(
        file_path=path,
        client=c,
        chunk_size=int(chunk),
        metadata=metadata,
        upload_checksum=True,
        retries=80,
        retry_delay=1,
    )
    up.upload()
    print(json.dumps({"url": up.url}))


if __name__ == "__main__":
    main()

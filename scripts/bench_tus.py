#!/usr/bin/env python3
"""One resumable upload for scripts/bench-upload.sh: POST /v1/uploads, then PATCH the file in
chunks of CHUNK bytes, streamed from disk (stdlib only). Prints the seconds it took."""
import http.client, os, sys, time, urllib.parse

base, token, path, chunk = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
url = urllib.parse.urlsplit(base)
size = os.path.getsize(path)
auth = {"Authorization": f"Bearer {token}", "Tus-Resumable": "1.0.0"}
t0 = time.monotonic()
conn = http.client.HTTPConnection(url.hostname, url.port)
conn.request("POST", "/v1/uploads", headers={**auth, "Upload-Length": str(size)})
r = conn.getresponse(); r.read()
assert r.status == 201, r.status
loc = r.getheader("Location")
offset = 0
with open(path, "rb") as f:
    while offset < size:
        n = min(chunk, size - offset)
        conn.putrequest("PATCH", loc)
        for k, v in {**auth, "Upload-Offset": str(offset), "Content-Length": str(n),
                     "Content-Type": "application/offset+octet-stream"}.items():
            conn.putheader(k, v)
        conn.endheaders()
        left = n
        while left:
            block = f.read(min(left, 1 << 20))
            conn.send(block)
            left -= len(block)
        r = conn.getresponse(); r.read()
        assert r.status == 204, (r.status, offset)
        offset = int(r.getheader("Upload-Offset"))
print(f"{time.monotonic() - t0:.3f}")

#!/usr/bin/env python3
"""One upload for scripts/bench-priority.sh: POST /v1/media, poll the job until it ends,
print the seconds from request to completion (stdlib only)."""
import json, sys, time, urllib.request, uuid

base, token, path = sys.argv[1], sys.argv[2], sys.argv[3]
boundary = uuid.uuid4().hex
data = open(path, "rb").read()
body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{path.rsplit('/', 1)[-1]}\"\r\n"
        f"Content-Type: image/jpeg\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
t0 = time.monotonic()
req = urllib.request.Request(f"{base}/v1/media", data=body, method="POST", headers={
    "Authorization": f"Bearer {token}", "Content-Type": f"multipart/form-data; boundary={boundary}"})
job = json.load(urllib.request.urlopen(req))["job"]["id"]
while True:
    req = urllib.request.Request(f"{base}/v1/jobs/{job}", headers={"Authorization": f"Bearer {token}"})
    j = json.load(urllib.request.urlopen(req))
    if j["status"] in ("completed", "failed", "cancelled"):
        break
    time.sleep(0.05)
print(f"{time.monotonic() - t0:.3f}")

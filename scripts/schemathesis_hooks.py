"""schemathesis hooks for scripts/schemathesis.sh: tus bodies (`PATCH /v1/uploads/{id}`,
`POST /v1/uploads`) are raw bytes under their own media type."""
import schemathesis

schemathesis.serializer.alias("application/offset+octet-stream", "application/octet-stream")

"""The OCI distribution protocol under /v2: token endpoint, blobs, uploads, manifests, tags, catalog, referrers."""

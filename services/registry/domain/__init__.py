"""The registry domain both APIs use: repositories, blobs and manifests in the database, tag lifecycle, labels, notifications, usage logs."""

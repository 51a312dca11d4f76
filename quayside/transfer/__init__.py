"""Air-gapped transfer: `quayside export` writes chosen repositories of a Quayside into one archive
(an OCI image layout in a tar, plus metadata and a checksum list), `quayside import` loads it into
another Quayside. Both are clients of a registry's /v2 and /api/v1, like skopeo.
"""

"""Which URLs in Location and WWW-Authenticate the gateway points back at itself."""

from __future__ import annotations

import pytest

from services.gateway.proxying import UrlRewriter

GATEWAY = "https://registry.example.com"
rewriter = UrlRewriter({"us": "http://10.0.1.5:5000", "eu": "http://registry-eu"})


@pytest.mark.parametrize(
    ("region", "value", "rewritten"),
    [
        (
            "us",
            "http://10.0.1.5:5000/v2/ns/app/blobs/uploads/1?x=2",
            f"{GATEWAY}/v2/ns/app/blobs/uploads/1?x=2",
        ),
        # X-Forwarded-Proto https made the registry build an https URL of itself.
        ("us", "https://10.0.1.5:5000/v2/", f"{GATEWAY}/v2/"),
        (
            "us",
            'Bearer realm="http://10.0.1.5:5000/v2/auth",service="quayside"',
            f'Bearer realm="{GATEWAY}/v2/auth",service="quayside"',
        ),
        ("eu", 'Bearer realm="http://registry-eu",service="q"', f'Bearer realm="{GATEWAY}",service="q"'),
        # Not the region: another port, a longer host name, another region's URL, S3, relative paths.
        ("us", "http://10.0.1.5:50001/v2/", "http://10.0.1.5:50001/v2/"),
        ("eu", "http://registry-eu.example/v2/", "http://registry-eu.example/v2/"),
        ("eu", "http://10.0.1.5:5000/v2/", "http://10.0.1.5:5000/v2/"),
        (
            "us",
            "http://s3.example:8333/bucket/blob?X-Amz-Signature=ab",
            "http://s3.example:8333/bucket/blob?X-Amz-Signature=ab",
        ),
        ("us", "/v2/ns/app/blobs/uploads/1", "/v2/ns/app/blobs/uploads/1"),
    ],
)
def test_only_urls_of_the_answering_region_are_rewritten(region: str, value: str, rewritten: str) -> None:
    assert rewriter.rewrite(region, value, GATEWAY) == rewritten

"""The fast paths of ``subrequest._locate`` give what Django's own functions give."""

from __future__ import annotations

from urllib.parse import unquote_to_bytes

import pytest
from django.utils.encoding import iri_to_uri, repercent_broken_unicode

from batch_requests.subrequest import _URI_SAFE, resolved_path


@pytest.mark.parametrize("code", range(0x20, 0x180))
def test_a_url_is_left_unquoted_only_where_iri_to_uri_would_leave_it(code: int) -> None:
    url = f"/a{chr(code)}b/"
    assert bool(_URI_SAFE(url)) == (iri_to_uri(url) == url)


@pytest.mark.parametrize("path", ["/views/", "/api/v1/%62atch/", "/caf%C3%A9/", "/%FF%FE/",
                                  "/a b/", "/\u00e9t\u00e9/"])
def test_resolved_path_is_djangos(path: str) -> None:
    path_info = unquote_to_bytes(iri_to_uri(path)).decode("latin-1")
    expected = repercent_broken_unicode(path_info.encode("latin-1")).decode()
    assert resolved_path(path_info) == expected

"""The asyncio transport's response headers answer every lookup exactly as httpx.Headers of the same lines
would: in any case, a repeated header's values joined, absent names absent."""

from __future__ import annotations

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_provider_spotzee.transport import ResponseHeaders

# Header names as HTTP allows them (tokens), in mixed case and with repeats; printable ASCII values (what
# httpx.Headers takes as text), with the spaces around them that parsing strips.
_NAMES = st.sampled_from(["X-RateLimit-Limit", "x-ratelimit-limit", "Retry-After", "Set-Cookie", "set-cookie",
                          "Content-Length", "Idempotent-Replayed", "X-Request-Id", "Connection", "Vary"])
_VALUES = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20)


@given(st.lists(st.tuples(_NAMES, _VALUES), max_size=12), _NAMES)
def test_same_answers_as_httpx(lines, probe):
    fields = "\r\n".join(f"{name}: {value}" for name, value in lines)
    ours = ResponseHeaders.parse(fields)
    theirs = httpx.Headers([(name, value.strip(" ")) for name, value in lines])
    for name in {probe, probe.lower(), probe.upper(), *(n for n, _ in lines)}:
        assert ours.get(name) == theirs.get(name)
        assert (name in ours) == (name in theirs)
        if name in theirs:
            assert ours[name] == theirs[name]
        else:
            with pytest.raises(KeyError):
                ours[name]
    assert ours.get(probe, "fallback") == theirs.get(probe, "fallback")


def test_parse_refuses_a_line_without_a_colon():
    with pytest.raises(ValueError, match="without a colon"):
        ResponseHeaders.parse("Content-Length: 2\r\nnot a header")
    assert ResponseHeaders.parse("") == {}

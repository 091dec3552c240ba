"""Remembered Authorization values: the same answers as the digest path, for every value."""

from __future__ import annotations

import pytest

from app.auth import ACCEPTED_MAX, Authenticator, check_admin
from app.config import settings_from_data
from app.errors import AuthenticationFailed


def authenticator() -> Authenticator:
    settings = settings_from_data({"llm_providers": [], "api_keys": [{"key": "sk-good", "allowed_providers": "*"}]})
    return Authenticator(settings.api_keys)


def test_accepted_values_are_remembered_and_others_still_refused():
    auth = authenticator()
    first = auth.authenticate("Bearer sk-good")
    assert auth.authenticate("Bearer sk-good") is first  # the remembered answer
    assert auth.authenticate("bearer  sk-good ") == first  # another spelling: digest path, same principal
    for wrong in ("Bearer sk-goo", "Bearer sk-good2", "Bearer SK-GOOD", "Basic sk-good", ""):
        with pytest.raises(AuthenticationFailed):
            auth.authenticate(wrong)
    assert set(auth._accepted) == {"Bearer sk-good", "bearer  sk-good "}


def test_the_memory_of_accepted_values_is_bounded():
    auth = authenticator()
    for spaces in range(ACCEPTED_MAX + 50):
        auth.authenticate("Bearer " + " " * spaces + "sk-good")
    assert len(auth._accepted) == ACCEPTED_MAX


def test_header_bytes_that_are_not_utf8_are_a_wrong_key_not_a_crash():
    """Sanic hands such bytes over as surrogates (issue 11: they were a 500)."""
    auth = authenticator()
    sent = b"Bearer sk-\xff\xfegood".decode("utf-8", "surrogateescape")
    with pytest.raises(AuthenticationFailed):
        auth.authenticate(sent)
    settings = settings_from_data({"llm_providers": [], "api_keys": [{"key": "sk-caf\u00e9"}]})
    assert Authenticator(settings.api_keys).authenticate("Bearer sk-caf\u00e9".encode().decode("utf-8", "surrogateescape")) is not None
    assert not check_admin(sent, "admin-key")
    assert check_admin("Bearer admin-key", "admin-key")

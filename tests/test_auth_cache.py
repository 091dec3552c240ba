"""Remembered Authorization values: the same answers as the digest path, for every value."""

from __future__ import annotations

import pytest

from app.auth import ACCEPTED_MAX, Authenticator
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

"""Masking of secrets in printed URLs and properties."""

from __future__ import annotations

import pytest

from consumer.security.redact import mask_properties, mask_url, split_credentials


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://user:pass@host:8081/path", "http://***@host:8081/path"),
        ("https://token@host", "https://***@host"),
        ("https://u:p%40ss@host/a?b=1", "https://***@host/a?b=1"),
        ("http://host:1/x?api_key=k1&x=2", "http://host:1/x?api_key=***&x=2"),
        ("http://host/x?access_token=abc", "http://host/x?access_token=***"),
        ("http://host:6566", "http://host:6566"),
        ("", ""),
        ("not a url but has user@secret", "***"),
    ],
)
def test_mask_url(url: str, shown: str) -> None:
    assert mask_url(url) == shown


def test_mask_url_returns_clean_urls_unchanged() -> None:
    url = "https://registry.example:8081/subjects?page=2"
    assert mask_url(url) is url


def test_split_credentials_decodes_the_user_info() -> None:
    assert split_credentials("https://al%40ice:p%3Ass@host:1/x") == (
        "https://host:1/x",
        "al@ice",
        "p:ss",
    )
    assert split_credentials("https://host/x") == ("https://host/x", None, None)
    assert split_credentials("https://tok@host") == ("https://host", "tok", None)


def test_mask_properties_hides_secret_looking_names_only() -> None:
    props = {
        "sasl.username": "scorer",
        "sasl.password": "a",
        "ssl.key.password": "b",
        "ssl.keystore.password": "c",
        "ssl.key.pem": "d",
        "sasl.oauthbearer.client.secret": "e",
        "basic.auth.user.info": "f",
        "ssl.key.location": "/etc/key.pem",
    }
    masked = mask_properties(props)
    assert masked["sasl.username"] == "scorer"
    assert masked["ssl.key.location"] == "/etc/key.pem"
    assert {k for k, v in masked.items() if v == "***"} == set(props) - {
        "sasl.username",
        "ssl.key.location",
    }

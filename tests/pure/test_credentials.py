"""Logins in connection strings, escaped."""


import pytest

from mining_platform.access import credentials


@pytest.mark.parametrize("uri, expected", [
    ("mongodb://127.0.0.1:27027/?directConnection=true",
     "mongodb://u%40x:p%2Fw%3A@127.0.0.1:27027/?directConnection=true&authSource=admin"),
    ("mongodb://old:secret@db1:27017,db2:27017/mining?replicaSet=rs0&authSource=other",
     "mongodb://u%40x:p%2Fw%3A@db1:27017,db2:27017/mining?replicaSet=rs0&authSource=admin"),
    ("mongodb+srv://cluster.example.net", "mongodb+srv://u%40x:p%2Fw%3A@cluster.example.net/?authSource=admin"),
], ids=["plain", "replaced", "srv"])
def test_a_login_goes_into_a_connection_string_escaped(uri, expected):
    assert credentials.with_login(uri, credentials.Login("u@x", "p/w:")) == expected
    assert "p%2Fw%3A" not in credentials.redacted(expected) and "u%40x:***@" in credentials.redacted(expected)
    assert credentials.with_login(expected, None).startswith(uri.split("://")[0] + "://127.0.0.1") or "@" not in \
        credentials.with_login(expected, None)

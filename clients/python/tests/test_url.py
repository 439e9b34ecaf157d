"""Server addresses and document names."""
import pytest

from plotwire import Client
from plotwire._url import ServerAddress, check_document_name, parse_server_url, path_segment


@pytest.mark.parametrize("url, expected", [
    ("localhost:5006", ServerAddress("http", "localhost", 5006, "")),
    ("localhost", ServerAddress("http", "localhost", 5006, "")),
    ("127.0.0.1:8080", ServerAddress("http", "127.0.0.1", 8080, "")),
    ("  example.org:1234 ", ServerAddress("http", "example.org", 1234, "")),
    ("http://host:5006", ServerAddress("http", "host", 5006, "")),
    ("http://host:5006/", ServerAddress("http", "host", 5006, "")),
    ("http://host", ServerAddress("http", "host", 80, "")),
    ("https://host", ServerAddress("https", "host", 443, "")),
    ("HTTPS://Host:8443/plots/", ServerAddress("https", "host", 8443, "/plots")),
    ("http://host:5006/a/b", ServerAddress("http", "host", 5006, "/a/b")),
    ("[::1]:5006", ServerAddress("http", "::1", 5006, "")),
    ("http://[::1]", ServerAddress("http", "::1", 80, "")),
])
def test_parse_server_url(url, expected):
    assert parse_server_url(url) == expected


@pytest.mark.parametrize("url", [
    "", "   ", "ftp://host", "ws://host:5006", "http://", "host:notaport", "host:70000", "host:0",
    "http://host:5006/?x=1", "http://host#frag", "http://user:pw@host", "host:5006/prefix",
])
def test_parse_server_url_rejects(url):
    with pytest.raises(ValueError):
        parse_server_url(url)


def test_urls_of_an_address():
    addr = parse_server_url("http://[::1]:7000/p")
    assert addr.origin == "http://[::1]:7000"
    assert addr.url("/api/v1/documents/x") == "http://[::1]:7000/p/api/v1/documents/x"
    assert Client("localhost:5006", "runs/exp42").url == "http://localhost:5006/d/runs/exp42/"
    assert Client("https://h/pre", "a").url == "https://h:443/pre/d/a/"


@pytest.mark.parametrize("name", ["a", "runs/exp42", "A-b_c.d~e", "x/" * 7 + "y", "a" * 200, "v1.2/run~3"])
def test_valid_document_names(name):
    assert check_document_name(name) == name


@pytest.mark.parametrize("name", [
    "", "/a", "a/", "a//b", "a b", "a/.hidden", ".x", "a/sources", "events", "x/ws", "autoload.js",
    "a/metadata/b", "a" * 201, "/".join(["s"] * 9), "é", "a?b", "a%2Fb",
])
def test_invalid_document_names(name):
    with pytest.raises(ValueError):
        check_document_name(name)
    with pytest.raises(ValueError):
        Client("localhost:5006", name)


def test_path_segment_quotes_everything_but_unreserved():
    assert path_segment("src") == "src"
    assert path_segment("a/b c?d#e%") == "a%2Fb%20c%3Fd%23e%25"
    assert path_segment("é") == "%C3%A9"
    with pytest.raises(ValueError):
        path_segment("")

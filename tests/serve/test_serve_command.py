"""`liveavatar serve`'s own flags: the token by default, --no_token only on loopback, host and origin lists."""

from __future__ import annotations

import argparse

from liveavatar.cli import build_parser, main
from liveavatar.commands.serve import open_url, settings_from_args


def serve_args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["serve", *argv])


def test_a_random_token_by_default(monkeypatch, tmp_path):
    monkeypatch.delenv("LIVEAVATAR_TOKEN", raising=False)
    first = settings_from_args(serve_args("--data_dir", str(tmp_path)))
    second = settings_from_args(serve_args("--data_dir", str(tmp_path)))
    assert first.token and second.token and first.token != second.token and len(first.token) >= 24
    assert settings_from_args(serve_args("--token", "mine")).token == "mine"
    monkeypatch.setenv("LIVEAVATAR_TOKEN", "fromenv")
    assert settings_from_args(serve_args()).token == "fromenv"
    assert settings_from_args(serve_args("--no_token")).token is None  # loopback: allowed


def test_the_printed_url_carries_the_token():
    assert open_url("127.0.0.1", 7860, "a+b/c") == "http://127.0.0.1:7860/?token=a%2Bb%2Fc"
    assert open_url("0.0.0.0", 80, None) == "http://127.0.0.1:80/"
    assert open_url("::1", 7860, "t") == "http://[::1]:7860/?token=t"


def test_no_token_is_refused_off_loopback(capsys, tmp_path):
    for host in ("0.0.0.0", "192.168.1.5", "::"):
        code = main(["serve", "--host", host, "--no_token", "--data_dir", str(tmp_path / "d")])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and err[0].startswith("error: --no_token:"), err
    assert not (tmp_path / "d").exists()


def test_host_and_origin_lists():
    settings = settings_from_args(serve_args("--allowed_hosts", "a.lan, b.lan", "--cors_origins", "https://x.example"))
    assert settings.allowed_hosts == ("a.lan", "b.lan") and settings.cors_origins == ("https://x.example",)

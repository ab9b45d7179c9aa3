"""Starting or joining Ray: the dashboard hint and the token-authentication choices (``salttune.search.session``)."""

import os


def test_dashboard_hint_and_token_auth_choices(monkeypatch, tmp_path):
    from salttune.search import session

    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    hint = session.dashboard_help("http://127.0.0.1:8265")
    assert hint.startswith("Ray dashboard: http://127.0.0.1:8265") and "token authentication is on" in hint
    assert "ssh -N -L 8265:127.0.0.1:8265" in hint and "ray get-auth-token" in hint
    assert "joined the cluster" in session.dashboard_help(None, local=False)
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")  # a user's explicit choice is kept, with a warning
    assert session.prepare_auth(None)[0].startswith("warning: RAY_AUTH_MODE=disabled turns Ray's token authentication off")
    monkeypatch.delenv("RAY_AUTH_MODE")
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    monkeypatch.delenv("RAY_AUTH_TOKEN_PATH", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.ray/auth_token
    assert session.prepare_auth("10.0.0.1:6379") == [] and "RAY_AUTH_MODE" not in os.environ
    monkeypatch.setenv("RAY_AUTH_TOKEN", "s3cret")  # joining with a token at hand: token mode
    session.prepare_auth("10.0.0.1:6379")
    assert os.environ["RAY_AUTH_MODE"] == "token"

"""Starting a local Ray instance or joining a cluster; the dashboard, token authentication and GPUs.

Local (no ``--address``): Ray starts inside the driver, its dashboard bound to 127.0.0.1 only, with token
authentication on (``RAY_AUTH_MODE=token``; Ray 2.59+ does the same by default for local instances, and
creates the token in ``~/.ray/auth_token``). The browser asks for the token once and keeps it in a cookie.
Joining (``--address``): token mode is switched on when a token is at hand (``RAY_AUTH_TOKEN``,
``RAY_AUTH_TOKEN_PATH`` or ``~/.ray/auth_token``), as Ray does itself for ``address="auto"``.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from salttune.errors import SalttuneError
from salttune.search.space import Resources

__all__ = ["check_address", "check_dashboard_host", "prepare_auth", "start_ray", "token_auth_on", "usable_resources", "dashboard_help"]

AUTH_MODE = "RAY_AUTH_MODE"


def _token_at_hand() -> bool:
    return bool(os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH")
                or (Path.home() / ".ray" / "auth_token").is_file())


def prepare_auth(address: str | None) -> list[str]:
    """Settle ``RAY_AUTH_MODE`` before Ray is imported: Ray reads it into its config once, at import.

    Local: left to Ray, which turns token mode on for a new local instance (2.59+) and creates the token;
    an explicit ``disabled`` is respected with a warning. Joining: token mode when a token is at hand.
    """
    mode = os.environ.get(AUTH_MODE)
    if address is None:
        if mode is not None and mode.lower() != "token":
            return [f"warning: {AUTH_MODE}={mode} turns Ray's token authentication off; unset it to keep the dashboard protected"]
        return []
    if mode is None and _token_at_hand():
        os.environ[AUTH_MODE] = "token"
    return []


def check_address(address: str | None) -> None:
    """``--address``: 'auto', HOST:PORT or ray://HOST:PORT (what ``ray.init`` accepts), checked before anything starts."""
    if address is None or address == "auto":
        return
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not (sep and host.strip() and port.isdigit() and 0 < int(port) < 65536):
        raise SalttuneError(f"--address {address!r}: expected HOST:PORT (e.g. 10.0.0.5:6379) or 'auto'; "
                            "`ray status` on the head node prints the address")


def check_dashboard_host(host: str) -> None:
    """``--dashboard-host``: an address this machine can bind (0.0.0.0, 127.0.0.1, a name of this host)."""
    import socket

    try:
        ok = bool(host.strip()) and bool(socket.getaddrinfo(host, None))
    except (socket.gaierror, UnicodeError):
        ok = False
    if not ok:
        raise SalttuneError(f"--dashboard-host {host!r}: not an address of this machine; give 127.0.0.1 (the default) "
                            "or 0.0.0.0 (every interface)")


def start_ray(address: str | None, dashboard_host: str = "127.0.0.1") -> str | None:
    """Start or join Ray (call :func:`prepare_auth` first). Returns the dashboard URL of a local instance.

    The dashboard of a local instance binds to ``dashboard_host``: loopback unless the user asks otherwise
    with ``--dashboard-host`` (and is warned).

    Raises:
        SalttuneError: the cluster at ``address`` cannot be reached or refuses the token.
    """
    import ray

    if address is None:
        # address="local": always a new instance, never a `ray start` cluster that happens to run on this machine
        ctx = ray.init(address="local", include_dashboard=True, dashboard_host=dashboard_host, logging_level="WARNING")
        url = ctx.dashboard_url
        return f"http://{url}" if url and not url.startswith("http") else url
    try:
        ray.init(address=address, logging_level="WARNING")
    except ConnectionError as e:
        raise SalttuneError(f"--address {address}: no Ray cluster answers there ({str(e).splitlines()[0][:120]}); "
                            "check the address that `ray status` prints on the head node") from None
    except Exception as e:  # noqa: BLE001 - ray.exceptions.AuthenticationError and friends
        if type(e).__name__ == "AuthenticationError":
            raise SalttuneError(f"--address {address}: the cluster refused the connection for want of its token; copy "
                                "the token that `ray get-auth-token` prints on the head node to ~/.ray/auth_token "
                                "(or RAY_AUTH_TOKEN) and export RAY_AUTH_MODE=token") from None
        raise
    return None


def token_auth_on() -> bool:
    """Whether this driver runs with token authentication (Ray sets the variable when it turns it on)."""
    return os.environ.get(AUTH_MODE, "").lower() == "token"


def usable_resources(res: Resources, local: bool) -> tuple[Resources, list[str]]:
    """The per-trial resources to ask Ray for, and notices: a GPU share on a cluster without GPUs."""
    import ray

    gpus = ray.cluster_resources().get("GPU", 0)
    if res.gpu > 0 and gpus == 0:
        if local:
            return dataclasses.replace(res, gpu=0.0), [
                f"notice: the space asks for {res.gpu:g} GPU per trial, but this machine has none; trials run on CPUs"]
        return res, [f"notice: the cluster has no GPU now; trials asking for {res.gpu:g} GPU wait for the autoscaler "
                     "to add GPU nodes (add --set resources.gpu=0 to run them on CPUs)"]
    if local and res.gpu > gpus > 0:
        raise SalttuneError(f"resources.gpu: a trial asks for {res.gpu:g} GPUs but the largest cluster total is {gpus:g}; lower it")
    cpus = ray.cluster_resources().get("CPU", 0)
    if local and res.cpu > cpus:
        raise SalttuneError(f"resources.cpu: a trial asks for {res.cpu:g} CPUs but the cluster has {cpus:g}; lower it")
    return res, []


def dashboard_help(url: str | None, local: bool = True) -> str:
    """How to open the dashboard of a local instance (it only listens on this machine's loopback)."""
    if not local:
        return "Ray: joined the cluster; its dashboard is on the head node (`ray dashboard cluster.yaml` forwards it here)"
    if not url:
        return "Ray: started locally, without a dashboard (install ray[default] for one)"
    port = url.rsplit(":", 1)[-1].strip("/")
    auth = ("token authentication is on: when the page asks, paste the token that `ray get-auth-token` prints"
            if token_auth_on() else "WARNING: token authentication is off")
    return (f"Ray dashboard: {url}  ({auth}; from another machine: ssh -N -L {port}:127.0.0.1:{port} USER@THIS_HOST, "
            f"then open {url})")

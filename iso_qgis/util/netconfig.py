"""Network settings every HTTP path of the engine follows: a proxy and how to check servers' certificates.

In QGIS they come from its network settings (``processing/`` reads QgsNetworkAccessManager's proxy and hands
it over with :func:`configure`); on the command line from ``--proxy`` or the usual ``HTTPS_PROXY``,
``HTTP_PROXY``, ``NO_PROXY`` and ``SSL_CERT_FILE`` / ``REQUESTS_CA_BUNDLE`` variables. The same settings reach
urllib (tile sets by URL, the self-hosted endpoint), requests (Cloud Storage) and httpx (google-genai, through
its ``http_options`` client arguments).
"""

from __future__ import annotations

import os
import ssl
import threading
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from .errors import IsoInputError


@dataclass(frozen=True)
class NetworkSettings:
    """``proxy``: ``http://[user:password@]host:port`` or None for a direct connection; ``no_proxy``: hosts
    (comma separated, ``.example.com`` for a domain) reached directly; ``ca_bundle``: a PEM file of the
    certificates to trust (a corporate TLS-inspecting proxy's); ``verify_ssl`` False trusts any server."""

    proxy: str | None = None
    no_proxy: str = ""
    ca_bundle: str | None = None
    verify_ssl: bool = True

    def __repr__(self) -> str:  # a proxy URL may hold a password
        return (f"NetworkSettings(proxy={_redacted(self.proxy)!r}, no_proxy={self.no_proxy!r}, "
                f"ca_bundle={self.ca_bundle!r}, verify_ssl={self.verify_ssl})")  # fmt: skip

    def proxy_for(self, url: str) -> str | None:
        """The proxy a request to ``url`` goes through, or None (no proxy, or the host is in ``no_proxy``)."""
        if not self.proxy:
            return None
        host = (urlsplit(url).hostname or "").lower()
        for entry in (e.strip().lower() for e in self.no_proxy.split(",")):
            if entry == "*" or (entry and (host == entry.lstrip(".") or host.endswith("." + entry.lstrip(".")))):
                return None
        return self.proxy

    def ssl_context(self) -> ssl.SSLContext:
        if not self.verify_ssl:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE  # the user chose not to verify (QGIS: ignore SSL errors)
            return ctx
        return ssl.create_default_context(cafile=self.ca_bundle) if self.ca_bundle else ssl.create_default_context()


_LOCK = threading.Lock()
_EXPLICIT: NetworkSettings | None = None


def configure(settings: NetworkSettings | None) -> None:
    """Use these settings from now on (None: back to the environment's)."""
    global _EXPLICIT
    if settings is not None and settings.proxy:
        parts = urlsplit(settings.proxy)
        if parts.scheme not in ("http", "https", "socks5", "socks5h") or not parts.hostname:
            raise IsoInputError(
                "PROXY", f"{_redacted(settings.proxy)!r} is not a proxy URL", "Give it as http://host:port"
            )
    if settings is not None and settings.ca_bundle and not os.path.isfile(settings.ca_bundle):
        raise IsoInputError("CA_BUNDLE", f"{settings.ca_bundle} does not exist", "Give a PEM file of certificates")
    with _LOCK:
        _EXPLICIT = settings


def current() -> NetworkSettings:
    """The configured settings, else the environment's."""
    with _LOCK:
        if _EXPLICIT is not None:
            return _EXPLICIT
    env = os.environ.get
    proxy = env("HTTPS_PROXY") or env("https_proxy") or env("HTTP_PROXY") or env("http_proxy") or None
    ca = env("REQUESTS_CA_BUNDLE") or env("SSL_CERT_FILE") or None
    return NetworkSettings(proxy=proxy, no_proxy=env("NO_PROXY") or env("no_proxy") or "", ca_bundle=ca)


def urlopen(request: str | urllib.request.Request, timeout: float) -> Any:
    """``urllib.request.urlopen`` through the current proxy and certificate settings."""
    s = current()
    url = request.full_url if isinstance(request, urllib.request.Request) else request
    proxy = s.proxy_for(url)
    # an explicit (possibly empty) mapping: urllib must not pick another proxy from the environment
    handlers: list[Any] = [urllib.request.ProxyHandler({"http": proxy, "https": proxy} if proxy else {})]
    if url.startswith("https:"):
        handlers.append(urllib.request.HTTPSHandler(context=s.ssl_context()))
    opener = urllib.request.build_opener(*handlers)
    return opener.open(request, timeout=timeout)


def apply_to_session(session: Any) -> None:
    """Point a requests session (google-auth's ``AuthorizedSession``) at the current settings, and nowhere the
    environment says otherwise. The proxy is chosen per request: requests ignores a ``no_proxy`` of its own
    when it does not read the environment."""
    from requests.adapters import HTTPAdapter

    settings = current()

    class _Adapter(HTTPAdapter):
        def send(self, request: Any, *args: Any, **kw: Any) -> Any:
            proxy = settings.proxy_for(request.url)
            kw["proxies"] = {"http": proxy, "https": proxy} if proxy else {}
            return super().send(request, *args, **kw)

    session.trust_env = False
    session.proxies.clear()
    session.verify = (settings.ca_bundle or True) if settings.verify_ssl else False
    for prefix in ("http://", "https://"):
        session.mount(prefix, _Adapter())


def google_auth_request() -> Any:
    """google-auth's transport for token refreshes, through the network settings."""
    import requests
    from google.auth.transport.requests import Request

    session = requests.Session()
    apply_to_session(session)
    return Request(session)


def httpx_client_args(url: str) -> dict[str, Any]:
    """Client arguments for httpx (google-genai's ``HttpOptions.client_args`` / ``async_client_args``) to reach
    ``url`` (the API's endpoint)."""
    s = current()
    args: dict[str, Any] = {"proxy": s.proxy_for(url), "trust_env": False}
    if s.ca_bundle or not s.verify_ssl:  # else google-genai's own context (system store, client certificates)
        args["verify"] = s.ssl_context()
    return args


def _redacted(proxy: str | None) -> str | None:
    if not proxy or "@" not in proxy:
        return proxy
    parts = urlsplit(proxy)
    return f"{parts.scheme}://***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")

"""QGIS's network settings (Settings > Options > Network) handed to the engine, whose HTTP does not go through
QGIS's network stack: the proxy of QgsNetworkAccessManager, its exclusions, and the certificate authorities
the QGIS authentication manager trusts beyond the system's."""

from __future__ import annotations

import os
from urllib.parse import quote, urlsplit

from ..iso_qgis.util import netconfig
from ..iso_qgis.util.fsutil import atomic_write_bytes

#: a URL to ask the system proxy configuration about (Google's APIs and most tile servers are https)
_PROBE_URL = "https://storage.googleapis.com/"


def qgis_network_settings() -> netconfig.NetworkSettings | None:
    """The engine's settings from QGIS's; None when QGIS's proxy is not one the engine can use (SOCKS), so the
    environment's apply."""
    from qgis.core import QgsNetworkAccessManager, QgsSettings
    from qgis.PyQt.QtCore import QUrl
    from qgis.PyQt.QtNetwork import QNetworkProxy, QNetworkProxyFactory, QNetworkProxyQuery

    nam = QgsNetworkAccessManager.instance()
    ca_bundle = _extra_ca_bundle()
    if not QgsSettings().value("proxy/proxyEnabled", False, type=bool):
        return netconfig.NetworkSettings(ca_bundle=ca_bundle)
    proxy = nam.fallbackProxy()
    if proxy.type() == QNetworkProxy.ProxyType.DefaultProxy:  # "use the system's": ask it
        found = QNetworkProxyFactory.systemProxyForQuery(QNetworkProxyQuery(QUrl(_PROBE_URL)))
        proxy = found[0] if found else QNetworkProxy(QNetworkProxy.ProxyType.NoProxy)
    kind = proxy.type()
    if kind == QNetworkProxy.ProxyType.NoProxy or not proxy.hostName():
        return netconfig.NetworkSettings(ca_bundle=ca_bundle)
    if kind not in (QNetworkProxy.ProxyType.HttpProxy, QNetworkProxy.ProxyType.HttpCachingProxy):
        return None
    auth = ""
    if proxy.user():
        auth = quote(proxy.user(), safe="") + (":" + quote(proxy.password(), safe="") if proxy.password() else "") + "@"
    url = f"http://{auth}{proxy.hostName()}:{proxy.port() or 8080}"
    excluded = [urlsplit(u).hostname or u for u in (*nam.excludeList(), *nam.noProxyList()) if u]
    return netconfig.NetworkSettings(proxy=url, no_proxy=",".join(excluded), ca_bundle=ca_bundle)


def apply_qgis_network_settings() -> None:
    """Hand QGIS's current network settings to the engine (they may have changed since the last run)."""
    netconfig.configure(qgis_network_settings())


def _extra_ca_bundle() -> str | None:
    """A PEM file of every authority QGIS trusts when its authentication manager holds some beyond the
    system's (a corporate TLS-inspecting proxy's), else None (the system's apply)."""
    from qgis.core import QgsApplication

    am = QgsApplication.authManager()
    try:
        extra = list(am.extraFileCAs()) + list(am.databaseCAs())
    except (AttributeError, RuntimeError):  # no authentication database (headless, or not set up)
        return None
    if not extra:
        return None
    pem = b"".join(bytes(c.toPem()) for c in am.trustedCaCertsCache())
    path = os.path.join(QgsApplication.qgisSettingsDirPath(), "iso_tile_stylizer-ca.pem")  # the user's own folder
    atomic_write_bytes(path, pem)
    return path

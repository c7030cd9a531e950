"""The plugin's backend settings (QgsSettings) and its secrets (the QGIS authentication manager).

Settings hold only non-secret values and the 7-character id of an authentication
configuration; the API key or access token itself stays in the encrypted auth database.
"""

from __future__ import annotations

from typing import Any

from qgis.core import QgsApplication, QgsAuthMethodConfig, QgsProcessingException, QgsSettings

PREFIX = "iso_tile_stylizer/backend/"
#: key -> (default, type)
FIELDS: dict[str, tuple[Any, type]] = {
    "project": ("", str),
    "location": ("global", str),
    "authcfg": ("", str),
    "model": ("", str),
    "fallback_model": ("", str),
    "base_url": ("", str),
    "cache_dir": ("", str),
    "prices_file": ("", str),
    "requests_per_minute": (0.0, float),
    "timeout_s": (180.0, float),
    # the endpoint backend: a self-hosted image-edit server; its headers (a proxy's keys) in an authcfg
    "endpoint_url": ("", str),
    "endpoint_authcfg": ("", str),
    "endpoint_timeout_s": (600.0, float),
    "endpoint_steps": (20, int),
    "endpoint_price_per_call": (0.0, float),
    # generatetiles: the tile type table (JSON rows, iso_qgis.plan.tiletypes); empty: the defaults
    "tile_types": ("", str),
}


def read_settings() -> dict[str, Any]:
    s = QgsSettings()
    out = {}
    for key, (default, kind) in FIELDS.items():
        value = s.value(PREFIX + key, default)
        try:
            out[key] = kind(value) if value not in (None, "") else default
        except (TypeError, ValueError):
            out[key] = default
    return out


def write_settings(values: dict[str, Any]) -> None:
    s = QgsSettings()
    for key in FIELDS:
        if key in values:
            s.setValue(PREFIX + key, values[key])


def secret_from_authcfg(authcfg: str) -> str:
    """The key or token stored in an authentication configuration (its password, or a 'key'/'token' field)."""
    manager = QgsApplication.authManager()
    cfg = QgsAuthMethodConfig()
    if not manager.loadAuthenticationConfig(authcfg, cfg, True) or not cfg.isValid(True):
        raise QgsProcessingException(
            f"AUTHCFG: the authentication configuration {authcfg!r} could not be read. "
            "Check it in Settings > Options > Authentication (and that the master password is set)"
        )
    for field in ("password", "key", "token", "apikey"):
        value = cfg.config(field, "")
        if value:
            return value
    raise QgsProcessingException(
        f"AUTHCFG: the authentication configuration {authcfg!r} holds no key. "
        "Store the API key (or access token) as its password"
    )


def headers_from_authcfg(authcfg: str) -> dict[str, str]:
    """The HTTP headers an authentication configuration holds: an API Header configuration's names and values,
    or a Basic one's user name (the header's name) and password (its value)."""
    manager = QgsApplication.authManager()
    cfg = QgsAuthMethodConfig()
    if not manager.loadAuthenticationConfig(authcfg, cfg, True) or not cfg.isValid(True):
        raise QgsProcessingException(
            f"ENDPOINT_AUTHCFG: the authentication configuration {authcfg!r} could not be read. "
            "Check it in Settings > Options > Authentication (and that the master password is set)"
        )
    if cfg.method() == "APIHeader":
        headers = {str(k): str(v) for k, v in dict(cfg.configMap()).items() if k and v}
    else:
        user, password = cfg.config("username", ""), cfg.config("password", "")
        headers = {user: password} if user and password else {}
    if not headers:
        raise QgsProcessingException(
            f"ENDPOINT_AUTHCFG: the authentication configuration {authcfg!r} holds no header. Use an API Header "
            "configuration (e.g. Modal-Key and Modal-Secret), or Basic: the header's name as user, its value as "
            "password"
        )
    return headers


def endpoint_options(values: dict[str, Any], with_secret: bool) -> dict[str, Any]:
    """The endpoint backend's options from the settings (its URL else from ``ISOTILES_ENDPOINT_URL``)."""
    opts: dict[str, Any] = {
        "timeout_s": values["endpoint_timeout_s"], "steps": values["endpoint_steps"],
        "price_per_call": values["endpoint_price_per_call"],
    }  # fmt: skip
    if values["endpoint_url"]:
        opts["url"] = values["endpoint_url"]
    if values["cache_dir"]:
        opts["cache_dir"] = values["cache_dir"]
    if values["endpoint_authcfg"] and with_secret:
        opts["headers"] = headers_from_authcfg(values["endpoint_authcfg"])
    return opts


def backend_options(backend: str, overrides: dict[str, Any] | None = None, with_secret: bool = True) -> dict[str, Any]:
    """Keyword arguments for ``iso_qgis.backends.make_backend``: settings, algorithm overrides, the secret.

    ``with_secret=False`` (a dry run) leaves the authentication database alone: no master password is asked.
    """
    if backend == "offline":
        return {}
    values = {**read_settings(), **{k: v for k, v in (overrides or {}).items() if v not in (None, "")}}
    if backend == "endpoint":
        return endpoint_options(values, with_secret)
    opts: dict[str, Any] = {"timeout_s": values["timeout_s"], "requests_per_minute": values["requests_per_minute"]}
    for key in ("base_url", "cache_dir", "prices_file"):
        if values[key]:
            opts[key] = values[key]
    if backend == "vertex":
        if values["project"]:
            opts["project"] = values["project"]
        opts["location"] = values["location"] or "global"
    authcfg = values["authcfg"]
    if authcfg and with_secret:
        secret = secret_from_authcfg(authcfg)
        if backend == "gemini":
            opts["api_key"] = secret
        else:
            opts["access_token"] = secret
            opts["token_provider"] = lambda: secret_from_authcfg(authcfg)  # after a 401: the stored token, again
    return opts


def plugin_packages_dir() -> str:
    """The folder the plugin installs google-genai into: in the QGIS profile, per Python version."""
    from ..iso_qgis.util.pyinstall import packages_dir

    return str(packages_dir(QgsApplication.qgisSettingsDirPath()))

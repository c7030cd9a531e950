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


def backend_options(backend: str, overrides: dict[str, Any] | None = None, with_secret: bool = True) -> dict[str, Any]:
    """Keyword arguments for ``iso_qgis.backends.make_backend``: settings, algorithm overrides, the secret.

    ``with_secret=False`` (a dry run) leaves the authentication database alone: no master password is asked.
    """
    if backend == "offline":
        return {}
    values = {**read_settings(), **{k: v for k, v in (overrides or {}).items() if v not in (None, "")}}
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
    from ..iso_qgis.pyinstall import packages_dir

    return str(packages_dir(QgsApplication.qgisSettingsDirPath()))

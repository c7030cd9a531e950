"""Settings ▸ Install google-genai: pip runs as its own process into the plugin's folder; the result is shown."""

from __future__ import annotations

import sys
import time

import pytest
from isotiles_testing import dummy_wheel

pytestmark = pytest.mark.qgis


def wait_for(dlg, seconds=300):
    from qgis.PyQt.QtWidgets import QApplication

    end = time.monotonic() + seconds
    while dlg.succeeded is None and time.monotonic() < end:
        QApplication.processEvents()
        time.sleep(0.02)
    return dlg.succeeded


def test_install_from_the_dialog_makes_the_package_importable(qgis_app, tmp_path):
    from iso_tile_stylizer.iso_qgis.util.pyinstall import packages_dir
    from iso_tile_stylizer.ui.install_dialog import InstallGenaiDialog

    wheels = tmp_path / "wheels"
    dummy_wheel(wheels, name="isotiles-dummy-sdk", version="1.2.0", module="isotiles_dummy_sdk")
    target = packages_dir(tmp_path / "profile")
    dlg = InstallGenaiDialog(target=str(target), requirement="isotiles-dummy-sdk>=1,<2", find_links=str(wheels),
                             module="isotiles_dummy_sdk")  # fmt: skip
    try:
        assert str(target) in dlg.intro.text()
        dlg.install()
        assert not dlg.install_button.isEnabled()  # one install at a time
        assert wait_for(dlg), dlg.log.toPlainText() + dlg.result.text()
        assert "isotiles-dummy-sdk 1.2.0 is installed in" in dlg.result.text()
        import isotiles_dummy_sdk

        assert isotiles_dummy_sdk.__file__.startswith(str(target))
        assert sys.path[0] == str(target)
    finally:
        if str(target) in sys.path:
            sys.path.remove(str(target))
        sys.modules.pop("isotiles_dummy_sdk", None)


def test_a_failed_install_says_so_and_how_to_install_by_hand(qgis_app, tmp_path):
    from iso_tile_stylizer.ui.install_dialog import InstallGenaiDialog

    (tmp_path / "empty").mkdir()
    dlg = InstallGenaiDialog(
        target=str(tmp_path / "t"), requirement="isotiles-not-there", find_links=str(tmp_path / "empty")
    )
    dlg.install()
    assert wait_for(dlg) is False
    assert "pip failed" in dlg.result.text() and "by hand" in dlg.result.text()
    assert dlg.install_button.isEnabled()


def test_settings_show_whether_google_genai_is_there(qgis_app):
    from iso_tile_stylizer.ui.settings_dialog import SettingsDialog

    dlg = SettingsDialog()
    assert "google-genai" in dlg.genai.text()


def test_install_missing_packages_names_them_installs_them_and_checks_qgis_opens_rasters(
    qgis_app, tmp_path, monkeypatch
):
    from iso_tile_stylizer.iso_qgis.util import deps
    from iso_tile_stylizer.iso_qgis.util.pyinstall import packages_dir
    from iso_tile_stylizer.ui.install_dialog import InstallPackagesDialog

    # an engine package this Python lacks, as a wheel in a local folder
    monkeypatch.setitem(deps.REQUIRED, "isotiles_dummy_engine", ("isotiles-dummy-engine", (1, 2)))
    monkeypatch.setitem(deps.PURPOSE, "isotiles_dummy_engine", "testing the dialog")
    wheels = tmp_path / "wheels"
    dummy_wheel(wheels, name="isotiles-dummy-engine", version="1.2.0", module="isotiles_dummy_engine")
    target = packages_dir(tmp_path / "profile")
    dlg = InstallPackagesDialog(target=str(target), find_links=str(wheels))
    try:
        assert "isotiles-dummy-engine is not installed (needed for testing the dialog)" in dlg.intro.text()
        assert str(target) in dlg.intro.text() and dlg.install_button.isEnabled()
        dlg.install()
        assert wait_for(dlg), dlg.log.toPlainText() + dlg.result.text()
        assert "Installed isotiles-dummy-engine>=1.2 in" in dlg.result.text()
        assert "QGIS still opens rasters" in dlg.result.text()
        assert deps.problems() == []
        assert "--constraint" in dlg.log.toPlainText()  # pinned to what QGIS's Python has
    finally:
        if str(target) in sys.path:
            sys.path.remove(str(target))
        sys.modules.pop("isotiles_dummy_engine", None)


def test_with_nothing_missing_the_dialog_has_nothing_to_install(qgis_app):
    from iso_tile_stylizer.ui.install_dialog import InstallPackagesDialog

    dlg = InstallPackagesDialog(target="/nonexistent")
    assert "Every Python package the algorithms need is installed" in dlg.intro.text()
    assert not dlg.install_button.isEnabled()


def test_a_failed_install_of_missing_packages_says_how_to_install_by_hand(qgis_app, tmp_path, monkeypatch):
    from iso_tile_stylizer.iso_qgis.util import deps
    from iso_tile_stylizer.ui.install_dialog import InstallPackagesDialog

    monkeypatch.setitem(deps.REQUIRED, "isotiles_not_there", ("isotiles-not-there", (1, 0)))
    (tmp_path / "empty").mkdir()
    dlg = InstallPackagesDialog(target=str(tmp_path / "t"), find_links=str(tmp_path / "empty"))
    dlg.install()
    assert wait_for(dlg) is False
    assert "pip failed" in dlg.result.text() and "python3 -m iso_qgis install_deps" in dlg.result.text()


def test_a_stand_in_algorithm_opens_the_install_dialog_from_the_toolbox(qgis_app):
    from qgis.core import QgsProcessingContext, QgsProcessingException, QgsProcessingFeedback

    from iso_tile_stylizer.processing.missing import stand_in
    from iso_tile_stylizer.ui.install_dialog import InstallPackagesDialog

    alg = stand_in("resolvetiles", "Resolve region to tiles", ImportError("No module named 'shapely'"))()
    assert (alg.name(), alg.displayName()) == ("resolvetiles", "Resolve region to tiles")
    dlg = alg.createCustomParametersWidget(None)
    assert isinstance(dlg, InstallPackagesDialog)
    dlg.setParameters({})  # as processing.execAlgorithmDialog calls it
    assert dlg.results() == {}
    try:  # with every package there, it still names the import that failed
        alg.processAlgorithm({}, QgsProcessingContext(), QgsProcessingFeedback())
    except QgsProcessingException as exc:
        assert "No module named 'shapely'" in str(exc) and "install_deps" in str(exc)
    else:
        raise AssertionError("a stand-in must refuse to run")

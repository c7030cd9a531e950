"""The version switch: the newer QGIS API when this QGIS has it, the older one before, the same result."""

from __future__ import annotations

import warnings

import pytest

pytestmark = pytest.mark.qgis


@pytest.mark.parametrize(
    ("kind", "numeric", "type_name"),
    [("int", True, "int"), ("int64", True, "qlonglong"), ("double", True, "double"), ("string", False, "QString")],
)
def test_make_field_gives_the_field_type_asked_for(kind, numeric, type_name):
    from qgis.PyQt.QtCore import QMetaType

    from iso_tile_stylizer.processing.compat import make_field

    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)  # no deprecated constructor on any version
        field = make_field("v", kind)
    assert field.name() == "v" and field.isNumeric() == numeric
    assert QMetaType.typeName(int(field.type())) == type_name


def test_make_field_refuses_an_unknown_kind():
    from iso_tile_stylizer.processing.compat import make_field

    with pytest.raises(KeyError):
        make_field("v", "blob")


def test_the_field_type_follows_the_qgis_version():
    from qgis.core import Qgis
    from qgis.PyQt.QtCore import QMetaType, QVariant

    from iso_tile_stylizer.processing.compat import FIELDS_TAKE_QMETATYPE, field_type

    assert FIELDS_TAKE_QMETATYPE is (Qgis.QGIS_VERSION_INT >= 33800)
    assert field_type("int") == (QMetaType.Type.Int if FIELDS_TAKE_QMETATYPE else QVariant.Int)


class _Alg:
    def __init__(self, with_strings: bool) -> None:
        self.calls: list[str] = []
        if with_strings:
            self.parameterAsStrings = lambda p, n, c: self._call("strings", p, n)

    def _call(self, which, parameters, name):
        self.calls.append(which)
        return parameters[name]

    def parameterAsFields(self, parameters, name, context):
        return self._call("fields", parameters, name)


@pytest.mark.parametrize(("with_strings", "used"), [(True, "strings"), (False, "fields")])
def test_parameter_as_strings_prefers_the_new_method(with_strings, used):
    from iso_tile_stylizer.processing.compat import parameter_as_strings

    alg = _Alg(with_strings)
    assert parameter_as_strings(alg, {"F": ["height"]}, "F", None) == ["height"]
    assert alg.calls == [used]


def test_qaction_is_the_qt_action_class():
    from qgis.PyQt.QtCore import QObject

    from iso_tile_stylizer.processing.compat import QAction

    assert QAction.__name__ == "QAction" and issubclass(QAction, QObject)

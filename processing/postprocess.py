"""Styling and grouping of loaded outputs (runs on the main thread, after the algorithm)."""

from __future__ import annotations

from typing import ClassVar

from qgis.core import (
    Qgis,
    QgsCategorizedSymbolRenderer,
    QgsColorRampShader,
    QgsFillSymbol,
    QgsPalLayerSettings,
    QgsProcessingContext,
    QgsProcessingLayerPostProcessorInterface,
    QgsRasterLayer,
    QgsRasterShader,
    QgsRendererCategory,
    QgsSingleBandPseudoColorRenderer,
    QgsTextBufferSettings,
    QgsTextFormat,
    QgsVectorLayer,
    QgsVectorLayerSimpleLabeling,
)
from qgis.PyQt.QtGui import QColor, QFont

#: deltaE stops of the seam heatmap ramp: invisible .. glaring
HEAT_STOPS = [
    (0.0, "#ffffb2", "0 ΔE"),
    (5.0, "#fecc5c", "5"),
    (10.0, "#fd8d3c", "10"),
    (20.0, "#e31a1c", "20"),
    (30.0, "#54006e", "≥30 ΔE"),
]
STATUS_COLORS = {"accepted": "#2ca25f", "uncertain": "#fd8d3c", "failed": "#de2d26", "": "#999999"}
#: the layer tree group that holds the plugin's regions and every run's outputs
PLUGIN_GROUP = "Iso Tile Stylizer"
#: a run's layers top to bottom: outlines, then the heatmap (transparent off the seams) over the mosaic;
#: the tiles VRT shows the same pixels as the mosaic, so it starts hidden
ORDER = ("footprints", "heatmap", "mosaic", "tiles")
HIDDEN = {"tiles"}
KIND_PROPERTY = "isotiles/kind"


def style_heatmap(layer: QgsRasterLayer) -> None:
    ramp = QgsColorRampShader(0.0, HEAT_STOPS[-1][0])
    ramp.setColorRampType(QgsColorRampShader.Type.Interpolated)
    items = [QgsColorRampShader.ColorRampItem(v, QColor(c), label) for v, c, label in HEAT_STOPS]
    items[0].color.setAlpha(0)  # a seam that does not show leaves the mosaic under it visible
    ramp.setColorRampItemList(items)
    shader = QgsRasterShader()
    shader.setRasterShaderFunction(ramp)
    renderer = QgsSingleBandPseudoColorRenderer(layer.dataProvider(), 1, shader)
    renderer.setClassificationMin(0.0)
    renderer.setClassificationMax(HEAT_STOPS[-1][0])
    layer.setRenderer(renderer)
    layer.renderer().setOpacity(0.8)


def style_footprints(layer: QgsVectorLayer) -> None:
    cats = []
    for status, color in STATUS_COLORS.items():
        sym = QgsFillSymbol.createSimple(
            {"color": "0,0,0,0", "outline_color": color, "outline_width": "0.5", "outline_width_unit": "MM"}
        )
        cats.append(QgsRendererCategory(status, sym, status or "other"))
    if layer.fields().indexOf("status") >= 0:
        layer.setRenderer(QgsCategorizedSymbolRenderer("status", cats))
    label = QgsPalLayerSettings()
    label.fieldName = 'concat("x", \',\', "y")'
    label.isExpression = True
    # Newer QGIS have Qgis.LabelPlacement, and there QgsPalLayerSettings.OverPoint is a point position.
    placement = getattr(Qgis, "LabelPlacement", None)
    label.placement = placement.OverPoint if placement is not None else QgsPalLayerSettings.Placement.OverPoint
    text = QgsTextFormat()  # readable over any mosaic: larger, bold, on a white halo
    font = QFont()
    font.setBold(True)
    text.setFont(font)
    text.setSize(11)
    text.setColor(QColor("#1a1a1a"))
    halo = QgsTextBufferSettings()
    halo.setEnabled(True)
    halo.setSize(1.2)
    halo.setColor(QColor(255, 255, 255, 230))
    text.setBuffer(halo)
    label.setFormat(text)
    layer.setLabeling(QgsVectorLayerSimpleLabeling(label))
    layer.setLabelsEnabled(True)


class LoadIntoGroup(QgsProcessingLayerPostProcessorInterface):
    """Style a loaded output and move it into the run's layer group."""

    # The context owns a post-processor once set; the Python side keeps the last few alive as well,
    # so that a wrapper is never collected while QGIS may still call into it.
    _alive: ClassVar[list[LoadIntoGroup]] = []

    def __init__(self, group: str, kind: str) -> None:
        super().__init__()
        self.group = group
        self.kind = kind

    @classmethod
    def create(cls, group: str, kind: str) -> LoadIntoGroup:
        proc = cls(group, kind)
        cls._alive = [*cls._alive[-63:], proc]
        return proc

    def postProcessLayer(self, layer, context: QgsProcessingContext, feedback) -> None:
        if self.kind == "heatmap" and isinstance(layer, QgsRasterLayer):
            style_heatmap(layer)
        elif self.kind == "footprints" and isinstance(layer, QgsVectorLayer):
            style_footprints(layer)
        elif isinstance(layer, QgsRasterLayer):
            # pixel art: no resampling blur at native zoom and closer
            layer.dataProvider().setZoomedInResamplingMethod(layer.dataProvider().ResamplingMethod.Nearest)
        project = context.project()
        if project is None:
            return
        root = project.layerTreeRoot()
        node = root.findLayer(layer.id())
        if node is None:
            return
        home = root.findGroup(PLUGIN_GROUP) or root.insertGroup(0, PLUGIN_GROUP)
        group = home.findGroup(self.group) or home.insertGroup(0, self.group)
        rank = ORDER.index(self.kind) if self.kind in ORDER else len(ORDER)
        before = [c for c in group.children() if _rank(c) <= rank]
        moved = node.clone()
        moved.setCustomProperty(KIND_PROPERTY, self.kind)
        moved.setItemVisibilityChecked(self.kind not in HIDDEN)
        group.insertChildNode(len(before), moved)
        node.parent().removeChildNode(node)


def _rank(node) -> int:
    kind = node.customProperty(KIND_PROPERTY, "")
    return ORDER.index(kind) if kind in ORDER else len(ORDER)


def load_output(context: QgsProcessingContext, path: str, name: str, output: str, group: str, kind: str = "") -> None:
    details = QgsProcessingContext.LayerDetails(name, context.project(), output)
    details.setPostProcessor(LoadIntoGroup.create(group, kind))
    context.addLayerToLoadOnCompletion(path, details)

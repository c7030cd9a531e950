/* Iso Tile Stylizer viewer: a flat pixel pyramid in Leaflet's CRS.Simple.
 *
 * window.ISO_VIEWER (viewer-config.js) describes the map; window.ISO_REPORT (report.js) holds each
 * tile's report entry. Zoom cfg.nativeZoom shows 1 image pixel per screen pixel; native pixel (u, v)
 * sits at L.latLng(-v / 2^N, u / 2^N). The URL's hash keeps the view: #layer=heatmap&zoom=3&u=100&v=200.
 */
(function () {
  "use strict";
  const cfg = window.ISO_VIEWER;
  const report = window.ISO_REPORT || {};
  const N = cfg.nativeZoom;
  const scale = Math.pow(2, N);
  const toLatLng = (u, v) => L.latLng(-v / scale, u / scale);
  const toPixel = (ll) => [ll.lng * scale, -ll.lat * scale];
  const bounds = L.latLngBounds(toLatLng(0, cfg.height), toLatLng(cfg.width, 0));
  document.title = cfg.name;

  // ---------------------------------------------------------------- tile layers
  const PMTilesLayer = L.GridLayer.extend({
    initialize(url, options) {
      this._archive = new pmtiles.PMTiles(url);
      L.GridLayer.prototype.initialize.call(this, options);
    },
    createTile(coords, done) {
      const img = document.createElement("img");
      img.alt = "";
      const abort = new AbortController();
      img._abort = abort;
      this._archive
        .getZxy(coords.z, coords.x, coords.y, abort.signal)
        .then((tile) => {
          if (!tile) {
            img.style.visibility = "hidden"; // no tile here: the map is empty there
            done(null, img);
            return;
          }
          const url = URL.createObjectURL(new Blob([tile.data], { type: "image/png" }));
          img.onload = () => { URL.revokeObjectURL(url); done(null, img); };
          img.onerror = () => {
            URL.revokeObjectURL(url);
            done(new Error(`tile ${coords.z}/${coords.x}/${coords.y} does not decode`), img);
          };
          img.src = url;
        })
        .catch((err) => {
          if (err.name === "AbortError") return;
          console.error(`tile ${coords.z}/${coords.x}/${coords.y}: ${err.message}`);
          done(err, img);
        });
      return img;
    },
    _removeTile(key) {
      const t = this._tiles[key];
      if (t && t.el._abort) t.el._abort.abort();
      L.GridLayer.prototype._removeTile.call(this, key);
    },
  });

  // A folder of tiles: only the tiles the folder has are asked for (no 404s where the map is empty).
  const FolderLayer = L.TileLayer.extend({
    createTile(coords, done) {
      if (this.options.have && !this.options.have.has(`${coords.z}/${coords.x}/${coords.y}`)) {
        const img = document.createElement("img");
        img.alt = "";
        img.style.visibility = "hidden";
        setTimeout(() => done(null, img), 0);
        return img;
      }
      return L.TileLayer.prototype.createTile.call(this, coords, done);
    },
  });

  const layerOptions = {
    tileSize: cfg.tileSize,
    minZoom: cfg.minZoom,
    maxZoom: N + 3,
    minNativeZoom: cfg.minZoom,
    maxNativeZoom: N,
    noWrap: true,
    bounds: bounds,
    attribution: cfg.attribution,
  };
  const layers = {};
  const titles = {};
  for (const spec of cfg.layers) {
    layers[spec.id] =
      cfg.format === "pmtiles"
        ? new PMTilesLayer(spec.url, layerOptions)
        : new FolderLayer(spec.url, Object.assign({ have: new Set(spec.have || []) }, layerOptions));
    titles[spec.title] = layers[spec.id];
    layers[spec.id].on("tileerror", (e) => console.error(`${spec.id}: tile ${e.coords.z}/${e.coords.x}/${e.coords.y} failed`));
  }

  // ---------------------------------------------------------------- the map
  const map = L.map("map", {
    crs: L.CRS.Simple,
    minZoom: cfg.minZoom,
    maxZoom: N + 3,
    maxBounds: bounds.pad(0.5),
    zoomSnap: 1,
  });
  map.attributionControl.setPrefix('<a href="https://leafletjs.com">Leaflet</a>');
  let current = null;
  function show(id) {
    if (!layers[id] || current === id) return;
    if (current) map.removeLayer(layers[current]);
    map.addLayer(layers[id]);
  }
  map.on("baselayerchange layeradd", (e) => {
    for (const [id, layer] of Object.entries(layers)) if (layer === e.layer) current = id;
    legend.getContainer().classList.toggle("shown", current === "heatmap");
    saveHash();
  });
  if (cfg.layers.length > 1) L.control.layers(titles, null, { collapsed: false }).addTo(map);

  // ---------------------------------------------------------------- legend, cursor
  const legend = L.control({ position: "bottomleft" });
  legend.onAdd = () => {
    const div = L.DomUtil.create("div", "iso-box iso-legend");
    div.innerHTML = `Seam error (${cfg.heatmap.unit})<div class="ramp"></div>` +
      `<div class="ends"><span>0</span><span>${cfg.heatmap.vmax}+</span></div>`;
    return div;
  };
  legend.addTo(map);
  const cursor = L.control({ position: "bottomleft" });
  cursor.onAdd = () => L.DomUtil.create("div", "iso-box iso-cursor");
  cursor.addTo(map);
  cursor.getContainer().textContent = "tile –";

  function roundHalfEven(x) { // Python's round(): the pyramid's tile cores were cut with it
    const r = Math.round(x);
    return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
  }
  function owner(px, step) {
    let k = Math.floor(px / step);
    while (roundHalfEven(k * step) > px) k--;
    while (roundHalfEven((k + 1) * step) <= px) k++;
    return k;
  }
  const g = cfg.grid;
  function tileAt(u, v) {
    if (u < 0 || v < 0 || u >= cfg.width || v >= cfg.height) return null;
    const x = owner(g.originPx[0] + u, g.step);
    const r = owner(g.originPx[1] + v, g.step);
    return { x: x, y: g.yDown ? r : g.rows - 1 - r, row: r };
  }
  function coreBounds(t) {
    const c0 = roundHalfEven(t.x * g.step) - g.originPx[0], c1 = roundHalfEven((t.x + 1) * g.step) - g.originPx[0];
    const r0 = roundHalfEven(t.row * g.step) - g.originPx[1], r1 = roundHalfEven((t.row + 1) * g.step) - g.originPx[1];
    return L.latLngBounds(toLatLng(c0, r1), toLatLng(c1, r0));
  }
  map.on("mousemove", (e) => {
    const [u, v] = toPixel(e.latlng).map(Math.floor);
    const t = tileAt(u, v);
    cursor.getContainer().textContent = t ? `tile ${t.x}, ${t.y} · pixel ${u}, ${v}` : "tile –";
  });

  // ---------------------------------------------------------------- a tile's report entry
  const panel = document.getElementById("entry");
  let outline = null;
  document.getElementById("entry-close").onclick = () => closeEntry();
  function closeEntry() {
    panel.hidden = true;
    if (outline) map.removeLayer(outline);
    outline = null;
  }
  function cell(tr, text, tag) {
    const td = document.createElement(tag || "td");
    td.textContent = text === undefined || text === null ? "" : String(text);
    tr.appendChild(td);
  }
  function openEntry(t) {
    const rec = report[`${t.x}_${t.y}`];
    document.getElementById("entry-title").textContent = `Tile ${t.x}, ${t.y}`;
    const body = document.getElementById("entry-body");
    body.textContent = "";
    if (!rec) {
      body.textContent = "Not in the run's report (no report was published, or the tile was not generated).";
    } else {
      const facts = document.createElement("table");
      for (const k of ["status", "chosen", "score", "wall_s", "cost_usd", "asked", "stopped_early", "chosen_by"]) {
        if (rec[k] === undefined) continue;
        const tr = facts.insertRow();
        cell(tr, k, "th");
        cell(tr, typeof rec[k] === "object" ? JSON.stringify(rec[k]) : rec[k]);
      }
      body.appendChild(facts);
      const cands = document.createElement("table");
      const head = cands.insertRow();
      for (const h of ["#", "model", "seed", "score", "error"]) cell(head, h, "th");
      for (const c of rec.candidates || []) {
        const tr = cands.insertRow();
        if (c.index === rec.chosen) tr.className = "chosen";
        cell(tr, c.index);
        cell(tr, c.model);
        cell(tr, c.seed);
        cell(tr, c.score && c.score.total !== undefined ? c.score.total : "");
        cell(tr, c.error || "");
      }
      const h3 = document.createElement("h3");
      h3.textContent = "Candidates";
      body.appendChild(h3);
      body.appendChild(cands);
      const raw = document.createElement("details");
      raw.innerHTML = "<summary>Report entry (JSON)</summary>";
      const pre = document.createElement("pre");
      pre.textContent = JSON.stringify(rec, null, 1);
      raw.appendChild(pre);
      body.appendChild(raw);
    }
    if (cfg.report) {
      const a = document.createElement("a");
      a.href = cfg.report;
      a.target = "_blank";
      a.textContent = "The whole report";
      body.appendChild(a);
    }
    panel.hidden = false;
    if (outline) map.removeLayer(outline);
    outline = L.rectangle(coreBounds(t), { color: "#00e5ff", weight: 2, fill: false, interactive: false }).addTo(map);
  }
  map.on("click", (e) => {
    const [u, v] = toPixel(e.latlng).map(Math.floor);
    const t = tileAt(u, v);
    if (t) openEntry(t);
    else closeEntry();
  });

  // ---------------------------------------------------------------- view and hash
  map.on("zoomend", () => map.getContainer().classList.toggle("over-native", map.getZoom() > N));
  function saveHash() {
    if (!current || !map._loaded) return;
    const [u, v] = toPixel(map.getCenter()).map(Math.round);
    history.replaceState(null, "", `#layer=${current}&zoom=${map.getZoom()}&u=${u}&v=${v}`);
  }
  map.on("moveend", saveHash);
  const hash = new URLSearchParams(location.hash.slice(1));
  if (hash.has("zoom") && hash.has("u") && hash.has("v")) {
    map.setView(toLatLng(+hash.get("u"), +hash.get("v")), +hash.get("zoom"));
  } else {
    map.fitBounds(bounds);
  }
  show(layers[hash.get("layer")] ? hash.get("layer") : cfg.layers[0].id);

  // for scripts and tests: the map, its layers, and whether the shown layer is still loading tiles
  window.isoViewer = {
    map, layers, show, tileAt, openEntry, toLatLng, toPixel,
    current: () => current,
    loading: () => (current ? layers[current].isLoading() : true),
  };
})();

// SIAE Atlas mini-site: what every page shares. Plain script, no build step, no CDN.
"use strict";

const SIAE = (() => {
  const KIND_LABELS = {
    ACI: "Atelier et chantier d'insertion", AI: "Association intermédiaire",
    EI: "Entreprise d'insertion", ETTI: "Entreprise de travail temporaire d'insertion",
    EITI: "Entreprise d'insertion par le travail indépendant",
    GEIQ: "Groupement d'employeurs pour l'insertion et la qualification",
    EA: "Entreprise adaptée", EATT: "Entreprise adaptée de travail temporaire",
  };
  // Colours told apart by most colour-blind readers (Okabe–Ito palette).
  const KIND_COLORS = {
    ACI: "#009E73", AI: "#0072B2", EI: "#E69F00", ETTI: "#CC79A7", EITI: "#D55E00",
    GEIQ: "#56B4E9", EA: "#F0E442", EATT: "#000000",
  };
  const root = (document.querySelector('link[href$="static/site.css"]').getAttribute("href")
    || "static/site.css").replace(/static\/site\.css$/, "");

  // The same folding as transforms/site.py: accents, ligatures, case, hyphens, st/ste.
  const fold = (s) => (s || "").normalize("NFD").replace(/[\u0300-\u036f]/g, "").toLowerCase()
    .replace(/[œæß]/g, (c) => ({ "œ": "oe", "æ": "ae", "ß": "ss" })[c])
    .replace(/[^0-9a-z]+/g, " ").replace(/\bst\b/g, "saint").replace(/\bste\b/g, "sainte")
    .replace(/\s+/g, " ").trim();
  const esc = (s) => String(s ?? "").replace(/[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);

  async function getJSON(url, fallback) {
    try {
      const r = await fetch(root + url);
      return r.ok ? await r.json() : fallback;
    } catch (e) {
      return fallback;
    }
  }

  function distanceKm(a, b) {
    const rad = Math.PI / 180;
    const dLat = (b[0] - a[0]) * rad, dLon = (b[1] - a[1]) * rad;
    const h = Math.sin(dLat / 2) ** 2
      + Math.cos(a[0] * rad) * Math.cos(b[0] * rad) * Math.sin(dLon / 2) ** 2;
    return 2 * 6371.0088 * Math.asin(Math.sqrt(h));
  }

  // A Leaflet map in French, usable with the keyboard, with the départements' outlines as
  // its background when no tile server is configured.
  function makeMap(id, config) {
    const map = L.map(id, { keyboard: true, maxZoom: 18, zoomControl: false,
      attributionControl: true });
    L.control.zoom({ zoomInTitle: "Zoom avant", zoomOutTitle: "Zoom arrière" }).addTo(map);
    map.attributionControl.setPrefix(
      '<a href="https://leafletjs.com" title="Bibliothèque de cartographie">Leaflet</a>');
    if (config && config.tiles) {
      L.tileLayer(config.tiles, { attribution: config.attribution || "", maxZoom: 19 }).addTo(map);
    } else {
      getJSON("data/outline.geojson", null).then((outline) => {
        if (!outline) return;
        const layer = L.geoJSON(outline, { interactive: false,
          style: { color: "#7b8494", weight: 1, fillColor: "#fbfaf7", fillOpacity: 1 } }).addTo(map);
        layer.bringToBack();
        document.getElementById(id).dataset.outline = String(outline.features.length);
      });
    }
    // Escape closes an open popup and gives the focus back to the map.
    document.addEventListener("keydown", (e) => {
      if (e.key === "Escape" && map._popup && map.hasLayer(map._popup)) {
        map.closePopup();
        document.getElementById(id).focus();
      }
    });
    return map;
  }

  // Points drawn on one canvas in a single pass: thousands at once, no interaction (what a
  // big map shows while its clusters are being built).
  let DotLayerClass = null;
  const dotLayer = (points) => {
    DotLayerClass = DotLayerClass || L.Layer.extend(dotMethods);  // Leaflet loads after us
    return new DotLayerClass(points);
  };
  const dotMethods = ({
    initialize(points) { this._points = points; },  // [lat, lon, colour]
    onAdd(map) {
      this._canvas = L.DomUtil.create("canvas", "leaflet-zoom-hide dots");
      this._canvas.setAttribute("aria-hidden", "true");
      map.getPanes().overlayPane.appendChild(this._canvas);
      map.on("moveend zoomend resize", this._draw, this);
      this._draw();
    },
    onRemove(map) {
      L.DomUtil.remove(this._canvas);
      map.off("moveend zoomend resize", this._draw, this);
    },
    _draw() {
      const map = this._map, size = map.getSize(), c = this._canvas;
      c.width = size.x;
      c.height = size.y;
      L.DomUtil.setPosition(c, map.containerPointToLayerPoint([0, 0]));
      const ctx = c.getContext("2d");
      ctx.strokeStyle = "#fff";
      // Web Mercator by hand: Leaflet's per-point projection costs ten times more
      const scale = 256 * 2 ** map.getZoom();
      const origin = map.getPixelOrigin().add(map._getMapPanePos ? map._getMapPanePos() : [0, 0]);
      const offset = map.containerPointToLayerPoint([0, 0]).add(map.getPixelOrigin());
      const rad = Math.PI / 180;
      for (const [lat, lon, color] of this._points) {
        const x = (lon + 180) / 360 * scale - offset.x;
        const s = Math.sin(lat * rad);
        const y = (0.5 - Math.log((1 + s) / (1 - s)) / (4 * Math.PI)) * scale - offset.y;
        if (x < -5 || y < -5 || x > size.x + 5 || y > size.y + 5) continue;
        ctx.beginPath();
        ctx.arc(x, y, 4, 0, 2 * Math.PI);
        ctx.fillStyle = color;
        ctx.fill();
        ctx.stroke();
      }
      this._origin = origin;
    },
  });

  const icons = {};  // one icon per colour, shared by the markers
  function marker(lat, lon, kinds, title) {
    const color = KIND_COLORS[(kinds || [])[0]] || "#555";
    icons[color] = icons[color] || L.divIcon({ className: "", iconSize: [16, 16],
      html: `<span class="dot" style="background:${color}"></span>` });
    return L.marker([lat, lon], { title, alt: title, keyboard: true, riseOnHover: true,
      icon: icons[color] });
  }

  // Enter or Space on a cluster zooms on it, as a click does.
  function keyboardClusters(group) {
    group.on("clusterkeypress", (e) => e.layer.zoomToBounds({ padding: [20, 20] }));
    const container = group._map ? group._map.getContainer() : null;
    (container || document).addEventListener("keydown", (e) => {
      if ((e.key !== "Enter" && e.key !== " ") || !e.target.classList
          || !e.target.classList.contains("marker-cluster")) return;
      e.preventDefault();
      group._featureGroup.eachLayer((layer) => {
        if (layer._icon === e.target && layer.zoomToBounds) layer.zoomToBounds({ padding: [20, 20] });
      });
    });
  }

  // The rallye's selection, kept in this browser.
  const rallye = {
    ids() { try { return JSON.parse(localStorage.getItem("siae-rallye") || "[]"); } catch (e) { return []; } },
    save(ids) { localStorage.setItem("siae-rallye", JSON.stringify(ids)); rallye.show(); },
    has(id) { return rallye.ids().includes(id); },
    toggle(id) {
      const ids = rallye.ids();
      rallye.save(ids.includes(id) ? ids.filter((x) => x !== id) : [...ids, id]);
    },
    show() {
      const n = rallye.ids().length;
      document.querySelectorAll("[data-rallye-count]").forEach((el) => { el.textContent = n ? String(n) : ""; });
      document.querySelectorAll(".rallye-toggle").forEach((b) => {
        const on = rallye.has(b.dataset.id);
        b.setAttribute("aria-pressed", String(on));
        b.textContent = on ? "Retirer du rallye" : "Ajouter au rallye";
      });
    },
  };
  document.addEventListener("click", (e) => {
    const b = e.target.closest && e.target.closest(".rallye-toggle");
    if (b) { rallye.toggle(b.dataset.id); }
  });
  document.addEventListener("DOMContentLoaded", () => rallye.show());

  return { KIND_LABELS, KIND_COLORS, root, fold, esc, getJSON, distanceKm, makeMap, marker,
    keyboardClusters, rallye, dotLayer };
})();

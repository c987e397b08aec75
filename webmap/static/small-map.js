// A structure page's small map: its point (or nothing when it has none).
"use strict";

(() => {
  const el = document.getElementById("small-map");
  if (!el || !el.dataset.lat) { if (el) el.hidden = true; return; }
  const point = [Number(el.dataset.lat), Number(el.dataset.lon)];
  SIAE.getJSON("data/config.json", {}).then((config) => {
    const map = SIAE.makeMap("small-map", config);
    map.setView(point, 12);
    L.marker(point, { keyboard: false, title: document.querySelector("h1").textContent }).addTo(map);
  });
})();

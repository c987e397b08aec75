// A région's or département's map: its structures, each linked to its page.
"use strict";

(() => {
  const points = JSON.parse(document.getElementById("area-points").textContent);
  SIAE.getJSON("data/config.json", {}).then((config) => {
    const map = SIAE.makeMap("area-map", config);
    const group = L.markerClusterGroup({ maxClusterRadius: 40 });
    map.addLayer(group);
    SIAE.keyboardClusters(group);
    group.addLayers(points.map(([id, nom, types, lat, lon]) => SIAE.marker(lat, lon, types, nom)
      .bindPopup(`<a href="${SIAE.root}structures/${encodeURIComponent(id)}.html">${SIAE.esc(nom)}</a>`
        + `<br>${SIAE.esc(types.join(", "))}`)));
    if (points.length) {
      map.fitBounds(L.latLngBounds(points.map((p) => [p[3], p[4]])), { maxZoom: 12, padding: [20, 20] });
    } else {
      map.setView([46.6, 2.4], 5);
    }
    document.body.dataset.ready = "true";
  });
})();

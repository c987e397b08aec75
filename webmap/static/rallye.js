// Rallye IAE: the chosen structures in a short visiting order (nearest neighbour, then 2-opt
// on straight-line distances), printable, with an address to share.
"use strict";

(() => {
  const { esc, getJSON, distanceKm, root } = SIAE;
  const $ = (id) => document.getElementById(id);

  function length(route, d) {
    let total = 0;
    for (let i = 1; i < route.length; i++) total += d[route[i - 1]][route[i]];
    return total;
  }

  // From the first chosen place, always the nearest not yet visited; then 2-opt: reverse a
  // stretch whenever that shortens the route, until nothing does.
  function order(points) {
    const n = points.length;
    const d = points.map((a) => points.map((b) => distanceKm(a, b)));
    const route = [0];
    const left = new Set([...Array(n).keys()].slice(1));
    while (left.size) {
      const last = route[route.length - 1];
      let best = null;
      for (const j of left) if (best === null || d[last][j] < d[last][best]) best = j;
      route.push(best);
      left.delete(best);
    }
    let improved = true;
    while (improved) {
      improved = false;
      for (let i = 1; i < n - 1; i++) {
        for (let k = i + 1; k < n; k++) {
          const before = d[route[i - 1]][route[i]] + (k + 1 < n ? d[route[k]][route[k + 1]] : 0);
          const after = d[route[i - 1]][route[k]] + (k + 1 < n ? d[route[i]][route[k + 1]] : 0);
          if (after + 1e-9 < before) {
            route.splice(i, k - i + 1, ...route.slice(i, k + 1).reverse());
            improved = true;
          }
        }
      }
    }
    return { route, d };
  }

  async function main() {
    const params = new URLSearchParams(location.search);
    const ids = params.get("ids") ? params.get("ids").split(",").filter(Boolean) : SIAE.rallye.ids();
    if (params.get("ids")) SIAE.rallye.save(ids);
    const index = await getJSON("data/index.json", { fields: [], rows: [] });
    const F = {};
    index.fields.forEach((name, i) => { F[name] = i; });
    const byId = new Map(index.rows.map((r) => [r[F.id], r]));
    const chosen = ids.map((id) => byId.get(id)).filter(Boolean);
    const map = SIAE.makeMap("rallye-map", await getJSON("data/config.json", {}));
    if (chosen.length === 0) {
      $("rallye-summary").textContent = "Aucune structure choisie : ajoutez-en depuis la carte.";
      map.setView([46.6, 2.4], 5);
      document.body.dataset.ready = "true";
      return;
    }
    const points = chosen.map((r) => [r[F.lat], r[F.lon]]);
    const { route, d } = order(points);
    const total = length(route, d);
    $("rallye-summary").textContent = `${chosen.length} étape${chosen.length > 1 ? "s" : ""}, `
      + `${total.toFixed(1).replace(".", ",")} km à vol d'oiseau.`;
    $("rallye-list").innerHTML = route.map((i, step) => {
      const r = chosen[i];
      const leg = step ? `${d[route[step - 1]][i].toFixed(1).replace(".", ",")} km depuis l'étape précédente` : "départ";
      return `<li class="card" data-id="${esc(r[F.id])}"><a href="${root}structures/${encodeURIComponent(r[F.id])}.html">${esc(r[F.nom])}</a>`
        + `<span>${esc(r[F.types].join(", "))} · ${esc(r[F.cp] || "")} ${esc(r[F.commune] || "")}</span>`
        + `<span class="distance">${leg}</span></li>`;
    }).join("");
    const line = route.map((i) => points[i]);
    L.polyline(line, { color: "#000091", weight: 3 }).addTo(map);
    route.forEach((i, step) => SIAE.marker(points[i][0], points[i][1], chosen[i][F.types],
      `${step + 1}. ${chosen[i][F.nom]}`).addTo(map));
    map.fitBounds(L.latLngBounds(line), { padding: [30, 30], maxZoom: 13 });
    const share = new URL(location.href);
    share.search = `?ids=${route.map((i) => chosen[i][F.id]).join(",")}`;
    $("rallye-url").value = share.toString();
    history.replaceState(null, "", share.search);
    document.body.dataset.total = total.toFixed(3);
    document.body.dataset.ready = "true";
  }

  $("rallye-print").addEventListener("click", () => window.print());
  $("rallye-clear").addEventListener("click", () => {
    SIAE.rallye.save([]);
    location.href = location.pathname;
  });
  main();
})();

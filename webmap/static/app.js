// The map page: every structure on a map and in a list, filters, search, "près de…".
// Reads data/index.json (one compact row per structure), the details of a région when a
// popup or a card needs them, data/communes.json when "près de…" is used.
"use strict";

(() => {
  const { esc, fold, getJSON, distanceKm, KIND_LABELS, root } = SIAE;
  const $ = (id) => document.getElementById(id);
  const PAGE = 50;
  const state = { rows: [], markers: new Map(), details: new Map(), shown: [], limit: PAGE,
    near: null, communes: null, deps: {}, on: new Set(), byId: new Map() };
  let F = {};
  // when the first points and the clusters were drawn (ms since the page was asked for)
  const times = window.siaeTimes = {};

  const plural = (n, one, many) => `${n} ${n > 1 ? many : one}`;
  const url = (id) => `${root}structures/${encodeURIComponent(id)}.html`;

  function regionDetails(reg) {
    if (!state.details.has(reg)) state.details.set(reg, getJSON(`data/regions/${reg}.json`, {}));
    return state.details.get(reg);
  }

  function popupHtml(r, d) {
    const kinds = r[F.types].map((k) => `<abbr title="${esc(KIND_LABELS[k] || k)}">${esc(k)}</abbr>`).join(", ");
    const address = [d.adresse, d.complement, [r[F.cp], r[F.commune]].filter(Boolean).join(" ")]
      .filter(Boolean).map(esc).join("<br>");
    let html = `<div class="popup"><h3><a href="${url(r[F.id])}">${esc(r[F.nom])}</a></h3>`
      + `<p>${kinds}</p><p>${address}</p>`;
    if (r[F.new]) html += `<p class="new">Nouvelle dans cette publication.</p>`;
    if (r[F.recrute]) html += `<p><span class="badge recrute">Recrute</span> ${esc((d.postes || []).join(" ; "))}</p>`;
    if (d.telephone) html += `<p>Tél. <a href="tel:${esc(d.tel)}">${esc(d.telephone)}</a></p>`;
    if (d.courriel) html += `<p><a href="mailto:${esc(d.courriel)}">${esc(d.courriel)}</a></p>`;
    if (d.site_web) html += `<p><a href="${esc(d.site_web)}" rel="noopener nofollow">${esc(d.site_web)}</a></p>`;
    if (r[F.approx]) html += `<p class="approx">Position approximative : centre de la commune.</p>`;
    return html + `<p><a href="${url(r[F.id])}">Fiche complète</a></p></div>`;
  }

  function selectedKinds() {
    return new Set([...document.querySelectorAll("#kinds input:checked")].map((i) => i.value));
  }

  function filters() {
    return { kinds: selectedKinds(), region: $("region").value, dep: $("departement").value,
      recrute: $("recrute").checked, q: fold($("search").value) };
  }

  function matches(r, f) {
    if (!r[F.types].some((k) => f.kinds.has(k))) return false;
    if (f.region && r[F.reg] !== f.region) return false;
    if (f.dep && r[F.dep] !== f.dep) return false;
    if (f.recrute && !r[F.recrute]) return false;
    if (f.q) {
      // every word typed is in the name, the commune or the postcode
      for (const word of f.q.split(" ")) if (!key(r).includes(word)) return false;
    }
    if (state.near && distanceKm(state.near.center, [r[F.lat], r[F.lon]]) > state.near.radius) return false;
    return true;
  }

  // the folded text a search looks in, made the first time it is needed
  function key(r) {
    if (r.key === undefined) r.key = fold([r[F.nom], r[F.commune], r[F.cp]].join(" "));
    return r.key;
  }

  function card(r) {
    const distance = state.near
      ? `<span class="distance">${distanceKm(state.near.center, [r[F.lat], r[F.lon]]).toFixed(1).replace(".", ",")} km</span>` : "";
    const badges = (r[F.recrute] ? ' <span class="badge recrute">Recrute</span>' : "")
      + (r[F.new] ? ' <span class="new">nouvelle</span>' : "");
    return `<li class="card"><a href="${url(r[F.id])}">${esc(r[F.nom])}</a>${badges}`
      + `<span>${esc(r[F.types].join(", "))} · ${esc(r[F.cp] || "")} ${esc(r[F.commune] || "")}</span>${distance}`
      + `<button type="button" class="rallye-toggle" data-id="${esc(r[F.id])}" aria-pressed="false">Ajouter au rallye</button></li>`;
  }

  function renderList() {
    const rows = state.shown.slice(0, state.limit);
    $("list").innerHTML = rows.map(card).join("");
    $("list-more").hidden = state.shown.length <= state.limit;
    SIAE.rallye.show();
  }

  function apply(fit) {
    const f = filters();
    // the index comes sorted by name: only "près de…" orders by distance
    state.shown = state.rows.filter((r) => matches(r, f));
    if (state.near) {
      const c = state.near.center;
      const dist = new Map(state.shown.map((r) => [r, distanceKm(c, [r[F.lat], r[F.lon]])]));
      state.shown.sort((a, b) => dist.get(a) - dist.get(b));
    }
    // only the markers that change: a filter change costs what it changes
    const wanted = new Set(state.shown.map((r) => r[F.id]));
    const leaving = [], coming = [];
    for (const [id, m] of state.markers) {
      const on = state.on.has(id);
      if (on && !wanted.has(id)) leaving.push(m);
      else if (!on && wanted.has(id)) coming.push(m);
    }
    if (leaving.length) state.cluster.removeLayers(leaving);
    if (coming.length) state.cluster.addLayers(coming);
    if (state.previewed) dropPreview();  // a filter changed: the clusters say it right
    state.previewed = true;
    state.on = wanted;
    const n = state.shown.length;
    $("counter").textContent = plural(n, "structure affichée", "structures affichées");
    $("listing-title").textContent = state.near
      ? `${plural(n, "structure", "structures")} à moins de ${state.near.radius} km de ${state.near.label}`
      : plural(n, "structure", "structures");
    state.limit = PAGE;
    renderList();
    saveUrl(f);
    if (fit) fitView(f);
    document.body.dataset.shown = String(n);
  }

  function dropPreview() {
    if (state.preview && state.map.hasLayer(state.preview)) state.map.removeLayer(state.preview);
    times.clustered = times.clustered || performance.now();
    times.firstPoints = times.firstPoints || times.clustered;
    document.body.dataset.clustered = "true";
  }

  function fitView(f) {
    if (state.near) {
      state.map.fitBounds(L.latLng(state.near.center).toBounds(state.near.radius * 2000));
    } else if ((f.region || f.dep || f.q) && state.shown.length) {
      state.map.fitBounds(L.latLngBounds(state.shown.map((r) => [r[F.lat], r[F.lon]])),
        { maxZoom: 13, padding: [20, 20] });
    } else {
      const m = state.config.mainland;
      state.map.fitBounds([[m.south, m.west], [m.north, m.east]]);
    }
  }

  function saveUrl(f) {
    const params = new URLSearchParams();
    if (f.region) params.set("region", f.region);
    if (f.dep) params.set("departement", f.dep);
    if ($("search").value.trim()) params.set("q", $("search").value.trim());
    const all = [...document.querySelectorAll("#kinds input")];
    if (f.kinds.size !== all.length) params.set("types", [...f.kinds].join(","));
    if (f.recrute) params.set("recrute", "1");
    if (state.near && state.near.code) {
      params.set("pres", state.near.code);
      params.set("rayon", String(state.near.radius));
    }
    history.replaceState(null, "", params.toString() ? `?${params}` : location.pathname);
  }

  function fillDepartements() {
    const region = $("region").value;
    const current = $("departement").value;
    const deps = Object.keys(state.deps).filter((d) => !region || state.deps[d].region === region).sort();
    $("departement").innerHTML = '<option value="">Tous les départements</option>' + deps.map((d) =>
      `<option value="${esc(d)}">${esc(d)} ${esc(state.deps[d].nom)} (${state.deps[d].n})</option>`).join("");
    if (deps.includes(current)) $("departement").value = current;
  }

  async function communes() {
    if (!state.communes) state.communes = await getJSON("data/communes.json", []);
    return state.communes;
  }

  async function suggest() {
    const typed = fold($("near-commune").value);
    if (typed.length < 2) return;
    const list = await communes();
    const found = list.filter((c) => fold(c[0]).startsWith(typed) || (c[2] || "").startsWith(typed))
      .slice(0, 12);
    $("near-options").innerHTML = found.map((c) =>
      `<option value="${esc(c[0])} (${esc(c[2] || c[3])})"></option>`).join("");
  }

  async function chooseCommune() {
    const value = $("near-commune").value;
    const list = await communes();
    const m = value.match(/^(.*) \(([^)]*)\)$/);
    const wanted = fold(m ? m[1] : value);
    const c = list.find((x) => fold(x[0]) === wanted && (!m || x[2] === m[2] || x[3] === m[2]));
    if (!c) {
      $("near-status").textContent = value ? "Commune introuvable : choisissez-la dans la liste." : "";
      return;
    }
    setNear([c[4], c[5]], `${c[0]} (${c[2] || c[3]})`, c[1]);
  }

  function setNear(center, label, code) {
    state.near = { center, label, code, radius: Number($("near-radius").value) };
    $("near-status").textContent = `Autour de ${label}, par distance.`;
    apply(true);
  }

  async function nearCode(code) {
    const c = (await communes()).find((x) => x[1] === code);
    if (c) {
      $("near-commune").value = `${c[0]} (${c[2] || c[3]})`;
      setNear([c[4], c[5]], `${c[0]} (${c[2] || c[3]})`, c[1]);
    }
  }

  function setView(view) {
    document.querySelector(".home").dataset.view = view;
    $("show-map").setAttribute("aria-pressed", String(view === "map"));
    $("show-list").setAttribute("aria-pressed", String(view === "list"));
    if (view === "map") state.map.invalidateSize();
  }

  async function main() {
    const [index, areas, config] = await Promise.all([
      getJSON("data/index.json", null), getJSON("data/areas.json", { regions: {}, departements: {} }),
      getJSON("data/config.json", {})]);
    if (!index) {
      $("freshness").textContent = "aucune donnée publiée.";
      return;
    }
    index.fields.forEach((name, i) => { F[name] = i; });
    state.rows = index.rows;
    state.config = config;
    const created = index.created ? new Date(index.created) : null;
    $("freshness").textContent = created
      ? `données du ${created.toLocaleDateString("fr-FR", { day: "numeric", month: "long", year: "numeric" })}.`
      : "date des données inconnue.";
    for (const r of state.rows) {
      const d = r[F.dep];
      if (!d) continue;
      const info = areas.departements[d] || { nom: "", region: r[F.reg] };
      state.deps[d] = state.deps[d] || { nom: info.nom, region: info.region || r[F.reg], n: 0 };
      state.deps[d].n += 1;
    }

    state.map = SIAE.makeMap("map", config);
    // clusters computed for the zooms where they help only (France fits at 5; from 14 on,
    // points are apart): the cost of clustering grows with the zoom levels
    state.map.setMinZoom(5);
    state.cluster = L.markerClusterGroup({ chunkedLoading: true, chunkDelay: 0,
      chunkInterval: 250, maxClusterRadius: 45, disableClusteringAtZoom: 14,
      chunkProgress: (done, total) => { if (total && done === total) dropPreview(); } });
    state.map.addLayer(state.cluster);
    SIAE.keyboardClusters(state.cluster);
    // one popup for the whole map, filled when a marker is clicked (20,000 popups bound in
    // advance would cost seconds)
    const popup = L.popup({ maxWidth: 320 });
    state.cluster.on("click", async (e) => {
      const r = state.byId.get(e.layer.options.id);
      if (!r) return;
      popup.setLatLng(e.layer.getLatLng()).setContent("Chargement…").openOn(state.map);
      popup.setContent(popupHtml(r, (await regionDetails(r[F.reg]))[r[F.id]] || {}));
    });
    // Clustering 20,000 markers takes a second or two: meanwhile every point is drawn at
    // once on a canvas, and the clusters replace it as soon as they are ready.
    if (state.rows.length > 2000) {
      const m = config.mainland;
      state.map.fitBounds([[m.south, m.west], [m.north, m.east]]);
      state.preview = SIAE.dotLayer(state.rows.map((r) =>
        [r[F.lat], r[F.lon], SIAE.KIND_COLORS[r[F.types][0]] || "#555"])).addTo(state.map);
      times.firstPoints = times.firstPoints || performance.now();
      await new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 0)));
    }
    for (const r of state.rows) {
      const m = SIAE.marker(r[F.lat], r[F.lon], r[F.types], r[F.nom]);
      m.options.id = r[F.id];
      state.markers.set(r[F.id], m);
      state.byId.set(r[F.id], r);
    }

    const params = new URLSearchParams(location.search);
    if (params.get("types")) {
      const wanted = new Set(params.get("types").split(","));
      document.querySelectorAll("#kinds input").forEach((i) => { i.checked = wanted.has(i.value); });
    }
    let region = params.get("region") || "";
    const dep = params.get("departement") || "";
    if (dep && !region && state.deps[dep]) region = state.deps[dep].region;
    $("region").value = region;
    fillDepartements();
    $("departement").value = dep;
    $("search").value = params.get("q") || "";
    $("recrute").checked = params.get("recrute") === "1";
    if (params.get("rayon")) $("near-radius").value = params.get("rayon");

    $("kinds").addEventListener("change", () => apply(false));
    $("recrute").addEventListener("change", () => apply(false));
    $("region").addEventListener("change", () => { fillDepartements(); apply(true); });
    $("departement").addEventListener("change", () => apply(true));
    $("search").addEventListener("input", () => apply(false));
    $("near-commune").addEventListener("focus", communes, { once: true });
    $("near-commune").addEventListener("input", suggest);
    $("near-commune").addEventListener("change", chooseCommune);
    $("near-radius").addEventListener("change", () => {
      if (state.near) { state.near.radius = Number($("near-radius").value); apply(true); }
    });
    $("near-me").addEventListener("click", () => {
      if (!navigator.geolocation) { $("near-status").textContent = "Position non disponible."; return; }
      navigator.geolocation.getCurrentPosition(
        (p) => setNear([p.coords.latitude, p.coords.longitude], "votre position", null),
        () => { $("near-status").textContent = "Position refusée ou indisponible."; });
    });
    $("near-clear").addEventListener("click", () => {
      state.near = null; $("near-commune").value = ""; $("near-status").textContent = ""; apply(true);
    });
    $("overseas").addEventListener("change", () => {
      const code = $("overseas").value;
      if (!code) { fitView(filters()); return; }
      const pts = state.rows.filter((r) => r[F.dep] === code).map((r) => [r[F.lat], r[F.lon]]);
      if (pts.length) state.map.fitBounds(L.latLngBounds(pts), { maxZoom: 11, padding: [30, 30] });
    });
    $("list-more").addEventListener("click", () => { state.limit += PAGE; renderList(); });
    $("show-map").addEventListener("click", () => setView("map"));
    $("show-list").addEventListener("click", () => setView("list"));
    setView("map");
    // on a phone the filters fold away: the map comes first
    if (window.matchMedia("(max-width: 800px)").matches) $("more-filters").open = false;

    if (params.get("pres")) await nearCode(params.get("pres"));
    else apply(true);
    document.body.dataset.ready = "true";
  }

  main();
})();

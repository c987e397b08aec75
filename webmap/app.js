// SIAE Atlas reference map: reads the publication (data/siae.geojson, data/datapackage.json)
// and the server's config.json; no build step, no CDN.
"use strict";

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
const LIST_LIMIT = 300;

const state = { features: [], markers: new Map(), areas: { regions: {}, departements: {} },
  added: new Set() };
const $ = (id) => document.getElementById(id);
const fold = (s) => (s || "").normalize("NFD").replace(/[\u0300-\u036f]/g, "").toLowerCase();
const esc = (s) => String(s ?? "").replace(/[&<>"']/g,
  (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);

async function getJSON(url, fallback) {
  try {
    const r = await fetch(url);
    return r.ok ? await r.json() : fallback;
  } catch (e) {
    return fallback;
  }
}

function popupHtml(p) {
  const address = [p.adresse, p.complement_adresse, [p.code_postal, p.commune].filter(Boolean).join(" ")]
    .filter(Boolean).map(esc).join("<br>");
  const kinds = (p.types || []).map((k) => `<abbr title="${esc(KIND_LABELS[k] || k)}">${esc(k)}</abbr>`).join(", ");
  let html = `<div class="popup"><h3>${esc(p.nom)}</h3><p class="kinds">${kinds}</p><p>${address}</p>`;
  if (state.added.has(p.structure_id)) html += `<p class="new">Nouvelle dans cette publication.</p>`;
  if (p.telephone) html += `<p>Tél. <a href="tel:${esc(p.telephone)}">${esc(p.telephone)}</a></p>`;
  if (p.site_web) html += `<p><a href="${esc(p.site_web)}" target="_blank" rel="noopener">${esc(p.site_web)}</a></p>`;
  if (p.geo_precision === "municipality") {
    html += `<p class="approx">Position approximative : centre de la commune.</p>`;
  }
  return html + "</div>";
}

function selectedKinds() {
  return new Set([...document.querySelectorAll("#kinds input:checked")].map((i) => i.value));
}

function matches(f, kinds, region, dep, q) {
  const p = f.properties;
  if (!(p.types || []).some((k) => kinds.has(k))) return false;
  if (region && p.region !== region) return false;
  if (dep && p.departement !== dep) return false;
  if (q && !fold(`${p.nom} ${p.enseigne || ""} ${p.commune || ""}`).includes(q)) return false;
  return true;
}

function fillDepartements() {
  const region = $("region").value;
  const current = $("departement").value;
  const deps = [...new Set(state.features.filter((f) => !region || f.properties.region === region)
    .map((f) => f.properties.departement).filter(Boolean))].sort();
  $("departement").innerHTML = '<option value="">Tous les départements</option>' + deps.map((d) => {
    const name = state.areas.departements[d] ? ` ${state.areas.departements[d].nom}` : "";
    return `<option value="${esc(d)}">${esc(d)}${esc(name)}</option>`;
  }).join("");
  if (deps.includes(current)) $("departement").value = current;
}

function apply(fit) {
  const kinds = selectedKinds();
  const region = $("region").value;
  const dep = $("departement").value;
  const q = fold($("search").value.trim());
  const shown = state.features.filter((f) => matches(f, kinds, region, dep, q));
  state.cluster.clearLayers();
  state.cluster.addLayers(shown.map((f) => state.markers.get(f.id)));
  const n = shown.length;
  $("counter").textContent = `${n} structure${n > 1 ? "s" : ""} affichée${n > 1 ? "s" : ""}`;
  const sorted = [...shown].sort((a, b) => a.properties.nom.localeCompare(b.properties.nom, "fr"));
  $("list").innerHTML = sorted.slice(0, LIST_LIMIT).map((f) => {
    const p = f.properties;
    const badge = state.added.has(p.structure_id) ? ' <span class="new">nouvelle</span>' : "";
    return `<li><a href="#" data-id="${esc(f.id)}">${esc(p.nom)}</a>${badge} — ${esc((p.types || []).join(", "))}, ${esc(p.commune || "")}</li>`;
  }).join("");
  $("list-more").textContent = n > LIST_LIMIT ? `… et ${n - LIST_LIMIT} autres : affinez les filtres.` : "";
  const params = new URLSearchParams();
  if (region) params.set("region", region);
  if (dep) params.set("departement", dep);
  if (q) params.set("q", $("search").value.trim());
  const all = Object.keys(KIND_LABELS).filter((k) => document.querySelector(`#kinds input[value="${k}"]`));
  if (kinds.size !== all.length) params.set("types", [...kinds].join(","));
  history.replaceState(null, "", params.toString() ? `?${params}` : location.pathname);
  if (fit && shown.length) {
    state.map.fitBounds(L.latLngBounds(shown.map((f) => state.markers.get(f.id).getLatLng())),
      { maxZoom: 12, padding: [20, 20] });
  }
}

async function main() {
  const [config, pkg, data, areas, changes] = await Promise.all([
    getJSON("config.json", {}), getJSON("data/datapackage.json", {}),
    getJSON("data/siae.geojson", null), getJSON("areas.json", null),
    getJSON("data/changes.json", {}),
  ]);
  // Structures added since the previous publication (none to show on the first one).
  if (changes.previous) state.added = new Set((changes.added || []).map((a) => a.structure_id));
  if (!data) {
    $("freshness").textContent = "Aucune publication trouvée : lancez « siae sync ».";
    return;
  }
  if (areas) state.areas = areas;
  state.features = data.features;
  const created = pkg.created ? new Date(pkg.created) : null;
  $("freshness").textContent = created
    ? `Données du ${created.toLocaleDateString("fr-FR", { day: "numeric", month: "long", year: "numeric" })}`
    : "Date des données inconnue";

  // maxZoom is needed by the clusters when no tile layer sets one.
  state.map = L.map("map", { keyboard: true, maxZoom: 18 }).setView([46.6, 2.4], 6);
  if (config.tiles) {
    L.tileLayer(config.tiles, { attribution: config.attribution || "", maxZoom: 19 }).addTo(state.map);
  } else {
    // No tile server: the départements' outlines (from the communes reference) as background.
    getJSON("outline.geojson", null).then((outline) => {
      if (!outline) return;
      state.outline = L.geoJSON(outline, {
        interactive: false,
        style: { color: "#8a94a6", weight: 1, fillColor: "#fbfaf7", fillOpacity: 1 },
      }).addTo(state.map);
      state.outline.bringToBack();
      document.getElementById("map").dataset.outline = String(outline.features.length);
    });
  }
  state.cluster = L.markerClusterGroup({ chunkedLoading: true, maxClusterRadius: 45 });
  state.map.addLayer(state.cluster);

  const present = new Set(state.features.flatMap((f) => f.properties.types || []));
  $("kinds").insertAdjacentHTML("beforeend", Object.keys(KIND_LABELS).filter((k) => present.has(k)).map((k) =>
    `<label><input type="checkbox" value="${k}" checked> <span class="swatch" style="background:${KIND_COLORS[k]}"></span> ${k} <small>${esc(KIND_LABELS[k])}</small></label>`).join(""));

  for (const f of state.features) {
    const p = f.properties;
    const [lon, lat] = f.geometry.coordinates;
    const color = KIND_COLORS[(p.types || [])[0]] || "#555";
    const marker = L.marker([lat, lon], {
      title: p.nom, alt: p.nom, keyboard: true,
      icon: L.divIcon({ className: "", html: `<span class="dot" style="background:${color}"></span>`, iconSize: [14, 14] }),
    });
    marker.bindPopup(() => popupHtml(p));
    state.markers.set(f.id, marker);
  }

  const regions = [...new Set(state.features.map((f) => f.properties.region).filter(Boolean))].sort();
  $("region").insertAdjacentHTML("beforeend", regions.map((r) =>
    `<option value="${esc(r)}">${esc(state.areas.regions[r] || `Région ${r}`)}</option>`).join(""));

  const params = new URLSearchParams(location.search);
  if (params.get("types")) {
    const wanted = new Set(params.get("types").split(","));
    document.querySelectorAll("#kinds input").forEach((i) => { i.checked = wanted.has(i.value); });
  }
  let dep = params.get("departement") || "";
  let region = params.get("region") || "";
  if (dep && !region) {
    const f = state.features.find((x) => x.properties.departement === dep);
    region = f ? f.properties.region : "";
  }
  $("region").value = region;
  fillDepartements();
  $("departement").value = dep;
  $("search").value = params.get("q") || "";

  $("kinds").addEventListener("change", () => apply(false));
  $("region").addEventListener("change", () => { fillDepartements(); apply(true); });
  $("departement").addEventListener("change", () => apply(true));
  $("search").addEventListener("input", () => apply(false));
  $("list").addEventListener("click", (e) => {
    const id = e.target.dataset && e.target.dataset.id;
    if (!id) return;
    e.preventDefault();
    const m = state.markers.get(id);
    state.cluster.zoomToShowLayer(m, () => m.openPopup());
  });
  apply(true);
  document.body.dataset.ready = "true";
}

main();

// Cohort comparison page: usage per syllable (one dot per animal, sorted by effect size, significant
// ones starred), the behavioural fingerprint, a differential transition heatmap, bout durations,
// the statistics table, warnings and the methods paragraph. Data: /api/experiments/{id}/comparison.
// Every chart links a syllable to its gallery card (click a dot, a bar, a cell or a tick label).
import { api, h, pageData } from "./common.js";
import { CONFIG, baseLayout } from "./charts.js";

const PAGE = pageData();
const EXPERIMENT = PAGE.experiment_id;
const COHORT_COLORS = ["#4a5568", "#d53f8c", "#2b6cb0", "#dd6b20", "#38a169", "#805ad5", "#b7791f", "#319795"];

function chosenCohorts() {
  return [...document.querySelectorAll("#cohort-form input[name=cohort]:checked")].map((el) => el.value);
}

function query(cohorts) {
  return cohorts.length ? `?cohorts=${encodeURIComponent(cohorts.join(","))}` : "";
}

function fmtP(p) {
  if (p == null) return "–";
  return p < 0.001 ? p.toExponential(1) : p.toFixed(3);
}

function fmtPct(x, digits = 1) {
  return x == null ? "–" : `${(x * 100).toFixed(digits)}%`;
}

/** Tick text that links to the syllable's gallery card (plotly renders <a href> in SVG text). */
function tickLink(s) {
  const star = s.significant ? "★ " : "";
  return `<a href="${s.gallery_url}">${star}${escapeHtml(s.label)}</a>`;
}

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

function openGallery(url) {
  if (url) window.location.href = url;
}

function usageChart(data) {
  const cohorts = data.cohorts.map((c) => c.name);
  const shown = data.syllables.filter((s) => s.tested).concat(data.syllables.filter((s) => !s.tested)).slice(0, 30);
  const ticks = shown.map(tickLink);
  const byLabel = new Map(shown.map((s, i) => [ticks[i], s]));
  const traces = cohorts.map((cohort, g) => {
    const x = [];
    const y = [];
    const text = [];
    for (const s of shown) {
      for (const a of data.animals) {
        if (a.cohort !== cohort) continue;
        x.push(tickLink(s));
        y.push(a.usage[s.index] * 100);
        text.push(a.subject);
      }
    }
    return {
      type: "box", name: cohort, x, y, text, boxpoints: "all", jitter: 0.5, pointpos: 0,
      fillcolor: "rgba(0,0,0,0)", line: { color: COHORT_COLORS[g % COHORT_COLORS.length], width: 1 },
      marker: { color: COHORT_COLORS[g % COHORT_COLORS.length], size: 7, opacity: 0.85 },
      hovertemplate: `${escapeHtml(cohort)} · %{text}: %{y:.2f}%<extra></extra>`,
    };
  });
  const annotations = shown.filter((s) => s.significant).map((s) => ({
    x: tickLink(s), y: 1.02, yref: "paper", text: "★", showarrow: false, font: { size: 16, color: "#c53030" },
  }));
  const layout = baseLayout({
    boxmode: "group",
    yaxis: { title: { text: "% of time (per animal)" }, rangemode: "tozero", zeroline: false },
    xaxis: { tickangle: -35, automargin: true, categoryorder: "array", categoryarray: ticks },
    legend: { orientation: "h", y: 1.12 },
    margin: { l: 60, r: 15, t: 40, b: 120 },
    annotations,
  });
  const el = document.getElementById("usage-chart");
  Plotly.newPlot(el, traces, layout, CONFIG);
  el.on("plotly_click", (ev) => {
    const point = ev.points && ev.points[0];
    const s = point && byLabel.get(point.x);
    if (s) openGallery(s.gallery_url);
  });
}

function fingerprintChart(data) {
  const fp = data.fingerprint;
  const verdict = document.getElementById("fingerprint-verdict");
  if (fp.ran) {
    const beats = fp.p_value <= data.alpha;
    verdict.replaceChildren(
      h("strong", {}, `${Math.round(fp.accuracy * 100)}% of animals`),
      ` assigned to the right cohort when left out (largest cohort: ${Math.round(fp.chance * 100)}%; `,
      `permutation p = ${fmtP(fp.p_value)}). `,
      beats ? "The cohorts' behaviour as a whole differs." : "Not better than chance at this design.");
  } else {
    verdict.textContent = `Not run: ${fp.reason}.`;
  }
  const syllables = data.syllables.filter((s) => s.tested);
  const animals = data.animals;
  if (!syllables.length || !animals.length) return;
  const z = animals.map(() => []);
  for (const s of syllables) {
    const values = animals.map((a) => a.usage[s.index]);
    const mean = values.reduce((p, v) => p + v, 0) / values.length;
    const sd = Math.sqrt(values.reduce((p, v) => p + (v - mean) ** 2, 0) / Math.max(1, values.length - 1)) || 1;
    values.forEach((v, i) => z[i].push((v - mean) / sd));
  }
  const predicted = new Map((fp.predictions || []).map((p) => [p.subject, p.predicted]));
  const rows = animals.map((a) => {
    const p = predicted.get(a.subject);
    const miss = p && p !== a.cohort ? ` ✗ (${p})` : "";
    return `${a.subject} · ${a.cohort}${miss}`;
  });
  const cols = syllables.map(tickLink);
  const el = document.getElementById("fingerprint-chart");
  Plotly.newPlot(el, [{
    type: "heatmap", z, x: cols, y: rows, colorscale: "RdBu", zmid: 0,
    colorbar: { title: { text: "z" }, thickness: 12 },
    hovertemplate: "%{y}<br>%{x}: z = %{z:.2f}<extra></extra>",
  }], baseLayout({
    xaxis: { tickangle: -40, automargin: true },
    yaxis: { automargin: true, autorange: "reversed" },
    margin: { l: 10, r: 10, t: 10, b: 110 },
  }), CONFIG);
  el.on("plotly_click", (ev) => {
    const point = ev.points && ev.points[0];
    const s = point && syllables[cols.indexOf(point.x)];
    if (s) openGallery(s.gallery_url);
  });
}

function transitionChart(data) {
  const tr = data.transitions;
  const el = document.getElementById("transition-chart");
  if (tr.cohorts.length < 2 || !tr.syllables.length) {
    el.replaceChildren(h("p", { class: "muted" }, "Needs two cohorts with segmented animals."));
    return;
  }
  const first = tr.cohorts[0].without_self;
  const last = tr.cohorts[tr.cohorts.length - 1].without_self;
  const z = last.map((row, i) => row.map((v, j) => (v == null || first[i][j] == null ? null : v - first[i][j])));
  const max = Math.max(0.01, ...z.flat().filter((v) => v != null).map(Math.abs));
  const urls = new Map(data.syllables.map((s) => [s.index, s.gallery_url]));
  const labels = tr.syllables.map((index, i) => `<a href="${urls.get(index) || "#"}">${escapeHtml(tr.labels[i])}</a>`);
  const pos = new Map(tr.syllables.map((index, i) => [index, i]));
  const shapes = tr.results.filter((r) => r.significant && pos.has(r.source) && pos.has(r.target)).map((r) => ({
    type: "rect", xref: "x", yref: "y", line: { color: "#1a202c", width: 2 },
    x0: pos.get(r.target) - 0.5, x1: pos.get(r.target) + 0.5, y0: pos.get(r.source) - 0.5, y1: pos.get(r.source) + 0.5,
  }));
  const names = `${tr.cohorts[tr.cohorts.length - 1].cohort} − ${tr.cohorts[0].cohort}`;
  Plotly.newPlot(el, [{
    type: "heatmap", z, x: tr.syllables.map((_, i) => i), y: tr.syllables.map((_, i) => i),
    colorscale: "RdBu", zmin: -max, zmax: max,
    customdata: tr.syllables.map((from) => tr.syllables.map((to) => `${tr.labels[pos.get(from)]} → ${tr.labels[pos.get(to)]}`)),
    colorbar: { title: { text: "Δp" }, thickness: 12 },
    hovertemplate: `%{customdata}<br>${escapeHtml(names)}: %{z:.3f}<extra></extra>`,
  }], baseLayout({
    xaxis: { title: { text: "to" }, tickvals: tr.syllables.map((_, i) => i), ticktext: labels, tickangle: -40, automargin: true },
    yaxis: { title: { text: "from" }, tickvals: tr.syllables.map((_, i) => i), ticktext: labels, autorange: "reversed", automargin: true },
    shapes,
    margin: { l: 10, r: 10, t: 10, b: 100 },
  }), CONFIG);
  el.on("plotly_click", (ev) => {
    const point = ev.points && ev.points[0];
    if (point) openGallery(urls.get(tr.syllables[point.y]));
  });
}

function durationChart(data) {
  const cohorts = data.cohorts.map((c) => c.name);
  const bySyllable = new Map(data.syllables.map((s) => [s.index, s]));
  const order = [...new Set(data.durations.map((d) => d.index))].slice(0, 12);
  const ticks = order.map((i) => tickLink(bySyllable.get(i) || { label: data.syllable_labels[i], gallery_url: "#" }));
  const traces = cohorts.map((cohort, g) => {
    const x = [];
    const y = [];
    for (const d of data.durations) {
      if (d.cohort !== cohort || !order.includes(d.index)) continue;
      const t = ticks[order.indexOf(d.index)];
      for (const v of d.durations_s) { x.push(t); y.push(v); }
    }
    return { type: "box", name: cohort, x, y, boxpoints: false,
      marker: { color: COHORT_COLORS[g % COHORT_COLORS.length] }, hovertemplate: "%{y:.2f} s<extra></extra>" };
  });
  const el = document.getElementById("duration-chart");
  Plotly.newPlot(el, traces, baseLayout({
    boxmode: "group", yaxis: { title: { text: "bout duration (s)" }, rangemode: "tozero" },
    xaxis: { tickangle: -35, automargin: true, categoryorder: "array", categoryarray: ticks },
    legend: { orientation: "h", y: 1.12 }, margin: { l: 60, r: 15, t: 30, b: 110 },
  }), CONFIG);
  el.on("plotly_click", (ev) => {
    const point = ev.points && ev.points[0];
    const i = point ? ticks.indexOf(point.x) : -1;
    if (i >= 0) openGallery((bySyllable.get(order[i]) || {}).gallery_url);
  });
}

function statsTable(data) {
  const cohorts = data.cohorts.map((c) => c.name);
  const head = h("tr", {}, h("th", {}, "syllable"), ...cohorts.map((c) => h("th", {}, `mean usage · ${c}`)),
    h("th", {}, "Δ mean (95% CI)"), h("th", {}, "Cliff's δ"), h("th", {}, "test"), h("th", {}, "p"), h("th", {}, "q (BH)"),
    ...cohorts.map((c) => h("th", {}, `median bout · ${c}`)), h("th", {}, "bout q"), h("th", {}, "examples"));
  const rows = data.syllables.filter((s) => s.tested).map((s) => {
    const pair = s.pairwise[cohorts.length - 2] || s.pairwise[0];
    return h("tr", { class: s.significant ? "significant" : "", dataset: { syllable: s.index, significant: s.significant } },
      h("td", {}, h("a", { href: s.gallery_url }, `${s.significant ? "★ " : ""}${s.label}`)),
      ...cohorts.map((c) => h("td", { class: "num" }, fmtPct(s.mean_usage[c], 2))),
      h("td", { class: "num" }, pair ? `${(pair.mean_difference * 100).toFixed(2)} (${(pair.ci_low * 100).toFixed(2)} to ${(pair.ci_high * 100).toFixed(2)}) pp` : "–"),
      h("td", { class: "num" }, s.effect_size == null ? "–" : s.effect_size.toFixed(2)),
      h("td", { class: "small", title: s.p_method || "" }, s.test || "–"),
      h("td", { class: "num" }, fmtP(s.p_value)),
      h("td", { class: "num" }, fmtP(s.q_value)),
      ...cohorts.map((c) => h("td", { class: "num" }, s.median_duration_s[c] == null ? "–" : `${s.median_duration_s[c].toFixed(2)} s`)),
      h("td", { class: "num" }, `${fmtP(s.duration_q_value)}${s.duration_significant ? " ★" : ""}`),
      h("td", { class: "small" }, s.clip_urls.length
        ? s.clip_urls.map((url, j) => h("a", { href: url, target: "_blank", style: { marginRight: ".4rem" } }, `clip ${j + 1}`))
        : h("a", { href: s.gallery_url }, "gallery")));
  });
  document.getElementById("stats-table").replaceChildren(
    h("table", { class: "stat-table", id: "syllable-stats" }, h("thead", {}, head), h("tbody", {}, rows)));
  const loco = data.locomotion.map((r) => h("tr", {},
    h("td", {}, `${r.measure} (${r.unit})`),
    ...cohorts.map((c) => h("td", { class: "num" }, r.means[c] == null ? "–" : r.means[c].toFixed(1))),
    h("td", { class: "num" }, r.p_value == null ? "–" : `p = ${fmtP(r.p_value)}`)));
  document.getElementById("locomotion-table").replaceChildren(
    h("table", { class: "stat-table" }, h("thead", {}, h("tr", {}, h("th", {}, "measure"), ...cohorts.map((c) => h("th", {}, c)), h("th", {}, "test"))),
      h("tbody", {}, loco)));
  conditionsTable(data, cohorts);
}

// Recording conditions per cohort (median over its animals): a difference here can make the
// same behaviour look different to the model, so it is flagged in words above as well.
function conditionsTable(data, cohorts) {
  const fmt = (c, v) => (v == null ? "–" : c.unit === "" ? fmtPct(v, 1) : `${Number(v.toPrecision(3))} ${c.unit}`);
  const rows = data.nuisances.map((c) => h("tr", { class: c.differs ? "significant" : "", dataset: { condition: c.condition, differs: c.differs } },
    h("td", {}, c.description),
    ...cohorts.map((name) => h("td", { class: "num" }, fmt(c, c.cohort_medians[name]))),
    h("td", {}, c.differs ? "differs: see the warning above" : "alike")));
  document.getElementById("conditions-table").replaceChildren(rows.length
    ? h("table", { class: "stat-table", id: "recording-conditions" }, h("thead", {}, h("tr", {}, h("th", {}, "condition"), ...cohorts.map((c) => h("th", {}, c)), h("th", {}, ""))),
      h("tbody", {}, rows))
    : h("p", { class: "small muted" }, "No recording conditions were measured for these sessions."));
}

function showWarnings(warnings) {
  const box = document.getElementById("warnings");
  box.querySelector("ul").replaceChildren(...warnings.map((w) => h("li", {}, w)));
  box.classList.toggle("hidden", !warnings.length);
}

function downloads(cohorts) {
  const q = query(cohorts);
  const base = `/api/experiments/${EXPERIMENT}/comparison`;
  document.getElementById("downloads").replaceChildren(
    "CSV: ",
    h("a", { href: `${base}/usage.csv${q}`, id: "usage-csv", download: "" }, "per-animal usage"),
    h("a", { href: `${base}/statistics.csv${q}`, id: "statistics-csv", download: "" }, "statistics"),
    h("a", { href: `${base}/transitions.csv${q}`, id: "transitions-csv", download: "" }, "transitions"),
    h("a", { href: `${base}${q}`, id: "comparison-json" }, "JSON"));
}

async function load(cohorts) {
  const message = document.getElementById("comparison-message");
  message.className = "notice";
  message.textContent = "Comparing…";
  downloads(cohorts);
  let data;
  try {
    data = await api("GET", `/api/experiments/${EXPERIMENT}/comparison${query(cohorts)}`);
  } catch (err) {
    message.className = "notice error";
    message.textContent = err.message;
    document.getElementById("results").classList.add("hidden");
    showWarnings([]);
    return;
  }
  window.comparisonState = data;
  message.classList.add("hidden");
  showWarnings(data.warnings);
  const results = document.getElementById("results");
  results.classList.remove("hidden");
  const significant = data.syllables.filter((s) => s.significant);
  const tested = data.syllables.filter((s) => s.tested).length;
  const verdict = document.getElementById("verdict");
  if (data.cohorts.length < 2) verdict.replaceChildren(h("strong", {}, "Nothing to compare: "), "tick two or more cohorts.");
  else verdict.replaceChildren(
    h("strong", {}, `${significant.length} of ${tested} syllables`),
    ` differ (false discovery rate ${data.alpha}) · model v${data.model_version} · `,
    data.cohorts.map((c) => `${c.name}: ${c.animals} animals, ${c.sessions} sessions`).join(" · "));
  usageChart(data);
  fingerprintChart(data);
  transitionChart(data);
  durationChart(data);
  statsTable(data);
  document.getElementById("methods").textContent = data.methods;
  document.body.dataset.comparisonReady = "1";
}

document.getElementById("cohort-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const cohorts = chosenCohorts();
  const url = new URL(window.location.href);
  url.searchParams.set("cohorts", cohorts.join(","));
  window.history.replaceState(null, "", url);
  document.body.dataset.comparisonReady = "";
  load(cohorts);
});

// plotly.js is loaded with `defer`; module scripts run after deferred ones, so Plotly is ready.
load(PAGE.chosen || []);

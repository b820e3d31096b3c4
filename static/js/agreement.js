// A lab's own labels beside the syllables: the upload form and list on the session page, and
// the agreement (figures, per-behaviour F1, syllable × behaviour heatmap) on both pages.
import { api, h, pct } from "./common.js";
import { CONFIG, baseLayout } from "./charts.js";

const FORMATS = "frame,behaviour · start_s,end_s,behaviour · BORIS tabular events (CSV or TSV)";

function stat(value, key, title) {
  return h("div", { class: "stat", title }, h("div", { class: "v num" }, value), h("div", { class: "k" }, key));
}

/** Figures, F1 table and heatmap of one agreement (AgreementPublic) into `el`. */
export function renderAgreement(el, data) {
  el.replaceChildren();
  const rater = data.rater ? ` by ${data.rater}` : "";
  el.append(h("p", { class: "small muted" },
    `${data.frames.toLocaleString()} frames scored${rater} and segmented by model v${data.model_version}` +
    (data.session_ids.length > 1 ? `, ${data.session_ids.length} sessions pooled` : "") + "."));
  el.append(h("div", { class: "stats agreement-figures" },
    stat(data.nmi.toFixed(3), "NMI", "normalised mutual information: 1 when syllables and behaviours determine each other"),
    stat(data.ari.toFixed(3), "ARI", "adjusted Rand index: 1 for the same partition, about 0 for chance"),
    stat(pct(data.accuracy), "frames right, each syllable named by its main behaviour",
      "several syllables may name one behaviour: a model may split what people lump"),
    stat(`${pct(data.boundary_agreement)}`, `of ${data.human_boundaries} behaviour changes have a syllable change within ±${data.boundary_tolerance_frames} frames (chance ${pct(data.boundary_chance)})`,
      "chance: the same share for changes placed at random; agreement means something only above it")));
  const f1 = h("table", { class: "small agreement-f1" },
    h("thead", {}, h("tr", {}, h("th", {}, "behaviour"), h("th", {}, "F1"), h("th", {}, "syllables that name it"))));
  const body = h("tbody");
  for (const behaviour of data.behaviours) {
    const named = Object.entries(data.mapping).filter(([, b]) => b === behaviour)
      .map(([k]) => data.syllable_labels[data.syllables.indexOf(Number(k))]);
    body.append(h("tr", {}, h("td", {}, behaviour), h("td", { class: "num" }, (data.f1[behaviour] ?? 0).toFixed(2)),
      h("td", {}, named.join(", ") || "none")));
  }
  f1.append(body);
  const chart = h("div", { class: "agreement-heatmap", style: "height: " + (120 + 26 * data.behaviours.length) + "px" });
  el.append(chart, f1);
  // Rows: behaviours; columns: syllables; cell: share of the behaviour's frames in the syllable.
  const totals = data.behaviours.map((_, j) => data.contingency.reduce((s, row) => s + row[j], 0));
  const z = data.behaviours.map((_, j) => data.syllables.map((_, i) => (totals[j] ? data.contingency[i][j] / totals[j] : 0)));
  const text = z.map((row, j) => row.map((v, i) => `${data.contingency[i][j]} frames (${pct(v)} of ${data.behaviours[j]})`));
  if (typeof Plotly === "undefined") return;
  Plotly.react(chart, [{
    // "#3 groom": two syllables the lab named alike stay two columns.
    type: "heatmap", z, x: data.syllables.map((k, i) => `#${k} ${data.syllable_labels[i]}`), y: data.behaviours,
    text, hoverinfo: "text+x+y",
    colorscale: "Blues", reversescale: true, zmin: 0, zmax: 1, colorbar: { title: { text: "share" }, thickness: 12 },
  }], baseLayout({ margin: { l: 110, r: 20, t: 10, b: 90 }, xaxis: { type: "category", tickangle: -40 }, yaxis: { type: "category", autorange: "reversed" } }), CONFIG);
}

/** The session page's "Your labels" card: upload, list, and agreement of the chosen file. */
export function initSessionLabels(sessionId) {
  const card = document.getElementById("labels-card");
  if (!card) return;
  const form = document.getElementById("labels-form");
  const list = document.getElementById("labels-list");
  const result = document.getElementById("labels-agreement");
  const note = document.getElementById("labels-message");
  document.getElementById("labels-formats").textContent = FORMATS;
  const say = (text, kind = "") => { note.textContent = text; note.className = `notice ${kind}` + (text ? "" : " hidden"); };

  async function show(annotation) {
    for (const row of list.querySelectorAll("tr")) row.classList.toggle("selected", row.dataset.id === String(annotation.id));
    result.replaceChildren(h("p", { class: "small muted" }, "Comparing…"));
    try {
      renderAgreement(result, await api("GET", `/api/annotations/${annotation.id}/agreement`));
      result.dataset.ready = "true";
    } catch (err) {
      result.replaceChildren(h("p", { class: "notice" }, err.message));
    }
  }

  async function load(selectId) {
    const annotations = await api("GET", `/api/sessions/${sessionId}/annotations`);
    list.replaceChildren();
    if (!annotations.length) {
      list.append(h("tr", {}, h("td", { colspan: 5, class: "muted small" },
        "No labels yet. Upload a file someone scored by hand (or from BORIS) to see how the syllables agree with it.")));
      result.replaceChildren();
      return;
    }
    for (const a of annotations) {
      const remove = h("button", { class: "small secondary", type: "button" }, "Remove");
      remove.addEventListener("click", async (event) => {
        event.stopPropagation();
        if (!confirm(`Remove ${a.filename}? The syllables are not affected.`)) return;
        try {
          await api("DELETE", `/api/annotations/${a.id}`);
          say(`${a.filename} removed.`, "ok");
          load();
        } catch (err) {
          say(`${a.filename} was not removed: ${err.message}`, "error");
        }
      });
      const row = h("tr", { dataset: { id: a.id }, class: "clickable", title: "show the agreement" },
        h("td", {}, a.filename), h("td", {}, a.rater || "–"),
        h("td", {}, a.behaviours.join(", ")),
        h("td", { class: "num" }, pct(a.scored_frames / a.frame_count)),
        h("td", {}, h("a", { href: `/api/annotations/${a.id}/file`, download: a.filename }, "file"), " ", remove));
      row.addEventListener("click", () => show(a));
      list.append(row);
      for (const n of a.notes) list.append(h("tr", {}, h("td", { colspan: 5, class: "small muted" }, `${a.filename}: ${n}`)));
    }
    show(annotations.find((a) => a.id === selectId) || annotations[annotations.length - 1]);
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const file = form.querySelector("input[type=file]").files[0];
    if (!file) { say("Choose a label file first.", "error"); return; }
    const data = new FormData();
    data.append("file", file);
    data.append("rater", form.querySelector("[name=rater]").value);
    say(`Reading ${file.name}…`);
    try {
      const made = await api("POST", `/api/sessions/${sessionId}/annotations`, data);
      say(`${made.filename}: ${made.behaviours.length} behaviours over ${made.scored_frames.toLocaleString()} frames.`, "ok");
      form.reset();
      load(made.id);
    } catch (err) {
      say(err.message, "error");
    }
  });
  load();
}

/** The experiment page's agreement card: one block per rater, all their sessions pooled. */
export async function initExperimentAgreement(experimentId) {
  const el = document.getElementById("agreement-results");
  if (!el) return;
  // No ready model or no labels yet: an empty list, and the card stays hidden.
  const results = await api("GET", `/api/experiments/${experimentId}/agreement`);
  if (!results.length) return;
  document.getElementById("agreement-card").classList.remove("hidden");
  for (const r of results) {
    const block = h("div", { class: "agreement-block" });
    el.append(h("h3", {}, r.rater ? `Labels by ${r.rater}` : "Labels without a rater"), block);
    renderAgreement(block, r);
  }
}

// Model page: states used, usage, median durations, transition matrix, training curve.
import { api, fmtDuration, h, pageData, sleep } from "./common.js";
import { CONFIG, baseLayout, trainingCurve } from "./charts.js";

const { model_id: MODEL } = pageData();

function stat(label, value, id) {
  return h("div", { class: "stat", id }, h("div", { class: "v" }, value), h("div", { class: "k" }, label));
}

async function main() {
  let model = await api("GET", `/api/models/${MODEL}`);
  const box = document.getElementById("model-message");
  while (model.status !== "ready" && model.status !== "failed") {
    box.textContent = `This model is ${model.status}; the page fills in when it is ready.`;
    box.classList.remove("hidden");
    if (model.training_curve && model.training_curve.length) trainingCurve(document.getElementById("training-chart"), model.training_curve);
    await sleep(2000);
    model = await api("GET", `/api/models/${MODEL}`);
  }
  if (model.status === "failed") {
    box.textContent = "Fitting this model failed; see the experiment page for the reason and a Retry button.";
    box.className = "notice error";
  } else {
    box.classList.add("hidden");
  }
  const syllables = (model.syllables || []).filter((s) => s.usage > 0 || s.bout_count > 0);
  document.getElementById("model-stats").replaceChildren(
    stat("states used", model.states_used != null ? `${model.states_used} / ${model.states}` : `– / ${model.states}`, "stat-states"),
    stat("median bout", model.median_duration_s != null ? fmtDuration(model.median_duration_s) : "–", "stat-median"),
    stat("sessions", String(model.session_ids.length), "stat-sessions"),
    stat("fitted", model.fitted_at ? new Date(`${model.fitted_at}Z`).toLocaleDateString(undefined, { dateStyle: "medium" }) : "–", "stat-fitted"));

  const byUsage = [...syllables].sort((a, b) => b.usage - a.usage);
  const names = byUsage.map((s) => s.label || s.name || `syllable ${s.index}`);
  const colors = byUsage.map((s) => s.color);
  Plotly.newPlot("usage-chart", [{ type: "bar", x: names, y: byUsage.map((s) => s.usage * 100), marker: { color: colors },
    hovertemplate: "%{x}: %{y:.1f}%<extra></extra>" }],
  baseLayout({ yaxis: { title: { text: "% of frames" } }, xaxis: { tickangle: -40, automargin: true } }), CONFIG);
  Plotly.newPlot("duration-chart", [{ type: "bar", x: names, y: byUsage.map((s) => s.median_duration_s), marker: { color: colors },
    hovertemplate: "%{x}: %{y:.2f} s<extra></extra>" }],
  baseLayout({ yaxis: { title: { text: "seconds" } }, xaxis: { tickangle: -40, automargin: true } }), CONFIG);

  const matrix = model.transition_matrix || [];
  if (matrix.length && byUsage.length) {
    const order = byUsage.map((s) => s.index).filter((i) => i < matrix.length);
    const z = order.map((i) => order.map((j) => matrix[i][j]));
    const labels = order.map((i) => names[byUsage.findIndex((s) => s.index === i)]);
    Plotly.newPlot("transition-chart", [{ type: "heatmap", z, x: labels, y: labels, colorscale: "Blues", zmin: 0, zmax: Math.max(1e-9, ...z.flat()),
      hovertemplate: "%{y} → %{x}: %{z:.2f}<extra></extra>", colorbar: { thickness: 12 } }],
    baseLayout({ yaxis: { autorange: "reversed", title: { text: "from" }, automargin: true },
      xaxis: { title: { text: "to" }, tickangle: -40, automargin: true } }), CONFIG);
  } else {
    document.getElementById("transition-chart").replaceChildren(h("p", { class: "empty" }, "No transitions yet."));
  }
  if (model.training_curve && model.training_curve.length) {
    trainingCurve(document.getElementById("training-chart"), model.training_curve);
  } else {
    document.getElementById("training-chart").replaceChildren(h("p", { class: "empty" }, "No training curve was recorded."));
  }
  document.body.dataset.ready = "true";
}

main().catch((err) => {
  const box = document.getElementById("model-message");
  box.textContent = `Could not load the model: ${err.message}`;
  box.className = "notice error";
});

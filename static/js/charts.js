// Plotly charts shared by pages (plotly.js is loaded locally as the global `Plotly`).

const FONT = { family: "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif", size: 12, color: "#1d232a" };
export const CONFIG = { displaylogo: false, responsive: true, modeBarButtonsToRemove: ["select2d", "lasso2d"] };

export function baseLayout(extra = {}) {
  return {
    font: FONT,
    margin: { l: 55, r: 15, t: 10, b: 40 },
    paper_bgcolor: "rgba(0,0,0,0)",
    plot_bgcolor: "#fff",
    ...extra,
  };
}

/** Words for a session's quality figures, e.g. "mouse not found in 12% of frames". */
export function qualityFlags(quality) {
  if (!quality) return [];
  const flags = [];
  const noMouse = Number(quality.fraction_no_mouse || 0);
  if (noMouse >= 0.01) flags.push(`mouse not found in ${Math.round(noMouse * 100)}% of frames`);
  const several = Number(quality.fraction_several_blobs || 0);
  if (several >= 0.01) flags.push(`several animals or objects in ${Math.round(several * 100)}% of frames`);
  for (const flag of quality.flags || []) flags.push(String(flag));
  return flags;
}

/** The training bound against the step, with the number of states in use on a second axis. */
export function trainingCurve(el, metrics) {
  // Steps may restart at each training stage: plot against the update's rank then.
  const raw = metrics.map((m) => m.step ?? m.epoch);
  const increasing = raw.every((v, i) => v != null && (i === 0 || v > raw[i - 1]));
  const steps = increasing ? raw : metrics.map((_, i) => i);
  const bound = metrics.map((m) => m.bound ?? m.elbo_per_frame ?? m.elbo ?? (m.loss != null ? -m.loss : null));
  const stages = metrics.map((m) => (m.stage != null ? `stage ${m.stage}` : ""));
  const traces = [{ x: steps, y: bound, text: stages, name: "training bound", mode: "lines+markers",
    marker: { size: 4 }, line: { color: "#2b6cb0", width: 2 }, hovertemplate: "%{y:.4g} %{text}<extra></extra>" }];
  if (metrics.some((m) => m.states_used != null)) {
    traces.push({ x: steps, y: metrics.map((m) => m.states_used ?? null), name: "states used", yaxis: "y2",
      mode: "lines", line: { color: "#dd6b20", width: 1.5, dash: "dot" } });
  }
  const layout = baseLayout({
    xaxis: { title: { text: increasing ? "step" : "update" }, zeroline: false },
    yaxis: { title: { text: "bound per frame (higher is better)" }, zeroline: false },
    yaxis2: { title: { text: "states used" }, overlaying: "y", side: "right", rangemode: "tozero", showgrid: false },
    legend: { orientation: "h", y: 1.12 },
    margin: { l: 65, r: 50, t: 25, b: 40 },
  });
  return Plotly.react(el, traces, layout, CONFIG);
}

// Syllable gallery: per syllable an editable name and description (saved inline with PATCH),
// usage, a duration histogram and example clips playing in a grid.
import { api, fmtDuration, h, pageData } from "./common.js";
import { CONFIG, baseLayout } from "./charts.js";

const { model_id: MODEL } = pageData();

function saver(syllable, field, input, status) {
  let last = input.value;
  let timer = null;
  const save = async () => {
    clearTimeout(timer);
    const value = field === "name" ? input.value.trim() : input.value;
    if (value === last) return;
    status.textContent = "saving…";
    status.style.color = "";
    try {
      const updated = await api("PATCH", `/api/syllables/${syllable.id}`, { [field]: value });
      last = value;
      status.textContent = "saved";
      input.closest(".syllable-card").dataset.syllableName = updated.label || updated.name;
    } catch (err) {
      status.textContent = `not saved: ${err.message}`;
      status.style.color = "var(--bad)";
    }
  };
  input.addEventListener("input", () => { clearTimeout(timer); status.textContent = ""; timer = setTimeout(save, 800); });
  input.addEventListener("change", save);
  input.addEventListener("keydown", (e) => { if (e.key === "Enter" && field === "name") { e.preventDefault(); save(); } });
}

let UNIT = null; // the model's kinematics unit: cm, body lengths or px

function motion(s) {
  if (s.speed == null && s.turning_deg_s == null && s.body_length == null) return null;
  const unit = UNIT === "body lengths" ? "BL" : UNIT;
  const parts = [];
  if (s.speed != null) parts.push(`speed ${s.speed.toPrecision(2)} ${unit}/s`);
  if (s.turning_deg_s != null) parts.push(`turning ${Math.round(s.turning_deg_s)}°/s`);
  if (s.body_length != null) parts.push(`body ${s.body_length.toPrecision(2)} ${unit}`);
  return h("div", { class: "small muted kinematics", title: `medians over the syllable's frames; BL: body lengths` }, parts.join(" · "));
}

let GROUP_OF = new Map(); // syllable index -> its group's name

/** The groups card: what is grouped now, a form to group, undo, and suggestions with reasons. */
async function loadGroups(labels) {
  const [state, suggestions] = await Promise.all([
    api("GET", `/api/models/${MODEL}/groupings`),
    api("GET", `/api/models/${MODEL}/grouping-suggestions`),
  ]);
  const current = state.current ? state.current.groups : [];
  GROUP_OF = new Map(current.flatMap((g) => g.syllables.map((k) => [k, g.name])));
  const box = document.getElementById("groups-current");
  box.replaceChildren(current.length
    ? h("p", {}, `Version ${state.current.version}: `, ...current.flatMap((g, i) => [i ? "; " : "",
      h("strong", {}, g.name), ` = ${g.syllables.map((k) => labels.get(k) || `syllable ${k}`).join(" + ")}`]))
    : h("p", { class: "muted" }, "No syllables are grouped."));
  document.getElementById("group-undo").disabled = !state.current;
  const list = document.getElementById("group-suggestions");
  list.replaceChildren(...(suggestions.length ? suggestions.map((s) => {
    const button = h("button", { type: "button", class: "small secondary" }, "Group these");
    button.addEventListener("click", () => {
      document.getElementById("group-syllables").value = s.syllables.join(", ");
      document.getElementById("group-name").focus();
    });
    return h("li", {}, h("strong", {}, s.labels.join(" + ")), ` (#${s.syllables.join(", #")}): ${s.reason} `, button);
  }) : [h("li", { class: "muted" }, "No pair of syllables stands out as alike.")]));
  for (const el of document.querySelectorAll(".syllable-card")) {
    const name = GROUP_OF.get(Number(el.dataset.syllableIndex));
    el.querySelector(".group-badge")?.remove();
    if (name) el.querySelector(".row").append(h("span", { class: "badge group-badge", title: "grouped" }, `in ${name}`));
  }
  return state;
}

function installGroupForm(labels) {
  const form = document.getElementById("group-form");
  const note = document.getElementById("groups-message");
  const say = (text, kind) => { note.textContent = text; note.className = `notice ${kind}`; };
  const send = async (method, url, body, done) => {
    try {
      await api(method, url, body);
      const state = await loadGroups(labels);
      say(done(state), "ok");
    } catch (err) {
      say(err.message, "error");
    }
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const name = document.getElementById("group-name").value.trim();
    const syllables = document.getElementById("group-syllables").value.split(/[^0-9]+/).filter(Boolean).map(Number);
    const others = [];
    for (const [k, group] of GROUP_OF) {
      if (group === name || syllables.includes(k)) continue;
      const g = others.find((o) => o.name === group);
      if (g) g.syllables.push(k); else others.push({ name: group, syllables: [k] });
    }
    const previous = [...GROUP_OF].filter(([, g]) => g === name).map(([k]) => k);
    const merged = [...new Set([...previous, ...syllables])];
    send("POST", `/api/models/${MODEL}/groupings`, { groups: [...others.filter((o) => o.syllables.length > 1), { name, syllables: merged }] },
      (state) => `Grouped as “${name}” (version ${state.current.version}).`);
  });
  document.getElementById("group-undo").addEventListener("click", () =>
    send("POST", `/api/models/${MODEL}/groupings/undo`, undefined,
      (state) => (state.current ? `Back to version ${state.current.version}.` : "No syllables are grouped now.")));
}

function card(s) {
  const status = h("div", { class: "saved", "data-save-status": "" });
  const name = h("input", { type: "text", class: "name-input", value: s.name, placeholder: s.label || `syllable ${s.index}`,
    maxlength: 200, "data-syllable-id": s.id, "aria-label": "syllable name" });
  const description = h("textarea", { placeholder: "What does the mouse do? e.g. rears against the wall", maxlength: 10000,
    "data-syllable-description": s.id, "aria-label": "description" });
  description.value = s.description || "";
  saver(s, "name", name, status);
  saver(s, "description", description, status);
  const hist = h("div", { class: "hist" });
  const clips = (s.clips || []).map((c) => {
    const video = h("video", { muted: true, loop: true, autoplay: true, playsinline: true, preload: "auto" });
    // The attribute alone does not mute a video made by script; browsers autoplay muted ones only.
    video.muted = true;
    video.defaultMuted = true;
    video.src = c.url;
    return h("div", { class: "clip" }, video,
      h("a", { href: `/sessions/${c.session_id}` }, `session ${c.session_id} · frames ${c.start_frame}–${c.end_frame}`));
  });
  const el = h("div", { class: "card syllable-card", id: `syllable-${s.index}`, style: { borderLeftColor: s.color },
    dataset: { syllableIndex: s.index, syllableId: s.id, syllableName: s.label || s.name } },
  h("div", {},
    h("div", { class: "row", style: { gap: ".5rem", flexWrap: "nowrap" } },
      h("span", { class: "swatch", style: { background: s.color } }),
      h("span", { class: "muted small" }, `#${s.index}`), name),
    status,
    description,
    h("div", { class: "small", style: { margin: ".4rem 0" } },
      h("strong", { class: "num" }, `${(s.usage * 100).toFixed(1)}%`), " of frames · ",
      h("span", { class: "num" }, `${s.bout_count.toLocaleString()} bout${s.bout_count === 1 ? "" : "s"}`), " · median ",
      h("span", { class: "num" }, s.median_duration_s != null ? fmtDuration(s.median_duration_s) : "–")),
    motion(s),
    hist),
  h("div", { class: "clips" }, clips.length ? clips : h("p", { class: "empty" }, "Example clips appear when they are rendered.")));
  return { el, hist, s };
}

async function main() {
  const model = await api("GET", `/api/models/${MODEL}`);
  const box = document.getElementById("gallery-message");
  if (model.status !== "ready") {
    box.textContent = `This model is ${model.status}: its syllables appear when it is ready.`;
    box.classList.remove("hidden");
    return;
  }
  UNIT = model.kinematics_unit;
  if (model.kinematics_note) {
    box.textContent = `Kinematics in ${model.kinematics_unit}. ${model.kinematics_note}`;
    box.classList.remove("hidden");
  }
  const syllables = (model.syllables || []).filter((s) => s.usage > 0 || s.bout_count > 0)
    .sort((a, b) => b.usage - a.usage);
  const cards = syllables.map(card);
  document.getElementById("gallery").replaceChildren(...cards.map((c) => c.el));
  const labels = new Map((model.syllables || []).map((s) => [s.index, s.label]));
  installGroupForm(labels);
  await loadGroups(labels);
  if (!cards.length) box.textContent = "No syllable of this model is used in any session yet.";
  // Histograms after the cards are in the page, so Plotly sizes them.
  for (const { hist, s } of cards) {
    if (!(s.durations_s || []).length) continue;
    Plotly.newPlot(hist, [{ type: "histogram", x: s.durations_s, marker: { color: s.color }, nbinsx: 20,
      hovertemplate: "%{x} s: %{y} bouts<extra></extra>" }],
    baseLayout({ margin: { l: 35, r: 5, t: 5, b: 30 }, xaxis: { title: { text: "bout duration (s)" } },
      bargap: 0.05 }), { ...CONFIG, displayModeBar: false, staticPlot: false });
  }
  focusHash();
  window.addEventListener("hashchange", focusHash);
  document.body.dataset.ready = "true";
}

/** Links such as /models/3/syllables#syllable-5 (from the viewer or the comparison) land on
 * that syllable's card: the cards are drawn after load, so the browser cannot do it alone. */
function focusHash() {
  document.querySelectorAll(".syllable-card.highlight").forEach((el) => el.classList.remove("highlight"));
  const target = location.hash && document.getElementById(location.hash.slice(1));
  if (!target) return;
  target.scrollIntoView({ block: "start" });
  target.classList.add("highlight");
}

main().catch((err) => {
  const box = document.getElementById("gallery-message");
  box.textContent = `Could not load the syllables: ${err.message}`;
  box.className = "notice error";
});

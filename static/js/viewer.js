// Session viewer: the video above a Plotly ethogram (bouts as coloured bands) and tracks of speed
// and syllable probability sharing the time axis. A cursor follows playback frame by frame
// (requestVideoFrameCallback, else timeupdate); clicking or dragging the ethogram seeks.
//
// Built for long sessions (1 h = 108k frames, thousands of bouts): each syllable is ONE filled
// scatter trace whose rectangles are separated by gaps, so the figure holds a handful of SVG
// paths whatever the number of bouts; the cursor is one layout shape moved with Plotly.relayout.
import { api, fmtClock, h, pageData, readJson } from "./common.js";
import { CONFIG, baseLayout, qualityFlags } from "./charts.js";
import { initSessionLabels } from "./agreement.js";

const RATES = [0.25, 0.5, 0.75, 1, 1.25, 1.5, 2, 3, 4];
const { session_id: SESSION } = pageData();

const video = document.getElementById("video");
const plot = document.getElementById("ethogram");
const nowLabel = document.getElementById("now-syllable");
const message = document.getElementById("viewer-message");

const state = {
  fps: 30,
  first: 0, // time of frame 0 in the video, seconds
  frameCount: 0,
  duration: 0,
  starts: new Int32Array(0),
  ends: new Int32Array(0),
  labels: new Int32Array(0),
  syllables: new Map(), // index -> {index, name, color}
  current: null, // index of the syllable on screen
  model: null, // {id, version} of the model that segmented this session
  frame: 0,
};

function say(text, kind = "") {
  message.textContent = text;
  message.className = `notice ${kind}`;
}

// ------------------------------------------------------------------------------------------
// Data

/** The bout containing `frame` (binary search over starts), or -1. */
function boutAt(frame) {
  const { starts, ends } = state;
  let lo = 0;
  let hi = starts.length - 1;
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (starts[mid] <= frame) { found = mid; lo = mid + 1; } else { hi = mid - 1; }
  }
  return found >= 0 && frame < ends[found] ? found : -1;
}

/** The frame on screen at time `t` (any time within the frame). */
function frameOfTime(t) {
  return Math.max(0, Math.min(state.frameCount - 1, Math.floor((t - state.first) * state.fps + 0.01)));
}

/** The frame whose own presentation time is `t` (a frame's timestamp, rounded in the file). */
function frameAtTimestamp(t) {
  return Math.max(0, Math.min(state.frameCount - 1, Math.round((t - state.first) * state.fps)));
}

function timeOfFrame(f) {
  return state.first + f / state.fps;
}

function ethogramTraces() {
  // One filled trace per syllable: rectangles [start, end) x [0, 1] separated by nulls.
  const per = new Map();
  const { starts, ends, labels, fps, first } = state;
  for (let i = 0; i < starts.length; i += 1) {
    let xs = per.get(labels[i]);
    if (!xs) { xs = []; per.set(labels[i], xs); }
    const a = first + starts[i] / fps;
    const b = first + ends[i] / fps;
    xs.push(a, b, b, a, a, null);
  }
  const traces = [];
  for (const [index, xs] of [...per.entries()].sort((p, q) => p[0] - q[0])) {
    const syllable = state.syllables.get(index) || { name: `syllable ${index}`, color: "#888" };
    const ys = new Array(xs.length);
    for (let k = 0; k < xs.length; k += 6) {
      ys[k] = 0; ys[k + 1] = 0; ys[k + 2] = 1; ys[k + 3] = 1; ys[k + 4] = 0; ys[k + 5] = null;
    }
    traces.push({
      type: "scatter", mode: "lines", x: xs, y: ys, yaxis: "y3", fill: "toself",
      fillcolor: syllable.color, line: { width: 0, color: syllable.color }, hoveron: "fills",
      name: syllable.name, hoverinfo: "name", showlegend: false, meta: { syllable: index },
    });
  }
  return traces;
}

// Names written on the bands, for the bouts wide enough to hold them at the current zoom: plain
// HTML labels laid over the figure. Anything Plotly draws (annotations, a text trace) costs a
// figure redraw (~250 ms with 5,000 bouts) each time the view changes; these cost nothing.
const MAX_LABELS = 150;

function updateBandLabels() {
  const box = document.getElementById("band-labels");
  const full = plot._fullLayout;
  if (!box || !full) return;
  const xa = full.xaxis;
  const ya = full.yaxis3;
  Object.assign(box.style, { left: `${xa._offset}px`, width: `${xa._length}px`, top: `${ya._offset}px`, height: `${ya._length}px` });
  const [a, b] = xa.range;
  const pxPerSecond = xa._length / Math.max(1e-9, b - a);
  const { starts, ends, labels, fps, first } = state;
  const spans = [];
  for (let i = 0; i < starts.length && spans.length < MAX_LABELS; i += 1) {
    const t0 = first + starts[i] / fps;
    const t1 = first + ends[i] / fps;
    if (t1 < a || t0 > b) continue;
    const name = (state.syllables.get(labels[i]) || {}).name || "";
    const width = (Math.min(t1, b) - Math.max(t0, a)) * pxPerSecond;
    if (width < name.length * 7 + 12) continue;
    const centre = (Math.max(t0, a) + Math.min(t1, b)) / 2;
    spans.push(h("span", { style: { left: `${(centre - a) * pxPerSecond}px` } }, name));
  }
  box.replaceChildren(...spans);
}

function trackTraces(tracks) {
  const traces = [];
  const timeFor = (values) => {
    if (tracks.time_s && tracks.time_s.length === values.length) return tracks.time_s;
    const n = values.length;
    return values.map((_, i) => state.first + (n > 1 ? (i / (n - 1)) * state.duration : 0));
  };
  if (tracks.speed && tracks.speed.length) {
    traces.push({ type: "scatter", mode: "lines", x: timeFor(tracks.speed), y: tracks.speed, yaxis: "y2",
      name: "speed", line: { color: "#4a5568", width: 1 }, hovertemplate: "%{y:.1f}<extra>speed</extra>", showlegend: false });
  }
  if (tracks.probability && tracks.probability.length) {
    traces.push({ type: "scatter", mode: "lines", x: timeFor(tracks.probability), y: tracks.probability, yaxis: "y",
      name: "probability", line: { color: "#2b6cb0", width: 1 }, fill: "tozeroy", fillcolor: "rgba(43,108,176,.12)",
      hovertemplate: "%{y:.2f}<extra>probability</extra>", showlegend: false });
  }
  return traces;
}

function layout() {
  const end = state.first + state.duration;
  return baseLayout({
    height: 380,
    margin: { l: 70, r: 15, t: 8, b: 40 },
    showlegend: false,
    dragmode: "zoom",
    hovermode: "closest",
    xaxis: { range: [state.first, end], autorange: false, title: { text: "time (s)" }, zeroline: false,
      showspikes: false, anchor: "y" },
    yaxis3: { domain: [0.66, 1], range: [0, 1], fixedrange: true, showticklabels: false, showgrid: false,
      zeroline: false, title: { text: "syllable" } },
    yaxis2: { domain: [0.34, 0.6], fixedrange: true, zeroline: false, title: { text: "speed" }, rangemode: "tozero" },
    yaxis: { domain: [0, 0.28], range: [0, 1.05], fixedrange: true, zeroline: false, title: { text: "probability" } },
    shapes: [cursorShape(state.first)],
  });
}

// ------------------------------------------------------------------------------------------
// Cursor: one shape, moved with Plotly.relayout; at most one relayout in flight.
// Replacing the whole `shapes` array costs ~1 ms whatever the figure holds, where editing
// `shapes[0].x0` makes Plotly recompute the figure (~300 ms with 5,000 bouts): measured in Chromium.

function cursorShape(t) {
  return { type: "line", xref: "x", yref: "paper", x0: t, x1: t, y0: 0, y1: 1,
    line: { color: "#111", width: 2 }, layer: "above" };
}

let cursorTarget = null;
let cursorBusy = false;

function moveCursor(t) {
  cursorTarget = t;
  if (!cursorBusy && plot.dataset.ready === "true") drawCursor();
}

async function drawCursor() {
  cursorBusy = true;
  try {
    while (cursorTarget !== null) {
      const t = cursorTarget;
      cursorTarget = null;
      const update = { shapes: [cursorShape(t)] };
      if (document.getElementById("follow").checked && !video.paused) {
        const [a, b] = plot._fullLayout.xaxis.range;
        const width = b - a;
        if ((t < a || t > b) && width < state.duration * 0.999) {
          update["xaxis.range"] = [t - width * 0.1, t + width * 0.9];
        }
      }
      await Plotly.relayout(plot, update);
      plot.dataset.cursorTime = String(t);
    }
  } finally {
    cursorBusy = false;
  }
}

// ------------------------------------------------------------------------------------------
// What is on screen now

const legendItems = new Map();

function showTime(t, timestamp = false) {
  const frame = timestamp ? frameAtTimestamp(t) : frameOfTime(t);
  state.frame = frame;
  document.getElementById("clock").textContent = fmtClock(t - state.first);
  document.getElementById("frame-number").textContent = String(frame);
  const bout = boutAt(frame);
  const index = bout >= 0 ? state.labels[bout] : null;
  if (index !== state.current) {
    if (state.current !== null && legendItems.has(state.current)) legendItems.get(state.current).classList.remove("current");
    state.current = index;
    const syllable = index !== null ? state.syllables.get(index) : null;
    nowLabel.textContent = syllable ? syllable.name : "";
    nowLabel.dataset.syllableName = syllable ? syllable.name : "";
    nowLabel.dataset.syllableIndex = index !== null ? String(index) : "";
    nowLabel.style.borderLeftColor = syllable ? syllable.color : "#888";
    if (index !== null && legendItems.has(index)) legendItems.get(index).classList.add("current");
  }
  moveCursor(t);
}

function seekTime(t) {
  const frame = frameOfTime(t);
  seekFrame(frame);
}

function seekFrame(frame) {
  frame = Math.max(0, Math.min(state.frameCount - 1, frame));
  // Aim inside the frame, not at its edge, so rounding never shows the previous one.
  video.currentTime = timeOfFrame(frame + 0.3);
  showTime(timeOfFrame(frame));
}

function setRate(rate) {
  video.playbackRate = rate;
  document.getElementById("rate").textContent = `${rate}×`;
}

function changeRate(step) {
  const i = RATES.findIndex((r) => r >= video.playbackRate - 1e-9);
  const next = RATES[Math.max(0, Math.min(RATES.length - 1, (i < 0 ? 3 : i) + step))];
  setRate(next);
}

function togglePlay() {
  if (video.paused) video.play().catch((err) => say(`The video cannot play: ${err.message}`, "error"));
  else video.pause();
}

// ------------------------------------------------------------------------------------------
// Playback tracking: requestVideoFrameCallback gives the presented frame's own timestamp.

function trackPlayback() {
  if ("requestVideoFrameCallback" in HTMLVideoElement.prototype) {
    const onFrame = (_now, meta) => {
      showTime(meta.mediaTime, true);
      video.requestVideoFrameCallback(onFrame);
    };
    video.requestVideoFrameCallback(onFrame);
    plot.dataset.cursorSource = "requestVideoFrameCallback";
  } else {
    video.addEventListener("timeupdate", () => showTime(video.currentTime));
    plot.dataset.cursorSource = "timeupdate";
  }
  video.addEventListener("seeked", () => { if (video.paused) showTime(timeOfFrame(frameOfTime(video.currentTime))); });
  video.addEventListener("play", () => { document.getElementById("play").textContent = "❚❚ Pause"; });
  video.addEventListener("pause", () => { document.getElementById("play").textContent = "▶ Play"; });
  video.addEventListener("ratechange", () => { document.getElementById("rate").textContent = `${video.playbackRate}×`; });
}

// ------------------------------------------------------------------------------------------
// Mouse on the figure: drag in the ethogram band scrubs; a click anywhere seeks; dragging the
// tracks zooms (Plotly's own box zoom, x only).

function plotGeometry(event) {
  const full = plot._fullLayout;
  const box = plot.getBoundingClientRect();
  const xa = full.xaxis;
  const ya = full.yaxis3;
  const px = event.clientX - box.left - xa._offset;
  const py = event.clientY - box.top;
  return {
    t: xa.p2l(Math.max(0, Math.min(xa._length, px))),
    inX: px >= 0 && px <= xa._length,
    inBand: py >= ya._offset && py <= ya._offset + ya._length,
    inPlot: py >= full._size.t && py <= full._size.t + full._size.h,
  };
}

function installMouse() {
  let scrubbing = false;
  let down = null;
  plot.addEventListener("mousedown", (event) => {
    if (event.button !== 0 || event.target.closest(".modebar")) return;
    const g = plotGeometry(event);
    if (!g.inX || !g.inPlot) return;
    if (g.inBand) {
      scrubbing = true;
      event.stopPropagation();
      event.preventDefault();
      video.pause();
      seekTime(g.t);
    } else {
      down = { x: event.clientX, y: event.clientY };
    }
  }, true);
  window.addEventListener("mousemove", (event) => {
    if (!scrubbing) return;
    seekTime(plotGeometry(event).t);
  });
  window.addEventListener("mouseup", (event) => {
    if (scrubbing) {
      scrubbing = false;
      seekTime(plotGeometry(event).t);
      return;
    }
    if (down && Math.hypot(event.clientX - down.x, event.clientY - down.y) < 4) {
      const g = plotGeometry(event);
      if (g.inX) seekTime(g.t);
    }
    down = null;
  }, true);
}

function installKeys() {
  document.addEventListener("keydown", (event) => {
    const target = event.target;
    const typing = target && (target.tagName === "TEXTAREA" || target.tagName === "SELECT" || target.isContentEditable ||
      (target.tagName === "INPUT" && !["checkbox", "radio", "button", "range"].includes(target.type)));
    if (typing) return;
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    switch (event.key) {
      case "ArrowLeft":
        video.pause(); seekFrame(state.frame - 1); break;
      case "ArrowRight":
        video.pause(); seekFrame(state.frame + 1); break;
      case "ArrowUp": case "]":
        changeRate(+1); break;
      case "ArrowDown": case "[":
        changeRate(-1); break;
      case " ": case "k":
        togglePlay(); break;
      default:
        return;
    }
    event.preventDefault();
  });
  // Buttons do not keep the focus, so space and the arrows stay the player's keys after a click.
  document.querySelectorAll(".controls button").forEach((b) => b.addEventListener("mousedown", (e) => e.preventDefault()));
  document.getElementById("play").addEventListener("click", togglePlay);
  document.getElementById("step-back").addEventListener("click", () => { video.pause(); seekFrame(state.frame - 1); });
  document.getElementById("step-forward").addEventListener("click", () => { video.pause(); seekFrame(state.frame + 1); });
  document.getElementById("slower").addEventListener("click", () => changeRate(-1));
  document.getElementById("faster").addEventListener("click", () => changeRate(+1));
}

// ------------------------------------------------------------------------------------------
// Legend: each syllable of this session with its share of frames; click jumps to its next bout.

function renderLegend() {
  const frames = new Map();
  const bouts = new Map();
  for (let i = 0; i < state.starts.length; i += 1) {
    const k = state.labels[i];
    frames.set(k, (frames.get(k) || 0) + state.ends[i] - state.starts[i]);
    bouts.set(k, (bouts.get(k) || 0) + 1);
  }
  const list = document.getElementById("legend");
  const items = [...state.syllables.values()].sort((a, b) => (frames.get(b.index) || 0) - (frames.get(a.index) || 0));
  list.replaceChildren(...items.map((s) => {
    const share = state.frameCount ? (100 * (frames.get(s.index) || 0)) / state.frameCount : 0;
    const li = h("li", { dataset: { syllableIndex: s.index }, style: { cursor: "pointer" }, title: `${bouts.get(s.index) || 0} bouts` },
      h("span", { class: "swatch", style: { background: s.color } }),
      h("span", { "data-syllable-name": s.name }, s.name),
      h("span", { class: "muted small num", style: { marginLeft: "auto" } }, `${share.toFixed(1)}%`),
      state.model ? h("a", { href: `/models/${state.model.id}/syllables#syllable-${s.index}`, class: "small",
        title: "example clips of this syllable", onclick: (e) => e.stopPropagation() }, "clips") : null);
    li.addEventListener("click", () => jumpToNext(s.index));
    legendItems.set(s.index, li);
    return li;
  }));
  if (!items.length) list.append(h("li", { class: "muted" }, "Not segmented yet."));
}

function jumpToNext(index) {
  const n = state.starts.length;
  const from = boutAt(state.frame);
  for (let k = 1; k <= n; k += 1) {
    const i = ((from < 0 ? 0 : from) + k) % n;
    if (state.labels[i] === index) {
      video.pause();
      seekFrame(state.starts[i]);
      return;
    }
  }
}

// ------------------------------------------------------------------------------------------

/** The session's date and notes, saved as they change. */
function installSessionEdits() {
  const saved = document.getElementById("session-saved");
  const save = async (field, value) => {
    saved.textContent = "saving…";
    try {
      await api("PATCH", `/api/sessions/${SESSION}`, { [field]: value });
      saved.textContent = "saved";
    } catch (err) {
      saved.textContent = `not saved: ${err.message}`;
    }
  };
  const date = document.getElementById("recorded-on");
  date.addEventListener("change", () => { if (date.value) save("recorded_on", date.value); });
  const notes = document.getElementById("session-notes");
  notes.addEventListener("change", () => save("notes", notes.value));
  const scale = document.getElementById("px-per-cm");
  scale.addEventListener("change", () => {
    const value = Number(scale.value);
    if (!scale.value) save("clear_px_per_cm", true);
    else if (value > 0) save("px_per_cm", value);
    else saved.textContent = "the scale must be a positive number of pixels per cm";
  });
}

async function main() {
  installSessionEdits();
  const t0 = performance.now();
  let data;
  try {
    // The page started this request in its <head>, while plotly.js loaded.
    data = await readJson(await (window.viewerResponse || fetch(`/api/sessions/${SESSION}/viewer`)));
  } catch (err) {
    say(`Could not load this session: ${err.message}`, "error");
    return;
  }
  state.fps = data.fps || 30;
  state.first = data.first_time_s || 0;
  state.frameCount = data.frame_count || 0;
  state.duration = data.duration_s || state.frameCount / state.fps;
  state.starts = Int32Array.from(data.bouts.start);
  state.ends = Int32Array.from(data.bouts.end);
  state.labels = Int32Array.from(data.bouts.syllable);
  state.syllables = new Map(data.syllables.map((s) => [s.index, s]));
  state.model = data.model;
  window.viewerState = state; // for people poking at the console, and for the browser tests

  if (data.model) {
    document.getElementById("model-label").textContent = ` · segmented by model version ${data.model.version}`;
  } else {
    say("This session is not segmented yet: the ethogram appears once a model has been fitted and applied.");
  }
  document.getElementById("fact-bouts").textContent = state.starts.length.toLocaleString();
  const flags = qualityFlags(data.quality);
  document.getElementById("fact-quality").textContent = data.quality ? (flags.length ? flags.join("; ") : "good") : "–";

  if (data.video_url) {
    if (!video.getAttribute("src")) video.src = data.video_url;
  } else {
    say("The browser copy of this video is not ready yet; it appears when ingest finishes.");
  }
  renderLegend();
  trackPlayback();
  installKeys();

  await Plotly.newPlot(plot, [...ethogramTraces(), ...trackTraces(data.tracks || {})], layout(), {
    ...CONFIG, scrollZoom: true, doubleClick: "reset", modeBarButtonsToRemove: ["select2d", "lasso2d", "autoScale2d"],
  });
  installMouse();
  updateBandLabels();
  let resizeTimer = null;
  window.addEventListener("resize", () => { clearTimeout(resizeTimer); resizeTimer = setTimeout(updateBandLabels, 150); });
  plot.on("plotly_relayout", (change) => {
    if (Object.keys(change).some((k) => k.startsWith("xaxis"))) updateBandLabels();
  });
  plot.dataset.ready = "true";
  plot.dataset.readyMs = String(Math.round(performance.now() - t0)); // data + figure
  plot.dataset.sinceNavigationMs = String(Math.round(performance.now())); // the whole page
  showTime(state.first);
}

initSessionLabels(SESSION);
main();

// Experiment page: sessions with live job progress, uploads, CSV assignment, cohorts and
// animals, fitting a model with its live training curve.
import { ApiError, api, fmtBytes, fmtDuration, h, pageData, pct, sleep } from "./common.js";
import { Upload, runQueue } from "./upload.js";
import { qualityFlags, trainingCurve } from "./charts.js";
import { initExperimentAgreement } from "./agreement.js";

const { experiment_id: EXP } = pageData();
const FAST_POLL_MS = 1500;
const SLOW_POLL_MS = 10000;

// ------------------------------------------------------------------------------------------
// The experiment's name and description

const experimentForm = document.getElementById("experiment-form");
document.getElementById("edit-experiment").addEventListener("click", () => experimentForm.classList.toggle("hidden"));
document.getElementById("experiment-cancel").addEventListener("click", () => experimentForm.classList.add("hidden"));
experimentForm.addEventListener("submit", async (e) => {
  e.preventDefault();
  try {
    const updated = await api("PATCH", `/api/experiments/${EXP}`, {
      name: document.getElementById("experiment-name-input").value.trim(),
      description: document.getElementById("experiment-description-input").value.trim(),
    });
    document.getElementById("experiment-title").textContent = updated.name;
    document.getElementById("experiment-description").textContent = updated.description;
    document.title = `${updated.name} · Syllabary`;
    experimentForm.classList.add("hidden");
  } catch (err) {
    alert(`Could not save: ${err.message}`);
  }
});

// ------------------------------------------------------------------------------------------
// Sessions table

let sessions = [];
let sortKey = "created";
let sortDir = 1;
const etaSamples = new Map(); // job id -> {t, p} first seen while running
const rowSignature = new Map(); // session id -> JSON of what the row shows

const JOB_NAMES = { probe: "Probe", ingest: "Ingest", fit: "Fit", segment: "Segment", clips: "Clips" };

function sessionActive(s) {
  return s.status === "queued" || s.status === "processing" ||
    (s.jobs || []).some((j) => j.status === "queued" || j.status === "running");
}

function etaText(job) {
  if (job.status !== "running" || /\bleft\b/.test(job.progress_message || "")) return "";
  const now = performance.now() / 1000;
  const first = etaSamples.get(job.id);
  if (!first) {
    etaSamples.set(job.id, { t: now, p: job.progress || 0 });
    return "";
  }
  const dp = (job.progress || 0) - first.p;
  const dt = now - first.t;
  if (dp <= 0.005 || dt < 2) return "estimating…";
  const left = ((1 - job.progress) * dt) / dp;
  return `about ${fmtDuration(left)} left`;
}

function jobView(job) {
  const state = job.status === "succeeded" ? "done" : job.status === "failed" ? "failed" : "";
  const progress = job.status === "succeeded" ? 1 : job.progress || 0;
  const el = h("div", { class: "job", dataset: { jobId: job.id, jobKind: job.kind, jobStatus: job.status } },
    h("div", { class: "line" },
      h("span", { class: "kind" }, JOB_NAMES[job.kind] || job.kind),
      h("span", { class: `badge ${job.status}` }, job.status === "running" ? pct(progress) : job.status),
      h("span", { class: "msg" }, job.status === "running" || job.status === "queued" ? job.progress_message || "" : ""),
      h("span", { class: "eta" }, etaText(job))),
    job.status === "running"
      ? h("div", { class: `progress ${state}`, role: "progressbar", "aria-valuenow": Math.round(progress * 100) },
        h("div", { class: "bar", style: { width: pct(progress) } }))
      : null);
  if (job.status === "failed") {
    el.append(
      h("div", { class: "error-text", "data-job-error": "" }, job.error || "failed without a message"),
      h("button", { class: "small secondary", "data-retry": job.id, onclick: () => retryJob(job.id) },
        `Retry ${JOB_NAMES[job.kind] || job.kind}`));
  }
  return el;
}

async function retryJob(id) {
  let job = null;
  try {
    job = await api("POST", `/api/jobs/${id}/retry`);
  } catch (err) {
    alert(`Could not retry: ${err.message}`);
  }
  etaSamples.delete(id);
  if (job && job.kind === "fit") {
    watchedFitJob = null;
    watchFit(id);
  }
  refreshSessions();
}

function jobsToShow(s) {
  // The latest job of each kind: a retried or repeated step shows once.
  const latest = new Map();
  for (const job of s.jobs || []) latest.set(job.kind, job);
  return [...latest.values()];
}

function sessionRow(s) {
  const thumb = s.thumbnail_url
    ? h("img", { src: s.thumbnail_url, alt: "", loading: "lazy" })
    : h("div", { class: "none" });
  const flags = qualityFlags(s.quality);
  const ready = s.status === "ready" || (s.jobs || []).some((j) => j.kind === "ingest" && j.status === "succeeded");
  const segmented = (s.jobs || []).some((j) => j.kind === "segment" && j.status === "succeeded");
  return h("tr", { dataset: { sessionId: s.id, status: s.status } },
    h("td", { class: "thumb" }, thumb),
    h("td", { "data-sort": s.original_filename.toLowerCase() },
      ready ? h("a", { href: `/sessions/${s.id}`, class: "session-link" }, s.original_filename) : s.original_filename,
      h("div", { class: "small muted" },
        [fmtBytes(s.size_bytes), s.width ? `${s.width}×${s.height}` : null,
          s.fps ? `${Math.round(s.fps * 100) / 100} fps` : null,
          s.frame_count ? `${s.frame_count.toLocaleString()} frames` : null].filter(Boolean).join(" · ")),
      flags.map((f) => h("div", { class: "flag" }, `⚠ ${f}`)),
      s.fit_problem ? h("div", { class: "flag fit-problem", title: "fit it anyway from the API: include_flagged" },
        `Left out of fits: ${s.fit_problem}`) : null),
    h("td", { "data-sort": (s.subject || "").toLowerCase(), class: "subject-cell" },
      s.subject || h("span", { class: "muted" }, "–"), " ",
      h("button", { class: "small secondary edit-animal", title: "assign this video to an animal and cohort",
        onclick: (e) => editAnimal(e.target.closest("tr"), s) }, "✎")),
    h("td", { "data-sort": (s.cohort || "").toLowerCase(), class: "cohort-cell" }, s.cohort || h("span", { class: "muted" }, "–")),
    h("td", { class: "num", "data-sort": s.duration_s ?? -1 }, fmtDuration(s.duration_s)),
    h("td", { "data-sort": s.status }, h("span", { class: `badge ${s.status}`, "data-session-status": s.status }, s.status)),
    h("td", {}, jobsToShow(s).map(jobView)),
    h("td", { class: "small" },
      ready ? h("a", { class: "button small", href: `/sessions/${s.id}` }, "View") : null,
      segmented ? h("div", { style: { marginTop: ".3rem" } },
        h("a", { href: `/api/sessions/${s.id}/ethogram.csv`, download: "" }, "ethogram.csv"), " ",
        h("a", { href: `/api/sessions/${s.id}/bouts.csv`, download: "" }, "bouts.csv")) : null));
}

/** Turn a row's subject and cohort cells into inputs; the row is kept out of refreshes meanwhile. */
function editAnimal(row, s) {
  row.dataset.editing = "1";
  const subject = h("input", { type: "text", value: s.subject || "", size: 10, placeholder: "subject", class: "edit-subject" });
  const cohort = h("input", { type: "text", value: s.cohort || "", size: 10, placeholder: "cohort", list: "cohort-options", class: "edit-cohort" });
  const done = () => { delete row.dataset.editing; rowSignature.delete(s.id); renderSessions(); };
  const save = async () => {
    try {
      await api("PATCH", `/api/sessions/${s.id}`, { subject: subject.value.trim(), cohort: cohort.value.trim() });
      done();
      refreshSessions();
      refreshCohortsAndSubjects();
    } catch (err) {
      alert(`Could not assign: ${err.message}`);
    }
  };
  for (const input of [subject, cohort]) {
    input.addEventListener("keydown", (e) => { if (e.key === "Enter") save(); if (e.key === "Escape") done(); });
  }
  row.querySelector(".subject-cell").replaceChildren(subject);
  row.querySelector(".cohort-cell").replaceChildren(cohort, " ",
    h("button", { class: "small save-animal", onclick: save }, "Save"), " ",
    h("button", { class: "small secondary", onclick: done }, "✕"));
  subject.focus();
}

function sortValue(s) {
  switch (sortKey) {
    case "file": return s.original_filename.toLowerCase();
    case "subject": return (s.subject || "").toLowerCase();
    case "cohort": return (s.cohort || "").toLowerCase();
    case "duration": return s.duration_s ?? -1;
    case "status": return s.status;
    default: return s.id;
  }
}

function renderSessions() {
  const body = document.querySelector("#sessions tbody");
  const words = document.getElementById("session-search").value.toLowerCase().split(/\s+/).filter(Boolean);
  const shown = sessions
    .filter((s) => {
      const text = `${s.original_filename} ${s.subject || ""} ${s.cohort || ""} ${s.status}`.toLowerCase();
      return words.every((w) => text.includes(w));
    })
    .sort((a, b) => {
      const ka = sortValue(a);
      const kb = sortValue(b);
      return (ka < kb ? -1 : ka > kb ? 1 : 0) * sortDir;
    });
  const existing = new Map([...body.rows].map((r) => [Number(r.dataset.sessionId), r]));
  const rows = shown.map((s) => {
    const running = (s.jobs || []).some((j) => j.status === "running");
    const signature = JSON.stringify(s);
    const old = existing.get(s.id);
    if (old && old.dataset.editing) return old;
    if (old && !running && rowSignature.get(s.id) === signature) return old;
    rowSignature.set(s.id, signature);
    return sessionRow(s);
  });
  body.replaceChildren(...rows);
  document.getElementById("no-sessions").classList.toggle("hidden", sessions.length > 0);
  const counts = {};
  for (const s of sessions) counts[s.status] = (counts[s.status] || 0) + 1;
  document.getElementById("sessions-summary").textContent = sessions.length
    ? `(${sessions.length}: ${Object.entries(counts).map(([k, v]) => `${v} ${k}`).join(", ")})`
    : "";
  renderFitSessions();
}

document.querySelectorAll("#sessions th.sortable").forEach((th) => {
  th.addEventListener("click", () => {
    const key = th.dataset.key;
    sortDir = sortKey === key ? -sortDir : 1;
    sortKey = key;
    document.querySelectorAll("#sessions th.sortable").forEach((o) => o.classList.remove("sort-asc", "sort-desc"));
    th.classList.add(sortDir > 0 ? "sort-asc" : "sort-desc");
    renderSessions();
  });
});
document.getElementById("session-search").addEventListener("input", renderSessions);

let pollTimer = null;
let refreshing = false;
async function refreshSessions() {
  if (refreshing) return;
  refreshing = true;
  clearTimeout(pollTimer);
  let busy = false;
  try {
    sessions = await api("GET", `/api/experiments/${EXP}/sessions`);
    renderSessions();
    busy = sessions.some(sessionActive) || uploadsRunning > 0;
    busy = (await refreshModels()) || busy;
  } catch (err) {
    console.warn("could not refresh", err);
  } finally {
    refreshing = false;
    pollTimer = setTimeout(refreshSessions, busy ? FAST_POLL_MS : SLOW_POLL_MS);
  }
}

// ------------------------------------------------------------------------------------------
// Uploads

const dropzone = document.getElementById("dropzone");
const fileInput = document.getElementById("file-input");
const list = document.getElementById("upload-list");
const pending = []; // Upload objects not started yet
let uploadsRunning = 0;

function addFiles(files) {
  for (const file of files) {
    const upload = new Upload(file, { experimentId: EXP, onChange: (u) => updateUploadRow(u) });
    const subject = h("input", { type: "text", placeholder: "subject (animal)", class: "upload-subject", maxlength: 200 });
    const cohort = h("input", { type: "text", placeholder: "cohort", class: "upload-cohort", maxlength: 200, list: "cohort-options" });
    const bar = h("div", { class: "bar", style: { width: "0%" } });
    const state = h("div", { class: "state" }, "waiting");
    const remove = h("button", { class: "small secondary", title: "remove from the list" }, "✕");
    const row = h("div", { class: "upload-item", dataset: { filename: file.name, state: "waiting" } },
      h("div", {}, h("div", { class: "name", title: file.name }, file.name), h("div", { class: "state" }, fmtBytes(file.size))),
      subject, cohort,
      h("div", {}, h("div", { class: "progress upload-progress", role: "progressbar", "aria-valuenow": 0 }, bar), state),
      remove);
    upload.row = row;
    upload.inputs = { subject, cohort };
    upload.bar = bar;
    upload.stateEl = state;
    remove.addEventListener("click", () => {
      if (upload.state !== "waiting" && upload.state !== "done" && upload.state !== "duplicate" && upload.state !== "failed") return;
      const i = pending.indexOf(upload);
      if (i >= 0) pending.splice(i, 1);
      row.remove();
    });
    pending.push(upload);
    list.append(row);
  }
  document.getElementById("upload-actions").classList.toggle("hidden", list.children.length === 0);
}

function updateUploadRow(u) {
  const fraction = u.fraction;
  u.bar.style.width = pct(fraction);
  const progress = u.bar.parentNode;
  progress.setAttribute("aria-valuenow", String(Math.round(fraction * 100)));
  progress.classList.toggle("done", u.state === "done" || u.state === "duplicate");
  progress.classList.toggle("failed", u.state === "failed");
  u.row.dataset.state = u.state;
  let text = u.state;
  if (u.state === "uploading") {
    const elapsed = (performance.now() - u.startedAt) / 1000;
    const rate = (u.sent + u.inFlight) / Math.max(elapsed, 0.001);
    const left = rate > 0 ? (u.file.size - u.sent - u.inFlight) / rate : NaN;
    text = `${pct(fraction)} of ${fmtBytes(u.file.size)} · ${fmtBytes(rate)}/s${Number.isFinite(left) && fraction > 0.02 ? ` · ${fmtDuration(left)} left` : ""}`;
  } else if (u.state === "done") {
    text = "uploaded: processing starts by itself";
  } else if (u.state === "duplicate") {
    text = "already uploaded: the existing video is kept, not stored twice";
  } else if (u.message) {
    text = `${u.state}: ${u.message}`;
  }
  u.stateEl.textContent = text;
  u.stateEl.classList.toggle("error-text", u.state === "failed");
}

async function startUploads() {
  const batch = pending.splice(0, pending.length);
  if (!batch.length) return;
  for (const u of batch) {
    u.subject = u.inputs.subject.value.trim();
    u.cohort = u.inputs.cohort.value.trim();
    u.inputs.subject.disabled = true;
    u.inputs.cohort.disabled = true;
  }
  uploadsRunning += batch.length;
  const wrapped = batch.map((u) => ({
    start: async () => {
      await u.start();
      uploadsRunning -= 1;
      refreshSessions();
      if (u.state === "failed") {
        // Let the person fix the subject or cohort and try again.
        u.inputs.subject.disabled = false;
        u.inputs.cohort.disabled = false;
        u.state = "waiting";
        u.sent = 0;
        pending.push(u);
        u.row.dataset.state = "failed";
      }
    },
  }));
  refreshSessions();
  await runQueue(wrapped, 2);
  refreshCohortsAndSubjects();
}

dropzone.addEventListener("click", () => fileInput.click());
dropzone.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") fileInput.click(); });
fileInput.addEventListener("change", () => { addFiles(fileInput.files); fileInput.value = ""; });
["dragenter", "dragover"].forEach((t) => dropzone.addEventListener(t, (e) => { e.preventDefault(); dropzone.classList.add("over"); }));
["dragleave", "drop"].forEach((t) => dropzone.addEventListener(t, (e) => { e.preventDefault(); dropzone.classList.remove("over"); }));
dropzone.addEventListener("drop", (e) => addFiles(e.dataTransfer.files));
document.getElementById("upload-start").addEventListener("click", startUploads);
document.getElementById("upload-clear").addEventListener("click", () => {
  for (const row of [...list.children]) {
    if (row.dataset.state === "done" || row.dataset.state === "duplicate") row.remove();
  }
  document.getElementById("upload-actions").classList.toggle("hidden", list.children.length === 0);
});
window.addEventListener("beforeunload", (e) => {
  if (uploadsRunning > 0) { e.preventDefault(); e.returnValue = ""; }
});

// Batch assignment from a CSV
document.getElementById("assign-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const box = document.getElementById("assign-result");
  const file = document.getElementById("assign-file").files[0];
  if (!file) return;
  const form = new FormData();
  form.append("file", file, file.name);
  box.className = "notice";
  try {
    const result = await api("POST", `/api/experiments/${EXP}/assignments`, form);
    const n = result && (result.assigned ?? result.updated ?? (Array.isArray(result) ? result.length : null));
    const missing = result && (result.unmatched || result.not_found || []);
    box.textContent = `Assigned ${n ?? "the"} session${n === 1 ? "" : "s"}.` +
      (missing && missing.length ? ` No session for: ${missing.join(", ")}.` : "");
    box.classList.add("ok");
  } catch (err) {
    box.textContent = `Could not assign: ${err.message}`;
    box.classList.add("error");
  }
  refreshSessions();
  refreshCohortsAndSubjects();
});

// ------------------------------------------------------------------------------------------
// Cohorts and animals

let cohorts = [];
async function refreshCohortsAndSubjects() {
  const note = document.getElementById("animals-note");
  try {
    [cohorts] = await Promise.all([api("GET", `/api/experiments/${EXP}/cohorts`)]);
  } catch (err) {
    cohorts = [];
    if (err instanceof ApiError && err.status === 404) note.textContent = "Cohorts cannot be listed on this server yet.";
  }
  const datalist = document.getElementById("cohort-options") || document.body.appendChild(h("datalist", { id: "cohort-options" }));
  datalist.replaceChildren(...cohorts.map((c) => h("option", { value: c.name })));
  document.getElementById("cohorts").replaceChildren(
    ...(cohorts.length ? cohorts.map((c) => h("span", { class: "badge queued", "data-cohort": c.name }, c.name,
      c.subject_count != null ? ` · ${c.subject_count}` : "")) : [h("span", { class: "muted" }, "No cohorts yet.")]));
  let subjects = [];
  try {
    subjects = await api("GET", `/api/experiments/${EXP}/subjects`);
  } catch { /* shown as empty */ }
  const body = document.querySelector("#subjects tbody");
  // Never redraw under someone's typing: an edit in progress would be lost.
  if (body.contains(document.activeElement)) return;
  body.replaceChildren(...subjects.map(subjectRow));
  if (!subjects.length) body.append(h("tr", {}, h("td", { colspan: 6, class: "empty" }, "Animals appear here when videos name them.")));
}

function subjectRow(s) {
  const save = async (field, value) => {
    try {
      await api("PATCH", `/api/subjects/${s.id}`, { [field]: value });
      row.classList.remove("error");
      refreshSessions();
    } catch (err) {
      alert(`Could not save ${field}: ${err.message}`);
    }
  };
  const cohortSelect = h("select", { "data-field": "cohort" },
    h("option", { value: "" }, "–"),
    cohorts.map((c) => h("option", { value: c.name, selected: c.name === s.cohort }, c.name)));
  cohortSelect.addEventListener("change", () => save("cohort", cohortSelect.value || null));
  const text = (field, size) => {
    const input = h("input", { type: "text", value: s[field] || "", size, "data-field": field });
    input.addEventListener("change", () => save(field, input.value));
    return h("td", {}, input);
  };
  const row = h("tr", { dataset: { subjectId: s.id } },
    h("td", {}, h("strong", {}, s.name)), h("td", {}, cohortSelect),
    text("sex", 3), text("age", 4), text("genotype", 8), text("notes", 12));
  return row;
}

document.getElementById("cohort-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const input = document.getElementById("cohort-name");
  try {
    await api("POST", `/api/experiments/${EXP}/cohorts`, { name: input.value.trim() });
    input.value = "";
  } catch (err) {
    alert(`Could not add the cohort: ${err.message}`);
  }
  refreshCohortsAndSubjects();
});

// ------------------------------------------------------------------------------------------
// Models and fitting

let watchedFitJob = null;

function renderFitSessions() {
  const box = document.getElementById("fit-sessions");
  const ingested = sessions.filter((s) => (s.jobs || []).some((j) => j.kind === "ingest" && j.status === "succeeded"));
  const known = new Set([...box.querySelectorAll("input")].map((i) => Number(i.value)));
  if (ingested.length === known.size && ingested.every((s) => known.has(s.id))) return;
  const checked = new Set([...box.querySelectorAll("input:checked")].map((i) => Number(i.value)));
  box.replaceChildren(...(ingested.length ? ingested.map((s) =>
    h("label", { style: { display: "block", color: "inherit" } },
      h("input", { type: "checkbox", value: s.id, checked: !known.has(s.id) || checked.has(s.id) }), " ",
      s.original_filename, s.subject ? ` (${s.subject}${s.cohort ? `, ${s.cohort}` : ""})` : ""))
    : [h("span", { class: "muted" }, "No ingested session yet.")]));
}

function modelRow(m) {
  return h("div", { class: "row", style: { padding: ".3rem 0", borderBottom: "1px solid var(--line)" }, dataset: { modelId: m.id } },
    h("strong", {}, `Version ${m.version}`),
    h("span", { class: `badge ${m.status === "ready" ? "ready" : m.status === "failed" ? "failed" : "processing"}` }, m.status),
    h("span", { class: "small muted" },
      [m.states_used != null ? `${m.states_used} of ${m.states} states used` : `${m.states} states`,
        m.median_duration_s != null ? `median bout ${fmtDuration(m.median_duration_s)}` : null,
        `${m.session_ids.length} session${m.session_ids.length === 1 ? "" : "s"}`].filter(Boolean).join(" · ")),
    m.status === "ready"
      ? h("span", { style: { marginLeft: "auto" } },
        h("a", { href: `/models/${m.id}`, class: "model-link" }, "Model"), " · ",
        h("a", { href: `/models/${m.id}/syllables`, class: "gallery-link" }, "Syllables"))
      : null);
}

/** Returns true while a fit is running (so the page keeps polling fast). */
async function refreshModels() {
  let models = [];
  try {
    models = await api("GET", `/api/experiments/${EXP}/models`);
  } catch {
    return false;
  }
  const box = document.getElementById("models");
  box.replaceChildren(...(models.length ? [...models].sort((a, b) => b.version - a.version).map(modelRow)
    : [h("p", { class: "empty" }, "No model yet. Fit one when the videos are ingested: it learns the syllables of this experiment.")]));
  const running = models.find((m) => m.job_id && m.status !== "ready" && m.status !== "failed");
  // The newest model, while it trains or when it failed (its reason and a Retry button).
  const newest = [...models].sort((a, b) => b.version - a.version)[0];
  if (newest && newest.job_id && newest.status !== "ready" && watchedFitJob !== newest.job_id) watchFit(newest.job_id);
  return Boolean(running);
}

async function watchFit(jobId) {
  watchedFitJob = jobId;
  const live = document.getElementById("fit-live");
  live.classList.remove("hidden");
  const jobBox = document.getElementById("fit-job");
  while (watchedFitJob === jobId) {
    let job;
    try {
      job = await api("GET", `/api/jobs/${jobId}`);
    } catch {
      await sleep(2000);
      continue;
    }
    jobBox.replaceChildren(jobView(job));
    if (window.Plotly && (job.metrics || []).length) trainingCurve(document.getElementById("training-curve"), job.metrics);
    if (job.status === "succeeded" || job.status === "failed") {
      // A quick fit may end before its live figures reach the job: the model keeps the curve.
      const models = await api("GET", `/api/experiments/${EXP}/models`).catch(() => []);
      const model = models.find((m) => m.job_id === jobId);
      if (window.Plotly && model && (model.training_curve || []).length) {
        trainingCurve(document.getElementById("training-curve"), model.training_curve);
      }
      refreshModels();
      break;
    }
    await sleep(FAST_POLL_MS);
  }
}

document.getElementById("fit-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const errorBox = document.getElementById("fit-error");
  errorBox.classList.add("hidden");
  const ids = [...document.querySelectorAll("#fit-sessions input:checked")].map((i) => Number(i.value));
  const body = {};
  const states = document.getElementById("fit-states").value;
  const epochs = document.getElementById("fit-epochs").value;
  if (states) body.states = Number(states);
  if (epochs) body.epochs = Number(epochs);
  if (ids.length) body.session_ids = ids;
  try {
    const job = await api("POST", `/api/experiments/${EXP}/fit`, body);
    document.getElementById("fit-details").open = false;
    watchFit(job.id);
    refreshSessions();
  } catch (err) {
    errorBox.textContent = `Could not start fitting: ${err.message}`;
    errorBox.classList.remove("hidden");
  }
});

document.addEventListener("visibilitychange", () => { if (!document.hidden) refreshSessions(); });
refreshSessions();
refreshCohortsAndSubjects();
initExperimentAgreement(EXP);

// Resumable chunked uploads: one file at a time per Upload, chunk by chunk with Content-Range.
//
// POST /api/experiments/{id}/uploads {filename, size, subject, cohort} -> {id, received_bytes, chunk_size}
// PUT  /api/uploads/{id} (one chunk, Content-Range: bytes START-END/TOTAL) -> {received_bytes, status, session_id}
// GET  /api/uploads/{id} -> {received_bytes, ...}: after a dropped connection, ask and continue there.
// The upload id is remembered in localStorage so re-choosing the same file after a reload resumes it.
// When the server has no resumable route (404/405 on create), falls back to the one-request
// multipart POST /api/experiments/{id}/sessions, still with a progress bar.
import { ApiError, api, csrfHeaders, describeError, sleep } from "./common.js";

const DEFAULT_CHUNK = 8 * 1024 * 1024;
const MAX_RETRIES = 8;

function fileKey(experimentId, file) {
  return `syllabary-upload:${experimentId}:${file.name}:${file.size}:${file.lastModified}`;
}

/** XHR PUT/POST with upload progress; resolves {status, data}; rejects on network failure. */
function xhrSend(method, url, body, headers, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(method, url);
    const all = { ...csrfHeaders(method), ...(headers || {}) };
    for (const [k, v] of Object.entries(all)) xhr.setRequestHeader(k, v);
    xhr.upload.onprogress = (e) => onProgress && onProgress(e.loaded);
    xhr.onload = () => {
      let data = null;
      try { data = xhr.responseText ? JSON.parse(xhr.responseText) : null; } catch { data = xhr.responseText; }
      resolve({ status: xhr.status, statusText: xhr.statusText, data });
    };
    xhr.onerror = () => reject(new Error("network error"));
    xhr.ontimeout = () => reject(new Error("timed out"));
    xhr.onabort = () => reject(new Error("aborted"));
    xhr.send(body);
  });
}

export class Upload {
  /**
   * @param {File} file
   * @param {{experimentId:number, subject?:string, cohort?:string, onChange?:(u:Upload)=>void}} opts
   */
  constructor(file, opts) {
    this.file = file;
    this.experimentId = opts.experimentId;
    this.subject = opts.subject || "";
    this.cohort = opts.cohort || "";
    this.onChange = opts.onChange || (() => {});
    this.sent = 0; // bytes the server confirmed
    this.inFlight = 0; // bytes of the current chunk sent so far
    this.state = "waiting"; // waiting | uploading | retrying | done | duplicate | failed
    this.message = "";
    this.sessionId = null;
    this.id = null;
    this.startedAt = null;
  }

  get fraction() {
    if (this.state === "done" || this.state === "duplicate") return 1;
    return this.file.size ? Math.min(1, (this.sent + this.inFlight) / this.file.size) : 0;
  }

  set(state, message = "") {
    this.state = state;
    this.message = message;
    this.onChange(this);
  }

  async start() {
    this.startedAt = performance.now();
    this.set("uploading", "starting");
    try {
      const created = await this.create();
      if (created === null) return await this.simpleUpload();
      await this.sendChunks(created.chunk_size || DEFAULT_CHUNK);
    } catch (err) {
      this.set("failed", err.message);
    }
  }

  async create() {
    const key = fileKey(this.experimentId, this.file);
    const remembered = localStorage.getItem(key);
    if (remembered) {
      try {
        const state = await api("GET", `/api/uploads/${remembered}`);
        if (state.status === "receiving" || state.status === "storing") {
          this.id = remembered;
          this.sent = state.received_bytes || 0;
          return state;
        }
      } catch { /* forgotten by the server: start again */ }
      localStorage.removeItem(key);
    }
    let created;
    try {
      created = await api("POST", `/api/experiments/${this.experimentId}/uploads`, {
        filename: this.file.name,
        size: this.file.size,
        subject: this.subject || null,
        cohort: this.cohort || null,
      });
    } catch (err) {
      if (err instanceof ApiError && (err.status === 404 || err.status === 405) && !/experiment/i.test(err.message)) {
        return null; // no resumable route on this server
      }
      throw err;
    }
    this.id = created.id;
    this.sent = created.received_bytes || 0;
    localStorage.setItem(key, this.id);
    return created;
  }

  async sendChunks(chunkSize) {
    const size = this.file.size;
    let failures = 0;
    while (true) {
      const start = this.sent;
      const end = Math.min(size, start + chunkSize); // exclusive
      const blob = this.file.slice(start, end);
      const range = size === 0 ? "bytes */0" : `bytes ${start}-${end - 1}/${size}`;
      let answer;
      try {
        answer = await xhrSend("PUT", `/api/uploads/${this.id}`, blob,
          { "Content-Range": range, "Content-Type": "application/octet-stream" },
          (loaded) => { this.inFlight = Math.min(loaded, end - start); this.onChange(this); });
      } catch (err) {
        answer = { status: 0, data: null, statusText: err.message };
      }
      this.inFlight = 0;
      if (answer.status >= 200 && answer.status < 300) {
        failures = 0;
        const data = answer.data || {};
        this.sent = data.received_bytes ?? end;
        if (data.status === "done" || data.status === "duplicate") {
          this.sessionId = data.session_id ?? null;
          localStorage.removeItem(fileKey(this.experimentId, this.file));
          this.set(data.status);
          return;
        }
        this.set("uploading");
        continue;
      }
      // 4xx other than a range mismatch will not get better by retrying.
      if (answer.status >= 400 && answer.status < 500 && answer.status !== 409 && answer.status !== 416) {
        throw new Error(describeError(answer.data, answer));
      }
      failures += 1;
      if (failures > MAX_RETRIES) throw new Error(`gave up after ${MAX_RETRIES} retries (${answer.statusText || answer.status})`);
      const wait = Math.min(30, 2 ** (failures - 1));
      this.set("retrying", `connection problem; retrying in ${wait} s`);
      await sleep(wait * 1000);
      // Ask the server how much it has, and continue from there.
      for (;;) {
        try {
          const state = await api("GET", `/api/uploads/${this.id}`);
          this.sent = state.received_bytes || 0;
          if (state.status === "done" || state.status === "duplicate") {
            this.sessionId = state.session_id ?? null;
            this.set(state.status);
            return;
          }
          if (state.status === "storing") {
            // Every byte arrived and the server is storing the file: wait for it, send nothing.
            this.set("retrying", "all bytes sent; the server is storing the file");
            await sleep(2000);
            continue;
          }
          break;
        } catch (err) {
          if (err instanceof ApiError) throw err;
          failures += 1;
          if (failures > MAX_RETRIES) throw new Error("the server does not answer");
          await sleep(Math.min(30, 2 ** failures) * 1000);
        }
      }
      this.set("uploading");
    }
  }

  async simpleUpload() {
    const form = new FormData();
    form.append("file", this.file, this.file.name);
    if (this.subject) form.append("subject", this.subject);
    if (this.cohort) form.append("cohort", this.cohort);
    const answer = await xhrSend("POST", `/api/experiments/${this.experimentId}/sessions`, form, {},
      (loaded) => { this.inFlight = Math.min(loaded, this.file.size); this.onChange(this); });
    this.inFlight = 0;
    if (answer.status < 200 || answer.status >= 300) throw new Error(describeError(answer.data, answer));
    this.sent = this.file.size;
    this.sessionId = answer.data && answer.data.id;
    this.set("done");
  }
}

/** Run uploads with at most `parallel` at once. */
export async function runQueue(uploads, parallel = 2) {
  const queue = [...uploads];
  const lanes = Array.from({ length: parallel }, async () => {
    while (queue.length) await queue.shift().start();
  });
  await Promise.all(lanes);
}

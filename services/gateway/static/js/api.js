// The gateway's public API. Failures become ApiError carrying the API's stable error code ("network" when the
// server could not be reached), which the page turns into a localized message, and, when several photos were
// sent, the number (1-based) of the photo the error is about.
const POLL_MS = 1000;

export class ApiError extends Error {
  constructor(code, message, photo = null) {
    super(message);
    this.name = "ApiError";
    this.code = code;
    this.photo = photo;
  }
}

function errorFrom(body) {
  const error = body && body.error;
  return new ApiError(error?.code || "generic", error?.message || "the request failed", error?.photo ?? null);
}

const aborted = () => new DOMException("aborted", "AbortError");

async function getJson(url, signal) {
  let response;
  try {
    response = await fetch(url, { signal });
  } catch (error) {
    throw error.name === "AbortError" ? error : new ApiError("network", String(error));
  }
  const body = await response.json().catch(() => null);
  if (!response.ok) throw errorFrom(body);
  return body;
}

export const loadGroups = () => getJson("/groups");
export const loadMembers = () => getJson("/members");
// {version, model_pack, stores_uploads, result_ttl_s, max_upload_bytes, max_photos, explain_max_faces}
export const loadAbout = () => getJson("/about");

function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    const stop = () => {
      clearTimeout(timer);
      reject(aborted());
    };
    signal?.addEventListener("abort", stop, { once: true });
  });
}

// A 202 means the job outlived the gateway's wait: follow it at its Location until it ends.
async function followJob(location, signal) {
  for (;;) {
    await sleep(POLL_MS, signal);
    const job = await getJson(location, signal);
    if (job.status === "done") return job.result;
    if (job.status === "failed") throw errorFrom({ error: job.error });
  }
}

// POST /diagnose, with explain: POST /diagnose?explain=true (the same faces, each of the first
// /about.explain_max_faces with its heatmap; seconds per face). `files`: one photo, or several of one person (one
// `image` part each, in order: the answer is then about the person). XMLHttpRequest, not fetch: only it reports
// upload progress. onProgress(fraction) runs while the photos upload, onUploaded() once the server has them all.
export function diagnose(files, { group, explain = false, signal, onProgress = () => {}, onUploaded = () => {} }) {
  if (signal?.aborted) return Promise.reject(aborted());
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", explain ? "/diagnose?explain=true" : "/diagnose");
    xhr.responseType = "json";
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total);
    });
    xhr.upload.addEventListener("load", onUploaded);
    xhr.addEventListener("load", () => {
      if (xhr.status === 202) resolve(followJob(xhr.response.location, signal));
      else if (xhr.status >= 200 && xhr.status < 300) resolve(xhr.response);
      else reject(errorFrom(xhr.response));
    });
    xhr.addEventListener("error", () => reject(new ApiError("network", "the upload failed")));
    xhr.addEventListener("abort", () => reject(aborted()));
    signal?.addEventListener("abort", () => xhr.abort(), { once: true });
    const body = new FormData();
    for (const file of files) body.append("image", file);
    if (group) body.append("group", group);
    xhr.send(body);
  });
}

// django-batch-requests browser client: a fetch-compatible function that sends the calls
// made within one tick (or `windowMs`) to the batch endpoint together, and answers each
// caller with a real Response built from its own item. ES module, no dependencies.
//
//   import {createBatcher} from "/static/batch_requests/batch.js";
//   const bfetch = createBatcher({endpoint: "/api/v1/batch/", maxBatchSize: 20});
//   const me = await (await bfetch("/api/me/")).json();
//
// Calls that cannot ride in a batch (another origin, FormData/Blob/stream bodies) go
// through plain fetch, so callers never need to care.
//
// Redirects are handled as fetch does (the server answers a redirect as it is, never
// following it): `redirect: "follow"` (the default) sends the follow-up request through the
// batcher, so it rides in the next batch (or through plain fetch for another origin), with
// fetch's method rules and its limit of 20 redirects; `redirect: "error"` rejects with a
// TypeError; `redirect: "manual"` answers like fetch's opaque-redirect response (type
// "opaqueredirect", status 0, no headers, no body).

const NULL_BODY_STATUSES = new Set([101, 103, 204, 205, 304]);
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);
const REDIRECT_MODES = new Set(["follow", "manual", "error"]);
const MAX_REDIRECTS = 20;  // fetch's limit: the 21st redirect is a network error
// Dropped when a redirect turns the request into a GET without body (fetch's list).
const BODY_HEADERS = ["content-encoding", "content-language", "content-location",
                      "content-type"];

/** The whole batch was refused (4xx/5xx, or the network failed); `errors` is the server's list. */
export class BatchError extends Error {
  constructor(message, {status = 0, errors = [], cause} = {}) {
    super(message, cause ? {cause} : undefined);
    this.name = "BatchError";
    this.status = status;
    this.errors = errors;
  }
}

/** The server refused this item (bad method, header, body...): only its caller gets this. */
export class BatchItemError extends BatchError {
  constructor(message, options) {
    super(message, options);
    this.name = "BatchItemError";
  }
}

/** `Server-Timing` header -> [{name, dur}] (dur in ms), e.g. for a timeline chart. */
export function parseServerTiming(value) {
  if (!value) return [];
  return value.split(",").map((entry) => {
    const [name, ...params] = entry.trim().split(";");
    const dur = params.map((p) => p.trim()).find((p) => p.startsWith("dur="));
    return {name: name.trim(), dur: dur ? parseFloat(dur.slice(4)) : 0};
  }).filter((e) => e.name);
}

/** Django's CSRF cookie, read at send time because login rotates it. */
export function readCookie(name) {
  if (typeof document === "undefined" || !document.cookie) return null;
  for (const part of document.cookie.split(";")) {
    const [key, ...rest] = part.trim().split("=");
    if (key === name) return decodeURIComponent(rest.join("="));
  }
  return null;
}

function base64ToBytes(text) {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/**
 * Set a property that a Response only has as a read-only getter (url, redirected, type) on
 * this instance; a constructed Response would otherwise say url "" and redirected false.
 */
function setOwn(response, name, value) {
  try {
    Object.defineProperty(response, name, {value, enumerable: true, configurable: true});
  } catch (_) { /* not extensible: keep the getter's value */ }
  return response;
}

/** The URL a Response reports: fetch leaves the fragment out. */
function responseUrl(url) {
  const copy = new URL(url);
  copy.hash = "";
  return copy.href;
}

/**
 * What fetch answers with `redirect: "manual"`: an opaque-redirect response (type
 * "opaqueredirect", status 0, ok false, no headers, null body, url the redirecting request's).
 * The page could be told more (the batch answer carries the status and Location), but code
 * written for fetch checks exactly these values, so the batcher answers the same.
 */
export function opaqueRedirectResponse(url) {
  const response = Response.error();  // the only way to build a status-0 Response
  setOwn(response, "type", "opaqueredirect");
  return setOwn(response, "url", responseUrl(url));
}

/** Build the caller's Response from its batch item. */
export function itemToResponse(item, url) {
  const headers = new Headers();
  for (const [name, value] of Object.entries(item.headers || {})) {
    try { headers.append(name, String(value)); } catch (_) { /* not a valid fetch header */ }
  }
  let body = item.body ?? "";
  if (item.body_encoding === "base64") body = base64ToBytes(body);
  else if (typeof body !== "string") body = JSON.stringify(body);  // DESERIALIZE_RESPONSES
  const status = item.status_code;
  const response = new Response(NULL_BODY_STATUSES.has(status) ? null : body,
                                {status, statusText: item.reason_phrase || "", headers});
  return setOwn(response, "url", responseUrl(url));
}

/** The init of the request that follows a redirect, with fetch's rules (HTTP-redirect fetch). */
function redirectInit(init, status, crossOrigin) {
  const method = (init.method || "GET").toUpperCase();
  const headers = new Headers(init.headers || {});
  const next = {...init, method, headers};
  if (((status === 301 || status === 302) && method === "POST") ||
      (status === 303 && method !== "GET" && method !== "HEAD")) {
    next.method = "GET";
    next.body = undefined;
    BODY_HEADERS.forEach((name) => headers.delete(name));
  }
  if (crossOrigin) headers.delete("authorization");
  return next;
}

function itemError(errors) {
  const message = errors.map((e) => (e.field ? `${e.field}: ` : "") + e.message).join(" ");
  return new BatchItemError(`batch item refused: ${message}`, {status: 400, errors});
}

/**
 * Make a fetch-compatible function that batches.
 *
 * Options: endpoint ("/api/v1/batch/"), maxBatchSize (20, the server's MAX_LIMIT default),
 * windowMs (0: the calls of the current tick), csrfToken (string or function; default: the
 * `csrftoken` cookie), csrfCookieName, csrfHeaderName ("X-CSRFToken"), headers (sent with
 * each batch), credentials ("same-origin"), fetch (the underlying fetch, e.g. to count
 * requests), onBatch({size, status, response, serverTiming, start, duration}) after each batch.
 */
export function createBatcher(options = {}) {
  const {
    endpoint = "/api/v1/batch/",
    maxBatchSize = 20,
    windowMs = 0,
    csrfToken,
    csrfCookieName = "csrftoken",
    csrfHeaderName = "X-CSRFToken",
    headers: batchHeaders = {},
    credentials = "same-origin",
    onBatch,
  } = options;
  const baseFetch = options.fetch || globalThis.fetch.bind(globalThis);
  const base = typeof document !== "undefined" ? document.baseURI : globalThis.location?.href;
  const endpointUrl = new URL(endpoint, base);
  let queue = [];
  let timer = null;

  function token() {
    if (typeof csrfToken === "function") return csrfToken();
    return csrfToken ?? readCookie(csrfCookieName);
  }

  function schedule() {
    if (queue.length >= maxBatchSize) flush();
    else if (timer === null) timer = setTimeout(flush, windowMs);
  }

  function flush() {
    if (timer !== null) { clearTimeout(timer); timer = null; }
    const pending = queue;
    queue = [];
    for (let i = 0; i < pending.length; i += maxBatchSize) {
      send(pending.slice(i, i + maxBatchSize));
    }
  }

  async function send(entries) {
    const sendHeaders = {"Content-Type": "application/json", "Accept": "application/json",
                         ...batchHeaders};
    const csrf = token();
    if (csrf) sendHeaders[csrfHeaderName] = csrf;
    const start = performance.now();
    let response;
    let answer;
    try {
      response = await baseFetch(endpointUrl.href, {
        method: "POST", credentials, headers: sendHeaders,
        body: JSON.stringify({batch: entries.map((e) => e.item)}),
      });
      answer = await response.json().catch(() => null);
    } catch (cause) {
      const error = new BatchError(`batch request failed: ${cause}`, {cause});
      entries.forEach((e) => e.reject(error));
      return;
    }
    if (onBatch) {
      try {
        onBatch({size: entries.length, status: response.status, response, start,
                 duration: performance.now() - start,
                 serverTiming: parseServerTiming(response.headers.get("Server-Timing"))});
      } catch (_) { /* a reporting hook must not break the callers */ }
    }
    if (response.ok && Array.isArray(answer?.batch)) {
      entries.forEach((e, i) => {
        const item = answer.batch[i];
        if (item) settle(e, item);
        else e.reject(new BatchError("the batch answer has no item for this request"));
      });
      return;
    }
    const errors = Array.isArray(answer?.errors) ? answer.errors : [];
    const perItem = response.status === 400 && errors.length > 0 &&
      errors.every((err) => Number.isInteger(err.index) && err.index < entries.length);
    if (perItem) {
      // Only the refused items fail; the others are sent again without them.
      const bad = new Set(errors.map((err) => err.index));
      const good = [];
      entries.forEach((e, i) => {
        if (bad.has(i)) e.reject(itemError(errors.filter((err) => err.index === i)));
        else good.push(e);
      });
      if (good.length) send(good);
      return;
    }
    const detail = errors.map((err) => err.message).join(" ") || response.statusText;
    const error = new BatchError(`batch refused with ${response.status}: ${detail}`,
                                 {status: response.status, errors});
    entries.forEach((e) => e.reject(error));
  }

  /** Answer one caller from its item: its Response, or the redirect's outcome. */
  function settle(entry, item) {
    let response;
    try {
      response = itemToResponse(item, entry.url);
    } catch (error) {
      entry.reject(error);
      return;
    }
    const mode = entry.init.redirect || "follow";
    const location = response.headers.get("Location");
    // As the Fetch standard says: "manual" and "error" go by the status alone, "follow"
    // answers a redirect status without Location as it is.
    if (!REDIRECT_STATUSES.has(response.status) || (mode === "follow" && location === null)) {
      entry.resolve(entry.redirects ? setOwn(response, "redirected", true) : response);
      return;
    }
    if (mode === "manual") {
      entry.resolve(opaqueRedirectResponse(entry.url));
      return;
    }
    let next;
    try {
      next = new URL(location, entry.url);
    } catch (_) {
      next = null;
    }
    const refusal = mode === "error" ? `redirect mode is "error"`
      : !next ? `invalid Location ${JSON.stringify(location)}`
      : !["http:", "https:"].includes(next.protocol) ? `redirect to ${next.protocol} URL`
      : entry.redirects >= MAX_REDIRECTS ? `more than ${MAX_REDIRECTS} redirects`
      : null;
    if (refusal) {
      // fetch rejects with a bare TypeError ("Failed to fetch"); this one says why.
      entry.reject(new TypeError(`Failed to fetch ${entry.url}: ${response.status} ` +
                                 `redirect refused (${refusal})`));
      return;
    }
    const init = redirectInit(entry.init, response.status,
                              next.origin !== new URL(entry.url).origin);
    const follow = batchable(next, init)
      ? enqueue(next, init, entry.redirects + 1)
      // Another origin: plain fetch takes over (with its own redirect count from there).
      : baseFetch(next.href, init).then((answer) => setOwn(answer, "redirected", true));
    follow.then(entry.resolve, entry.reject);
  }

  function batchable(url, init) {
    if (url.origin !== endpointUrl.origin) return false;
    const body = init.body;
    return body == null || typeof body === "string" || body instanceof URLSearchParams;
  }

  async function batchedFetch(input, init = {}) {
    if (typeof Request !== "undefined" && input instanceof Request) {
      const copy = input.clone();
      init = {method: copy.method, headers: copy.headers,
              body: ["GET", "HEAD"].includes(copy.method) ? undefined : await copy.text(),
              signal: copy.signal, redirect: copy.redirect, ...init};
      input = copy.url;
    }
    const url = new URL(String(input), base);
    if (!batchable(url, init)) return baseFetch(input, init);
    if (init.redirect != null && !REDIRECT_MODES.has(init.redirect)) {
      throw new TypeError(`redirect must be "follow", "manual" or "error", not ` +
                          JSON.stringify(init.redirect));
    }
    return enqueue(url, init, 0);
  }

  /** Queue one batchable request; `redirects`: how many redirects led to it. */
  function enqueue(url, init, redirects) {
    const signal = init.signal;
    if (signal?.aborted) {
      return Promise.reject(signal.reason ?? new DOMException("Aborted", "AbortError"));
    }

    const itemHeaders = {};
    new Headers(init.headers || {}).forEach((value, name) => { itemHeaders[name] = value; });
    const item = {method: (init.method || "GET").toUpperCase(), url: url.pathname + url.search};
    if (init.body != null) {
      item.body = String(init.body);
      if (init.body instanceof URLSearchParams && !("content-type" in itemHeaders)) {
        itemHeaders["content-type"] = "application/x-www-form-urlencoded;charset=UTF-8";
      }
    }
    if (Object.keys(itemHeaders).length) item.headers = itemHeaders;

    return new Promise((resolve, reject) => {
      const entry = {item, url: url.href, init, redirects, resolve, reject};
      if (signal) {
        signal.addEventListener("abort", () => {
          queue = queue.filter((e) => e !== entry);  // not sent yet: leave it out
          reject(signal.reason ?? new DOMException("Aborted", "AbortError"));
        }, {once: true});
      }
      queue.push(entry);
      schedule();
    });
  }

  batchedFetch.flush = flush;
  return batchedFetch;
}

export default createBatcher;

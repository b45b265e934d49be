// The face service's page: upload, look at the faces found, search, people, status. Plain DOM, no library.
// Every API call is relative to this page (served at <app>/ui/), so it works behind a path prefix.
"use strict";

const API = new URL("../", document.baseURI);
const KEY_STORAGE = "faces.apiKey";
const UPLOADS_AT_ONCE = 2;
const THUMB_SIZE = 96;
const BLOB_CACHE_SIZE = 24;
const DECODES_AT_ONCE = 2;

// ---------- small helpers ---------------------------------------------------------------------
const $ = (id) => document.getElementById(id);

/** An element with attributes (`on*` are listeners) and children (strings become text). */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "class") el.className = value;
    else if (name === "dataset") Object.assign(el.dataset, value);
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  el.append(...children.filter((c) => c !== null && c !== undefined && c !== false));
  return el;
}

const fmtBytes = (n) =>
  n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MiB` : n >= 1024 ? `${Math.round(n / 1024)} KiB` : `${n} B`;
const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

// ---------- the API key -----------------------------------------------------------------------
const apiKey = () => sessionStorage.getItem(KEY_STORAGE) || "";

function authHeaders() {
  const key = apiKey();
  return key ? { "X-API-Key": key } : {};
}

function showKeyState() {
  $("key-state").textContent = apiKey() ? "key set for this tab" : "no key";
}

function notice(message) {
  const box = $("notice");
  box.textContent = message || "";
  box.hidden = !message;
}

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** The words of an error body: `{"detail": "..."}`, `{"detail": [issues]}` or a per-file batch. */
function errorText(status, body) {
  const file = body && Array.isArray(body.results) ? body.results.find((r) => r.error) : null;
  if (file) return `${file.error.status}: ${file.error.reason}`;
  const detail = body && body.detail;
  if (typeof detail === "string") return `${status}: ${detail}`;
  if (Array.isArray(detail)) return `${status}: ${detail.map((i) => `${(i.loc || []).join(".")}: ${i.msg}`).join("; ")}`;
  return `${status}: the service answered without a reason`;
}

function onUnauthorized() {
  notice("The API key is missing or wrong: enter it at the top of the page.");
  $("api-key").focus();
}

/** Calls the API with the key; `json` is sent as a JSON body. Throws ApiError with the reason in words. */
async function api(path, { method = "GET", body, json, as = "json" } = {}) {
  const headers = authHeaders();
  if (json !== undefined) {
    body = JSON.stringify(json);
    headers["Content-Type"] = "application/json";
  }
  let response;
  try {
    response = await fetch(new URL(path, API), { method, body, headers });
  } catch (err) {
    throw new ApiError(0, "the service did not answer (network error)");
  }
  if (!response.ok) {
    const payload = await response.json().catch(() => null);
    if (response.status === 401) onUnauthorized();
    throw new ApiError(response.status, errorText(response.status, payload));
  }
  return as === "blob" ? response.blob() : response.json();
}

// The service's limits (open /health), to refuse a file that is too large before sending it.
let limits = null;
async function loadLimits() {
  try {
    const health = await api("health");
    limits = health.limits;
    $("upload-limits").textContent =
      `up to ${fmtBytes(limits.max_upload_bytes)} per image, ${limits.max_files_per_request} at once`;
  } catch (err) {
    $("upload-limits").textContent = `limits unknown (${err.message})`;
  }
}

// Stored images as they came (compressed: small), fetched once for the image view and thumbnails.
const imageBlobs = new Map();
function imageBlob(imageId) {
  if (!imageBlobs.has(imageId)) {
    const entry = api(`images/${encodeURIComponent(imageId)}/file`, { as: "blob" });
    entry.catch(() => imageBlobs.delete(imageId));
    imageBlobs.set(imageId, entry);
    if (imageBlobs.size > BLOB_CACHE_SIZE) imageBlobs.delete(imageBlobs.keys().next().value);
  }
  return imageBlobs.get(imageId);
}

// Decoded pixels are large (4 bytes a pixel): at most this many images decoded at once.
let decodeSlots = DECODES_AT_ONCE;
const decodeWaiters = [];
async function withDecodeSlot(work) {
  while (decodeSlots === 0) await new Promise((resolve) => decodeWaiters.push(resolve));
  decodeSlots -= 1;
  try {
    return await work();
  } finally {
    decodeSlots += 1;
    decodeWaiters.shift()?.();
  }
}

/** Draws the face in `bbox` of the image `blob`, with a margin, on a square canvas. */
function drawFace(canvas, blob, bbox) {
  return withDecodeSlot(async () => {
    const bitmap = await createImageBitmap(blob);
    try {
      cropFace(canvas, bitmap, bbox);
    } finally {
      bitmap.close();
    }
  });
}

function cropFace(canvas, bitmap, bbox) {
  const [x1, y1, x2, y2] = bbox;
  const side = Math.max(x2 - x1, y2 - y1) * 1.3;
  const cx = (x1 + x2) / 2;
  const cy = (y1 + y2) / 2;
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#e6e9ed";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.drawImage(bitmap, cx - side / 2, cy - side / 2, side, side, 0, 0, canvas.width, canvas.height);
  canvas.dataset.drawn = "true";
}

/** A thumbnail that could not be drawn says why (tooltip and accessible name); the match or face stays. */
function thumbFailed(canvas, err) {
  const reason = `no thumbnail: ${err.message || "the image could not be decoded"}`;
  canvas.title = reason;
  canvas.setAttribute("aria-label", reason);
  canvas.dataset.drawn = "failed";
}

function thumbCanvas(label) {
  return h("canvas", { class: "thumb", width: THUMB_SIZE, height: THUMB_SIZE, role: "img", "aria-label": label });
}

// ---------- routing: #/upload, #/image/<id>?face=<id>, #/search?face=<id>, #/people, #/person/<id>, #/status
const views = ["upload", "image", "search", "people", "person", "status"];
// A view without its own link lights the link of the section it belongs to.
const navOf = { image: "upload", person: "people" };

function parseHash() {
  const [path, query] = location.hash.replace(/^#\/?/, "").split("?");
  const [view, ...rest] = path.split("/");
  return {
    view: views.includes(view) ? view : "upload",
    arg: decodeURIComponent(rest.join("/")),
    params: new URLSearchParams(query || ""),
  };
}

let currentView = null;
function route() {
  const { view, arg, params } = parseHash();
  notice("");
  for (const name of views) $(`view-${name}`).hidden = name !== view;
  for (const link of document.querySelectorAll("[data-nav]")) {
    if (link.dataset.nav === (navOf[view] || view)) {
      link.setAttribute("aria-current", "page");
    } else link.removeAttribute("aria-current");
  }
  if (currentView !== null) $(`${view}-title`).focus();
  currentView = view;
  if (view === "image") showImage(arg, params.get("face"));
  if (view === "search" && params.get("face")) searchByFace(params.get("face"));
  if (view === "people") showPeople();
  if (view === "person") showPerson(arg);
  if (view === "status") showStatus();
}

// ---------- drop zones ------------------------------------------------------------------------
function dropZone(zone, input, onFiles) {
  input.addEventListener("change", () => {
    if (input.files.length) onFiles([...input.files]);
    input.value = "";
  });
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    const files = [...event.dataTransfer.files];
    if (files.length) onFiles(files);
  });
}

// ---------- upload ----------------------------------------------------------------------------
/** POST one file; XMLHttpRequest because fetch reports no upload progress. */
function postImage(file, collection, onProgress) {
  return new Promise((resolve) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", new URL("upload-images/", API));
    for (const [name, value] of Object.entries(authHeaders())) xhr.setRequestHeader(name, value);
    xhr.responseType = "json";
    xhr.upload.onprogress = (event) => event.lengthComputable && onProgress(event.loaded / event.total);
    xhr.upload.onload = () => onProgress(1);
    xhr.onload = () => resolve({ status: xhr.status, body: xhr.response });
    xhr.onerror = () => resolve({ status: 0, body: null });
    const form = new FormData();
    form.append("files", file, file.name);
    form.append("collection", collection);
    xhr.send(form);
  });
}

function uploadRow(file) {
  const progress = h("progress", { max: 1, value: 0, "aria-label": `${file.name} upload progress` });
  const state = h("span", { class: "state muted" }, "waiting");
  const row = h(
    "li",
    { class: "file", dataset: { state: "waiting", name: file.name } },
    h("span", { class: "name" }, file.name, " ", h("span", { class: "muted" }, fmtBytes(file.size))),
    progress,
    state,
  );
  const set = (kind, ...content) => {
    row.dataset.state = kind;
    state.className = `state ${kind === "error" ? "error" : kind === "done" ? "ok" : "muted"}`;
    state.replaceChildren(...content.filter((part) => part !== null));
  };
  return { row, progress, set };
}

async function uploadFile(file, collection, ui) {
  if (limits && file.size > limits.max_upload_bytes) {
    ui.set("error", `too large: ${fmtBytes(file.size)}, the limit is ${fmtBytes(limits.max_upload_bytes)}`);
    return;
  }
  ui.set("uploading", "uploading");
  const { status, body } = await postImage(file, collection, (fraction) => {
    ui.progress.value = fraction;
    ui.set("uploading", fraction < 1 ? `uploading ${Math.round(fraction * 100)}%` : "finding faces…");
  });
  ui.progress.value = 1;
  const result = body && Array.isArray(body.results) ? body.results[0] : null;
  if (status === 0) return ui.set("error", "the service did not answer (network error)");
  if (status === 401) onUnauthorized();
  if (!result || result.status !== "ok") return ui.set("error", errorText(status, body));
  const id = encodeURIComponent(result.image_id);
  ui.set(
    "done",
    `${plural(result.faces.length, "face")} · `,
    h("a", { href: `#/image/${id}`, dataset: { imageId: result.image_id } }, "view image"),
    result.warning ? h("span", { class: "muted" }, ` · ${result.warning}`) : null,
  );
}

async function uploadAll(files) {
  const collection = $("upload-collection");
  if (!collection.reportValidity()) return;
  const queue = files.map((file) => {
    const ui = uploadRow(file);
    $("upload-list").prepend(ui.row);
    return () => uploadFile(file, collection.value, ui);
  });
  // A few at a time: one request per file gives each its own progress and its own error.
  const worker = async () => {
    while (queue.length) await queue.shift()();
  };
  await Promise.all(Array.from({ length: UPLOADS_AT_ONCE }, worker));
}

// ---------- image view ------------------------------------------------------------------------
let shownImage = null;
async function showImage(imageId, selectedFace) {
  const stage = $("image-stage");
  if (shownImage === imageId) return markSelected(selectedFace);
  shownImage = imageId;
  $("image-meta").replaceChildren();
  stage.replaceChildren(h("p", { class: "muted" }, "loading…"));
  let image;
  try {
    image = await api(`images/${encodeURIComponent(imageId)}`);
  } catch (err) {
    shownImage = null;
    stage.replaceChildren(h("p", { class: "error" }, err.message));
    return;
  }
  $("image-meta").replaceChildren(
    h("strong", { id: "image-name" }, image.original_name),
    h("span", { class: "muted" }, ` · ${image.width} × ${image.height} · ${plural(image.faces.length, "face")}`),
    h("span", { class: "muted" }, ` · collection ${image.collection}`),
  );
  // The box has the image's proportions before a byte of it arrives.
  const box = h("div", { class: "stage", id: "image-box" });
  box.style.aspectRatio = `${image.width} / ${image.height}`;
  box.style.maxWidth = `min(${image.width}px, calc(75vh * ${image.width / image.height}))`;
  const img = h("img", { alt: image.original_name, width: image.width, height: image.height });
  box.append(img);
  image.faces.forEach((face, i) => box.append(faceBox(image, face, i)));
  stage.replaceChildren(box);
  markSelected(selectedFace);
  try {
    const blob = await imageBlob(imageId);
    if (shownImage !== imageId) return;
    const url = URL.createObjectURL(blob);
    img.addEventListener("load", () => URL.revokeObjectURL(url), { once: true });
    img.src = url;
  } catch (err) {
    $("image-meta").append(" · ", h("span", { class: "error" }, `image not shown: ${err.message}`));
  }
}

function faceBox(image, face, i) {
  const [x1, y1, x2, y2] = face.bbox;
  const pct = (v, total) => `${(v / total) * 100}%`;
  const link = h(
    "a",
    {
      class: "face",
      href: `#/search?face=${encodeURIComponent(face.face_id)}`,
      dataset: { faceId: face.face_id },
      "aria-label": `Face ${i + 1} (detection score ${face.det_score.toFixed(2)}): search for it`,
    },
    h("span", { class: "label", "aria-hidden": "true" }, String(i + 1)),
  );
  Object.assign(link.style, {
    left: pct(x1, image.width),
    top: pct(y1, image.height),
    width: pct(x2 - x1, image.width),
    height: pct(y2 - y1, image.height),
  });
  for (const [x, y] of face.landmarks) {
    const dot = h("span", { class: "landmark", "aria-hidden": "true" });
    dot.style.left = pct(x - x1, x2 - x1);
    dot.style.top = pct(y - y1, y2 - y1);
    link.append(dot);
  }
  return link;
}

function markSelected(faceId) {
  for (const el of document.querySelectorAll("#image-stage .face")) {
    el.classList.toggle("selected", el.dataset.faceId === faceId);
  }
}

// ---------- search ----------------------------------------------------------------------------
function searchForm() {
  const form = new FormData();
  form.append("k", $("search-k").value || "10");
  if ($("search-threshold").value !== "") form.append("threshold", $("search-threshold").value);
  if ($("search-collection").value) form.append("collection", $("search-collection").value);
  return form;
}

let searchRun = 0;
async function runSearch(form, queryThumb) {
  const run = ++searchRun;
  const results = $("search-results");
  results.replaceChildren(h("p", { class: "muted" }, "searching…"));
  let answer;
  try {
    answer = await api("search", { method: "POST", body: form });
  } catch (err) {
    if (run === searchRun) results.replaceChildren(h("p", { class: "error" }, err.message));
    return;
  }
  if (run !== searchRun) return;
  if (!answer.queries.length) {
    results.replaceChildren(h("p", { class: "muted" }, "No face found in the query image."));
    return;
  }
  results.replaceChildren(
    h("p", { class: "muted" }, `threshold ${answer.threshold} · model ${answer.model_pack}`),
    ...answer.queries.map((query, i) => querySection(query, i, queryThumb)),
  );
}

function querySection(query, i, queryThumb) {
  const thumb = thumbCanvas(`query face ${i + 1}`);
  queryThumb(query)
    .then((blob) => drawFace(thumb, blob, query.bbox))
    .catch((err) => thumbFailed(thumb, err));
  const list = h("ol", { class: "matches" }, ...query.matches.map(matchItem));
  return h(
    "section",
    { class: "query", "aria-label": `Matches for query face ${i + 1}` },
    h(
      "div",
      { class: "query-head" },
      thumb,
      h("h2", {}, `${query.face_id ? "This face" : `Face ${i + 1}`}: ${plural(query.matches.length, "match")}`),
    ),
    query.matches.length ? list : h("p", { class: "muted" }, "No stored face above the threshold."),
  );
}

function matchItem(match, rank) {
  const thumb = thumbCanvas(`face ${match.face_id}`);
  imageBlob(match.image_id)
    .then((blob) => drawFace(thumb, blob, match.bbox))
    .catch((err) => thumbFailed(thumb, err));
  const href = `#/image/${encodeURIComponent(match.image_id)}?face=${encodeURIComponent(match.face_id)}`;
  return h(
    "li",
    { class: "match", dataset: { faceId: match.face_id, imageId: match.image_id } },
    h(
      "a",
      { href, "aria-label": `Rank ${rank + 1}, similarity ${match.similarity.toFixed(3)}: open its image` },
      thumb,
      h("span", { class: "similarity" }, match.similarity.toFixed(3)),
      h("span", { class: "muted" }, `#${rank + 1}`),
    ),
  );
}

function searchByImage(file) {
  const form = searchForm();
  form.append("file", file, file.name);
  history.replaceState(null, "", "#/search");
  runSearch(form, async () => file);
}

function searchByFace(faceId) {
  const form = searchForm();
  form.append("face_id", faceId);
  // The query face's own thumbnail: its image, cropped where the face is.
  const face = api(`faces/${encodeURIComponent(faceId)}`);
  runSearch(form, async () => imageBlob((await face).image_id));
}

// ---------- people ----------------------------------------------------------------------------
const personName = (person) => person.name || "unnamed";
const peopleCount = (n) => (n === 1 ? "1 person" : `${n} people`);
// How many a list asks for at a time: its data-page attribute in index.html.
const pageSize = (list) => String(Number(list.dataset.page) || 60);

/** A text beside a control: what it did, or why it could not. */
function setState(el, kind, text) {
  el.className = `state ${kind}`;
  el.textContent = text;
}

/** A face's stored thumbnail (behind the key, so fetched, not linked) in a box sized before it loads. */
function faceThumb(faceId) {
  const img = h("img", { class: "thumb", width: THUMB_SIZE, height: THUMB_SIZE, alt: "" });
  if (!faceId) {
    img.dataset.drawn = "failed";
    return img;
  }
  api(`faces/${encodeURIComponent(faceId)}/thumbnail`, { as: "blob" })
    .then((blob) => {
      const url = URL.createObjectURL(blob);
      img.addEventListener(
        "load",
        () => {
          URL.revokeObjectURL(url);
          img.dataset.drawn = "true";
        },
        { once: true },
      );
      img.src = url;
    })
    .catch((err) => thumbFailed(img, err));
  return img;
}

let peopleRun = 0;
let peopleShown = 0;
async function showPeople(more = false) {
  const collection = $("people-collection");
  if (!collection.checkValidity()) return collection.reportValidity();
  const run = more ? peopleRun : ++peopleRun;
  const grid = $("people-grid");
  const count = $("people-count");
  if (!more) {
    grid.replaceChildren();
    peopleShown = 0;
    $("people-more").hidden = true;
  }
  const params = new URLSearchParams({ offset: String(peopleShown), limit: pageSize(grid) });
  if ($("people-hidden").checked) params.set("include_hidden", "true");
  if (collection.value) params.set("collection", collection.value);
  setState(count, "muted", "loading…");
  let page;
  try {
    page = await api(`people?${params}`);
  } catch (err) {
    if (run === peopleRun) setState(count, "error", err.message);
    return;
  }
  if (run !== peopleRun) return;
  grid.append(...page.people.map(personCard));
  peopleShown += page.people.length;
  setState(count, "muted", page.total ? peopleCount(page.total) : "No people yet: faces form one once enough alike arrive.");
  $("people-more").hidden = peopleShown >= page.total || !page.people.length;
}

function personCard(person) {
  return h(
    "li",
    { class: "person", dataset: { personId: person.person_id, hidden: String(person.hidden) } },
    h(
      "a",
      { href: `#/person/${encodeURIComponent(person.person_id)}` },
      faceThumb(person.representative_face_id),
      h("span", { class: person.name ? "name" : "name muted" }, personName(person)),
      h("span", { class: "muted count" }, `${plural(person.face_count, "face")}${person.hidden ? " · hidden" : ""}`),
    ),
  );
}

let personRun = 0;
let personFacesShown = 0;
async function showPerson(personId, more = false) {
  const run = more ? personRun : ++personRun;
  const head = $("person-head");
  const faces = $("person-faces");
  if (!more) {
    $("person-title").textContent = "Person";
    head.replaceChildren(h("p", { class: "muted" }, "loading…"));
    faces.replaceChildren();
    personFacesShown = 0;
    $("person-more").hidden = true;
  }
  let detail;
  try {
    const params = new URLSearchParams({ offset: String(personFacesShown), limit: pageSize(faces) });
    detail = await api(`people/${encodeURIComponent(personId)}?${params}`);
  } catch (err) {
    if (run !== personRun) return;
    if (more) $("person-more").after(h("p", { class: "error" }, err.message));
    else head.replaceChildren(h("p", { class: "error" }, err.message));
    return;
  }
  if (run !== personRun) return;
  if (!more) {
    head.replaceChildren(...personControls(detail.person));
    personSummary(detail.person);
  }
  faces.append(...detail.faces.map((face, i) => personFace(face, personFacesShown + i)));
  personFacesShown += detail.faces.length;
  $("person-more").hidden = personFacesShown >= detail.person.face_count || !detail.faces.length;
}

function personSummary(person) {
  $("person-title").textContent = person.name || "Unnamed person";
  $("person-summary").textContent =
    `${plural(person.face_count, "face")} · collection ${person.collection}${person.hidden ? " · hidden" : ""}`;
}

/** Name (Enter saves), hide/unhide and merge, each with its result or error beside it. */
function personControls(person) {
  const summary = h("p", { id: "person-summary", class: "muted" });
  const nameInput = h("input", {
    id: "person-name",
    value: person.name || "",
    placeholder: "unnamed",
    maxlength: 200,
    autocomplete: "off",
    spellcheck: "false",
    "aria-describedby": "person-name-state",
  });
  const nameState = h("span", { id: "person-name-state", class: "state muted", role: "status" }, "Enter saves");
  const nameForm = h(
    "form",
    {
      id: "person-name-form",
      class: "control",
      onsubmit: (event) => {
        event.preventDefault();
        rename(person, nameInput, nameState);
      },
    },
    h("label", { for: "person-name" }, "Name"),
    nameInput,
    nameState,
  );
  const hideState = h("span", { id: "person-hide-state", class: "state muted", role: "status" });
  const hideButton = h(
    "button",
    { type: "button", id: "person-hide", class: "toggle", onclick: () => toggleHidden(person, hideButton, hideState) },
    person.hidden ? "Unhide" : "Hide",
  );
  const target = h(
    "select",
    { id: "person-merge-target", "aria-describedby": "person-merge-state" },
    h("option", { value: "" }, "loading…"),
  );
  const mergeState = h("span", { id: "person-merge-state", class: "state muted", role: "status" });
  const mergeForm = h(
    "form",
    {
      id: "person-merge-form",
      class: "control",
      onsubmit: (event) => {
        event.preventDefault();
        mergeInto(person, target, mergeState);
      },
    },
    h("label", { for: "person-merge-target" }, "Merge into"),
    target,
    h("button", { type: "submit" }, "Merge"),
    mergeState,
  );
  loadMergeTargets(person, target, mergeState);
  return [summary, nameForm, h("div", { class: "control" }, hideButton, hideState), mergeForm];
}

async function rename(person, input, state) {
  const name = input.value.trim();
  setState(state, "muted", "saving…");
  try {
    const updated = await api(`people/${encodeURIComponent(person.person_id)}`, {
      method: "PATCH",
      json: { name: name || null },
    });
    Object.assign(person, updated);
    input.value = updated.name || "";
    personSummary(person);
    setState(state, "ok", updated.name ? "saved" : "name cleared");
  } catch (err) {
    setState(state, "error", err.message);
  }
}

async function toggleHidden(person, button, state) {
  button.disabled = true;
  try {
    const updated = await api(`people/${encodeURIComponent(person.person_id)}`, {
      method: "PATCH",
      json: { hidden: !person.hidden },
    });
    Object.assign(person, updated);
    button.textContent = updated.hidden ? "Unhide" : "Hide";
    personSummary(person);
    setState(state, "ok", updated.hidden ? "hidden from the list of people" : "shown in the list of people");
  } catch (err) {
    setState(state, "error", err.message);
  } finally {
    button.disabled = false;
  }
}

/** The people this one can be merged into: the others of its collection, hidden ones too. */
async function loadMergeTargets(person, select, state) {
  const params = new URLSearchParams({ collection: person.collection, include_hidden: "true", limit: "500" });
  let page;
  try {
    page = await api(`people?${params}`);
  } catch (err) {
    select.replaceChildren(h("option", { value: "" }, "unavailable"));
    setState(state, "error", err.message);
    return;
  }
  const others = page.people.filter((other) => other.person_id !== person.person_id);
  select.replaceChildren(
    h("option", { value: "" }, others.length ? "choose a person" : "no other person"),
    ...others.map((other) =>
      h(
        "option",
        { value: other.person_id },
        `${personName(other)} · ${plural(other.face_count, "face")} · ${other.person_id.slice(0, 8)}`,
      ),
    ),
  );
}

async function mergeInto(person, select, state) {
  if (!select.value) {
    setState(state, "error", "choose the person to merge into");
    select.focus();
    return;
  }
  setState(state, "muted", "merging…");
  try {
    const merged = await api(`people/${encodeURIComponent(select.value)}/merge`, {
      method: "POST",
      json: { ids: [person.person_id] },
    });
    // This person is gone: show the one its faces went to.
    location.hash = `#/person/${encodeURIComponent(merged.person_id)}`;
  } catch (err) {
    setState(state, "error", err.message);
  }
}

function personFace(face, i) {
  const href = `#/image/${encodeURIComponent(face.image_id)}?face=${encodeURIComponent(face.face_id)}`;
  return h(
    "li",
    { class: "person-face", dataset: { faceId: face.face_id, imageId: face.image_id } },
    h(
      "a",
      { href, "aria-label": `Face ${i + 1} (detection score ${face.det_score.toFixed(2)}): open its image` },
      faceThumb(face.face_id),
    ),
  );
}

// ---------- status ----------------------------------------------------------------------------
async function showStatus() {
  const list = $("status-list");
  list.replaceChildren(h("dt", {}, "Status"), h("dd", { class: "muted" }, "loading…"));
  let health;
  let note = null;
  try {
    health = await api("health?verbose=true");
  } catch (err) {
    try {
      health = await api("health");
      note = "Enter the API key to see the index and storage checks.";
      notice("");
    } catch (err2) {
      list.replaceChildren(h("dt", {}, "Status"), h("dd", { class: "error" }, err2.message));
      return;
    }
  }
  const model = health.model || {};
  const providers = model.providers
    ? Object.entries(model.providers).map(([task, used]) => `${task}: ${used.join(", ")}`)
    : ["model not loaded"];
  const check = (c) => (c ? `${c.ok ? "ok" : "DOWN"} (${c.backend}${c.error ? `: ${c.error}` : ""})` : note);
  const rows = [
    ["Status", `${health.status}${health.ready ? ", ready" : ", not ready"}`],
    ["Reasons", health.reasons.length ? health.reasons.join("; ") : "none"],
    ["Model pack", `${model.pack}${model.embedding_dim ? ` (${model.embedding_dim}-d embeddings)` : ""}`],
    ["Providers used", providers.join(" · ")],
    ["CUDA", model.cuda === undefined ? "unknown" : model.cuda ? "yes" : "no (CPU)"],
    ["Match threshold", model.match_threshold ?? "–"],
    ["Index size", health.index && health.index.count != null ? plural(health.index.count, "face") : note],
    ["Index", check(health.index)],
    ["Storage", check(health.storage)],
    ["Waiting to be indexed", plural(health.index_pending, "image")],
    ["Jobs queued or running", String(health.jobs_in_progress)],
    ["Idle", `${Math.round(health.idle_seconds)} s (stops after ${health.auto_shutdown_idle_time} s)`],
    [
      "Limits",
      `${fmtBytes(health.limits.max_upload_bytes)} per image, ${health.limits.max_files_per_request} files per request`,
    ],
  ];
  list.replaceChildren(
    ...rows.flatMap(([name, value]) => [
      h("dt", {}, name),
      h("dd", { dataset: { field: name } }, value === null ? "–" : String(value)),
    ]),
  );
}

// ---------- start -----------------------------------------------------------------------------
function start() {
  $("api-key").value = apiKey();
  showKeyState();
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(KEY_STORAGE, $("api-key").value.trim());
    imageBlobs.clear();
    shownImage = null;
    showKeyState();
    route();
  });
  $("key-forget").addEventListener("click", () => {
    sessionStorage.removeItem(KEY_STORAGE);
    $("api-key").value = "";
    imageBlobs.clear();
    showKeyState();
  });
  $("search-form").addEventListener("submit", (event) => event.preventDefault());
  $("status-refresh").addEventListener("click", showStatus);
  $("people-hidden").addEventListener("change", () => showPeople());
  $("people-collection").addEventListener("change", () => showPeople());
  $("people-more").addEventListener("click", () => showPeople(true));
  $("person-more").addEventListener("click", () => showPerson(parseHash().arg, true));
  dropZone($("upload-drop"), $("upload-input"), uploadAll);
  dropZone($("search-drop"), $("search-input"), (files) => searchByImage(files[0]));
  // A file dropped outside a zone must not replace the page.
  window.addEventListener("dragover", (event) => event.preventDefault());
  window.addEventListener("drop", (event) => event.preventDefault());
  window.addEventListener("hashchange", route);
  loadLimits();
  route();
}

start();

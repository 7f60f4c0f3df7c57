// veil review: draws veil's face boxes over each picture, lets the user fix them, exports.
// Talks only to the server that served it; nothing else is fetched.
"use strict";

const TOKEN = document.querySelector('meta[name="veil-token"]').content;
const SVG = "http://www.w3.org/2000/svg";
const MIN_BOX = 4; // pixels of the picture; smaller drags are clicks
const MAX_PLAN_BYTES = 2 * 1024 * 1024;

const state = {
  files: [],
  current: null, // file id
  regions: {}, // file id -> [{mask:[x,y,w,h], score, action, added, track}]
  sizes: {}, // file id -> {width, height}
  exported: {}, // file id -> output path
  selected: null, // index into the current file's regions
  lowConfidence: 0.5,
};

const $ = (id) => document.getElementById(id);

async function api(path, options = {}) {
  const headers = Object.assign({ "X-Veil-Token": TOKEN }, options.headers || {});
  const response = await fetch(path, Object.assign({}, options, { headers, credentials: "same-origin" }));
  let data = null;
  try { data = await response.json(); } catch (e) { data = null; }
  if (!response.ok) {
    throw new Error((data && data.error) || `the server answered ${response.status}`);
  }
  return data;
}

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

function regionClass(region) {
  if (region.action === "keep") return "keep";
  if (region.action === "remove") return "remove";
  if (region.added) return "added";
  if (region.score !== null && region.score < state.lowConfidence) return "low";
  return "mask";
}

function describe(region) {
  const where = `${region.mask[2]}×${region.mask[3]} px at ${region.mask[0]}, ${region.mask[1]}`;
  const who = region.added ? "A box you added" :
    region.score === null ? "A box from the plan file" :
    `A face veil found (confidence ${Math.round(region.score * 100)}%)`;
  const what = { mask: "It will be hidden.", keep: "It will be LEFT VISIBLE.",
                 remove: "Marked as not a face: it will not be hidden." }[region.action];
  return `${who}, ${where}. ${what}`;
}

// ---- files ----

function renderFiles() {
  const list = $("file-list");
  list.replaceChildren();
  for (const file of state.files) {
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.file = file.id;
    button.setAttribute("aria-current", String(file.id === state.current));
    button.append(file.name);
    const note = document.createElement("span");
    note.className = "state";
    if (state.exported[file.id]) { note.textContent = "exported"; note.classList.add("done"); }
    else if (state.regions[file.id]) { note.textContent = "checking"; }
    else { note.textContent = "not checked yet"; }
    button.append(note);
    button.addEventListener("click", () => openFile(file.id));
    item.append(button);
    list.append(item);
  }
}

async function openFile(id) {
  state.current = id;
  state.selected = null;
  renderFiles();
  $("result").replaceChildren();
  $("export").disabled = true;
  $("picture-wrap").hidden = true;
  $("overlay").replaceChildren();
  setStatus("Finding faces… (this can take a few seconds)");
  $("picture").src = `/api/files/${id}/picture`;
  try {
    if (!state.regions[id]) {
      const data = await api(`/api/files/${id}/regions`);
      state.regions[id] = data.regions;
      state.sizes[id] = { width: data.width, height: data.height };
    }
    if (state.current !== id) return;
    await pictureLoaded();
    $("picture-wrap").hidden = false;
    $("export").disabled = false;
    render();
    setStatus(`${state.files[id].name}: check the boxes, then export.`);
  } catch (error) {
    setStatus(`Could not open this picture: ${error.message}`, true);
  }
}

function pictureLoaded() {
  const img = $("picture");
  if (img.complete && img.naturalWidth) return Promise.resolve();
  return new Promise((resolve, reject) => {
    img.onload = () => resolve();
    img.onerror = () => reject(new Error("the picture could not be shown"));
  });
}

// ---- drawing ----

function render() {
  const id = state.current;
  const regions = state.regions[id] || [];
  const size = state.sizes[id];
  const svg = $("overlay");
  svg.setAttribute("viewBox", `0 0 ${size.width} ${size.height}`);
  svg.setAttribute("preserveAspectRatio", "none");
  svg.replaceChildren();
  regions.forEach((region, index) => {
    const rect = document.createElementNS(SVG, "rect");
    const [x, y, w, h] = region.mask;
    rect.setAttribute("x", x); rect.setAttribute("y", y);
    rect.setAttribute("width", w); rect.setAttribute("height", h);
    rect.setAttribute("class", regionClass(region) + (index === state.selected ? " selected" : ""));
    rect.dataset.index = index;
    rect.dataset.action = region.action;
    const title = document.createElementNS(SVG, "title");
    title.textContent = describe(region);
    rect.append(title);
    rect.addEventListener("pointerdown", (event) => { event.stopPropagation(); });
    rect.addEventListener("click", (event) => { event.stopPropagation(); select(index); });
    svg.append(rect);
  });
  renderCounts(regions);
  renderSelection(regions);
}

function renderCounts(regions) {
  const hidden = regions.filter((r) => r.action === "mask").length;
  const visible = regions.filter((r) => r.action === "keep").length;
  const removed = regions.filter((r) => r.action === "remove").length;
  const unsure = regions.filter((r) => r.action === "mask" && !r.added && r.score !== null
                                     && r.score < state.lowConfidence).length;
  const counts = $("counts");
  counts.replaceChildren();
  const add = (text, bold) => { const b = document.createElement("b"); b.textContent = bold;
                                counts.append(b, text); };
  add(` will be hidden`, String(hidden));
  if (unsure) add(` of them unsure, please check`, `, ${unsure}`);
  if (visible) add(` left visible`, `, ${visible}`);
  if (removed) add(` not a face`, `, ${removed}`);
}

function renderSelection(regions) {
  const region = state.selected === null ? null : regions[state.selected];
  $("selection").hidden = !region;
  if (!region) return;
  $("selection-text").textContent = describe(region);
  $("act-mask").setAttribute("aria-pressed", String(region.action === "mask"));
  $("act-remove").setAttribute("aria-pressed", String(region.action === "remove"));
  $("act-keep").setAttribute("aria-pressed", String(region.action === "keep"));
  $("act-remove").hidden = region.added;
  $("act-keep").hidden = region.added;
  $("act-mask").hidden = region.added;
  $("act-delete").hidden = !region.added;
}

function select(index) {
  state.selected = index;
  render();
}

function setAction(action) {
  const regions = state.regions[state.current];
  if (state.selected === null || !regions[state.selected]) return;
  regions[state.selected].action = action;
  markEdited();
  render();
}

function deleteSelected() {
  const regions = state.regions[state.current];
  if (state.selected === null || !regions[state.selected] || !regions[state.selected].added) return;
  regions.splice(state.selected, 1);
  state.selected = null;
  markEdited();
  render();
}

function markEdited() {
  delete state.exported[state.current];
  $("result").replaceChildren();
  renderFiles();
}

// ---- dragging a new box ----

function toPicture(svg, event) {
  const point = svg.createSVGPoint();
  point.x = event.clientX; point.y = event.clientY;
  const p = point.matrixTransform(svg.getScreenCTM().inverse());
  const size = state.sizes[state.current];
  return { x: Math.min(Math.max(p.x, 0), size.width), y: Math.min(Math.max(p.y, 0), size.height) };
}

function setupDrawing() {
  const svg = $("overlay");
  let start = null;
  let ghost = null;
  svg.addEventListener("pointerdown", (event) => {
    if (state.current === null || event.button !== 0) return;
    start = toPicture(svg, event);
    ghost = document.createElementNS(SVG, "rect");
    ghost.setAttribute("class", "drawing");
    svg.append(ghost);
    svg.setPointerCapture(event.pointerId);
    event.preventDefault();
  });
  svg.addEventListener("pointermove", (event) => {
    if (!start) return;
    const p = toPicture(svg, event);
    ghost.setAttribute("x", Math.min(start.x, p.x)); ghost.setAttribute("y", Math.min(start.y, p.y));
    ghost.setAttribute("width", Math.abs(p.x - start.x)); ghost.setAttribute("height", Math.abs(p.y - start.y));
  });
  svg.addEventListener("pointerup", (event) => {
    if (!start) return;
    const p = toPicture(svg, event);
    const x0 = Math.floor(Math.min(start.x, p.x)), y0 = Math.floor(Math.min(start.y, p.y));
    const x1 = Math.ceil(Math.max(start.x, p.x)), y1 = Math.ceil(Math.max(start.y, p.y));
    start = null;
    ghost.remove();
    if (x1 - x0 < MIN_BOX || y1 - y0 < MIN_BOX) {
      state.selected = null;
      render();
      return;
    }
    const regions = state.regions[state.current];
    regions.push({ mask: [x0, y0, x1 - x0, y1 - y0], score: null, action: "mask", added: true, track: -1 });
    state.selected = regions.length - 1;
    markEdited();
    render();
  });
}

// ---- export ----

function updateStyleWarning() {
  const style = $("mask-style").value;
  $("style-warning").hidden = !(style === "mosaic" || style === "blur");
}

async function exportCurrent() {
  const id = state.current;
  if (id === null) return;
  const button = $("export");
  const progress = $("progress");
  const result = $("result");
  button.disabled = true;
  result.replaceChildren();
  progress.hidden = false;
  progress.removeAttribute("value");
  const body = {
    mask: $("mask-style").value,
    destination: document.querySelector('input[name="destination"]:checked').value,
    overwrite: $("overwrite").checked,
    regions: state.regions[id],
  };
  try {
    let job = await api(`/api/files/${id}/export`, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    const text = $("progress-text");
    text.hidden = false;
    while (job.state === "running") {
      text.textContent = job.phase === "auditing"
        ? "Saved. Now re-checking the copy for any face or data left (audit)…"
        : "Hiding faces and writing the copy…";
      await new Promise((resolve) => setTimeout(resolve, 250));
      job = await api(`/api/jobs/${job.id}`);
      if (job.total) { progress.max = job.total; progress.value = job.done; }
    }
    text.hidden = true;
    showResult(job);
  } catch (error) {
    showFailure(error.message);
  } finally {
    progress.hidden = true;
    button.disabled = false;
  }
}

function showFailure(message) {
  const p = document.createElement("p");
  p.className = "fail";
  p.textContent = `Export failed: ${message}`;
  $("result").replaceChildren(p);
}

function showResult(job) {
  if (job.state !== "done") { showFailure(job.error || "unknown error"); return; }
  state.exported[job.file] = job.output;
  renderFiles();
  const p = document.createElement("p");
  p.className = "ok";
  p.id = "export-done";
  const faces = `${job.faces} region${job.faces === 1 ? "" : "s"} hidden`;
  const kept = job.kept ? `, ${job.kept} left visible as you chose` : "";
  const removed = job.removed ? `, ${job.removed} marked not a face` : "";
  p.textContent = `Saved: ${job.output} (${faces}${kept}${removed}).`;
  const nodes = [p];
  const audit = document.createElement("div");
  audit.className = "audit";
  if (job.audit) {
    audit.append(...auditSummary(job.audit, job.kept + job.removed));
    audit.classList.add(job.audit.clean ? "clean" : "findings");
  } else {
    audit.textContent = job.audit_note || "No audit was run.";
  }
  nodes.push(audit);
  $("result").replaceChildren(...nodes);
  $("result").scrollIntoView({ block: "nearest" });
}

function auditSummary(audit, released) {
  // The audit re-reads the saved copy with a second face detector, a face matcher and a
  // metadata reader; its own summary lines are shown as plain text.
  const title = document.createElement("b");
  title.textContent = audit.clean
    ? "Audit: the copy is clean."
    : `Audit: ${audit.findings} thing${audit.findings === 1 ? "" : "s"} to check before publishing.`;
  const nodes = [title];
  if (!audit.clean && released) {
    const note = document.createElement("div");
    note.textContent = `You chose to leave ${released} box${released === 1 ? "" : "es"} unmasked; ` +
      "the audit reports visible faces, so those show up here too.";
    nodes.push(note);
  }
  const pre = document.createElement("pre");
  pre.textContent = audit.summary;
  nodes.push(pre);
  return nodes;
}

// ---- plan upload ----

async function uploadPlan(event) {
  const file = event.target.files[0];
  event.target.value = "";
  if (!file || state.current === null) return;
  if (file.size > MAX_PLAN_BYTES) { setStatus("That plan file is too large (limit 2 MB).", true); return; }
  try {
    const text = await file.text();
    const data = await api(`/api/files/${state.current}/plan`, {
      method: "POST", headers: { "Content-Type": "text/plain; charset=utf-8" }, body: text });
    state.regions[state.current] = data.regions;
    state.selected = null;
    markEdited();
    render();
    setStatus("Plan loaded: check the boxes, then export.");
  } catch (error) {
    setStatus(`Could not use that plan file: ${error.message}`, true);
  }
}

// ---- start ----

async function start() {
  $("act-mask").addEventListener("click", () => setAction("mask"));
  $("act-remove").addEventListener("click", () => setAction("remove"));
  $("act-keep").addEventListener("click", () => setAction("keep"));
  $("act-delete").addEventListener("click", deleteSelected);
  $("export").addEventListener("click", exportCurrent);
  $("mask-style").addEventListener("change", updateStyleWarning);
  $("plan-file").addEventListener("change", uploadPlan);
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape") { state.selected = null; if (state.current !== null) render(); }
    if ((event.key === "Delete" || event.key === "Backspace") && state.selected !== null
        && event.target === document.body) {
      const region = state.regions[state.current][state.selected];
      if (region.added) deleteSelected(); else setAction("remove");
    }
  });
  setupDrawing();
  try {
    const listing = await api("/api/files");
    state.files = listing.files;
    state.lowConfidence = listing.low_confidence;
    $("folder").textContent = listing.folder;
    if (listing.output_folder) {
      $("folder-choice").hidden = false;
      $("output-folder").textContent = listing.output_folder;
    }
    renderFiles();
    if (!state.files.length) { setStatus("No pictures found in this folder.", true); return; }
    openFile(state.files[0].id);
  } catch (error) {
    setStatus(`Could not reach veil: ${error.message}`, true);
  }
}

start();

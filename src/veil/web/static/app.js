// veil review: draws veil's face boxes over each picture or video frame, lets the user fix them,
// exports. Talks only to the server that served it; nothing else is fetched.
"use strict";

const TOKEN = document.querySelector('meta[name="veil-token"]').content;
const SVG = "http://www.w3.org/2000/svg";
const MIN_BOX = 4; // pixels of the picture; smaller drags are clicks
const MAX_PLAN_BYTES = 2 * 1024 * 1024;
const DETECTED = 0; // RegionSource.DETECTED; tracked boxes (1) have no score of their own

const state = {
  files: [],
  current: null, // file id
  regions: {}, // picture id -> [{mask:[x,y,w,h], score, action, added, track}]
  sizes: {}, // file id -> {width, height}
  videos: {}, // video id -> {regions, times, step, frame, keep:Set, removed:Set, added:[{keys}]}
  exported: {}, // file id -> output path
  selected: null, // index into currentRegions()
  selectedAdded: null, // video: index of the selected added box
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

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

function currentFile() { return state.files[state.current]; }
function isVideo() { return state.current !== null && currentFile().kind === "video"; }

function regionClass(region) {
  if (region.action === "keep") return "keep";
  if (region.action === "remove") return "remove";
  if (region.added) return "added";
  if (region.score !== null && region.score < state.lowConfidence) return "low";
  return "mask";
}

function describe(region) {
  const where = `${region.mask[2]}×${region.mask[3]} px at ${region.mask[0]}, ${region.mask[1]}`;
  if (region.added && isVideo()) {
    const a = state.videos[state.current].added[region.addedIndex];
    const first = a.keys[0].frame, last = a.keys[a.keys.length - 1].frame;
    return `A box you added, frames ${first} to ${last} (${a.keys.length} key frame` +
      `${a.keys.length === 1 ? "" : "s"}). To follow a moving face, go to another frame and drag ` +
      "a new box: it moves smoothly between key frames.";
  }
  const who = region.added ? "A box you added" :
    region.tracked ? `A face veil followed between detections (person ${region.track})` :
    region.score === null ? "A box from the plan file" :
    `A face veil found (confidence ${Math.round(region.score * 100)}%` +
      (region.track >= 0 ? `, person ${region.track})` : ")");
  const what = { mask: "It will be hidden.",
                 keep: isVideo() ? "This person will be LEFT VISIBLE for as long as veil follows them " +
                   "(green on the timeline); if veil loses them, they are hidden again: check later frames."
                   : "It will be LEFT VISIBLE.",
                 remove: "Marked as not a face: it will not be hidden" + (isVideo() ? " in this frame." : ".") }[region.action];
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
    const kind = file.kind === "video" ? "video, " : "";
    if (state.exported[file.id]) { note.textContent = kind + "exported"; note.classList.add("done"); }
    else if (state.regions[file.id] || state.videos[file.id]) { note.textContent = kind + "checking"; }
    else { note.textContent = kind + "not checked yet"; }
    button.append(note);
    button.addEventListener("click", () => openFile(file.id));
    item.append(button);
    list.append(item);
  }
}

async function openFile(id) {
  state.current = id;
  state.selected = null;
  state.selectedAdded = null;
  renderFiles();
  $("result").replaceChildren();
  $("export").disabled = true;
  $("picture-wrap").hidden = true;
  $("video-controls").hidden = true;
  $("overlay").replaceChildren();
  try {
    if (state.files[id].kind === "video") await openVideo(id); else await openPicture(id);
  } catch (error) {
    if (state.current === id) setStatus(`Could not open this file: ${error.message}`, true);
  }
}

async function openPicture(id) {
  setStatus("Finding faces… (this can take a few seconds)");
  $("picture").src = `/api/files/${id}/picture`;
  if (!state.regions[id]) {
    const data = await api(`/api/files/${id}/regions`);
    state.regions[id] = data.regions;
    state.sizes[id] = { width: data.width, height: data.height };
  }
  if (state.current !== id) return;
  await pictureLoaded();
  showStage();
  setStatus(`${state.files[id].name}: check the boxes, then export.`);
}

async function openVideo(id) {
  if (!state.videos[id]) {
    let data = await api(`/api/files/${id}/video`);
    while (data.state === "analysing") {
      if (state.current !== id) return;
      const of = data.total ? ` of about ${data.total}` : "";
      setStatus(data.phase === "reading"
        ? `Reading the video… frame ${data.read}${of}`
        : `Finding and following faces through the video… frame ${data.done}${of}`);
      await sleep(400);
      data = await api(`/api/files/${id}/video`);
    }
    if (data.state !== "ready") throw new Error(data.error || "the video could not be analysed");
    state.sizes[id] = { width: data.width, height: data.height };
    state.videos[id] = { regions: data.regions, times: data.times, step: data.preview_step, rate: data.rate,
                         frame: 0, keep: new Set(), removed: new Set(), added: [] };
    renderFiles();
  }
  if (state.current !== id) return;
  const v = state.videos[id];
  const scrubber = $("scrubber");
  scrubber.max = String(v.regions.length - 1);
  scrubber.value = String(v.frame);
  await showFrame(v.frame);
  $("video-controls").hidden = false;
  showStage();
  setStatus(`${state.files[id].name}: scrub through the video and check the boxes, then export.`);
}

function showStage() {
  $("picture-wrap").hidden = false;
  $("export").disabled = false;
  render();
}

function pictureLoaded() {
  const img = $("picture");
  if (img.complete && img.naturalWidth) return Promise.resolve();
  return new Promise((resolve, reject) => {
    img.onload = () => resolve();
    img.onerror = () => reject(new Error("the picture could not be shown"));
  });
}

// ---- video frames ----

async function showFrame(frame) {
  const v = state.videos[state.current];
  frame = Math.max(0, Math.min(frame, v.regions.length - 1));
  v.frame = frame;
  $("scrubber").value = String(frame);
  const shown = frame - (frame % v.step);
  const time = v.times[frame] || 0;
  $("frame-label").textContent = `frame ${frame} of ${v.regions.length - 1}, ${formatTime(time)}` +
    (shown !== frame ? ` (showing frame ${shown})` : "");
  const src = `/api/files/${state.current}/frames/${shown}`;
  const img = $("picture");
  if (!img.src.endsWith(src)) {
    img.src = src;
    await pictureLoaded().catch(() => {});
  }
  state.selected = null;
  render();
}

function formatTime(seconds) {
  const m = Math.floor(seconds / 60);
  const s = (seconds - m * 60).toFixed(2).padStart(5, "0");
  return `${m}:${s}`;
}

function interpolate(added, frame) {
  const keys = added.keys;
  if (frame < keys[0].frame || frame > keys[keys.length - 1].frame) return null;
  for (let i = 0; i < keys.length; i++) {
    if (keys[i].frame === frame) return keys[i].box.slice();
    if (keys[i].frame > frame) {
      const a = keys[i - 1], b = keys[i];
      const t = (frame - a.frame) / (b.frame - a.frame);
      return a.box.map((value, k) => value + (b.box[k] - value) * t);
    }
  }
  return null;
}

const removedKey = (frame, mask) => `${frame}:${mask.join(",")}`;

function videoRegions() {
  const v = state.videos[state.current];
  const frame = v.frame;
  const out = (v.regions[frame] || []).map(([x, y, w, h, track, score, source]) => {
    const mask = [x, y, w, h];
    let action = "mask";
    if (track >= 0 && v.keep.has(track)) action = "keep";
    else if (v.removed.has(removedKey(frame, mask))) action = "remove";
    return { mask, track, action, added: false, tracked: source !== DETECTED,
             score: source === DETECTED ? score : null };
  });
  v.added.forEach((added, index) => {
    const box = interpolate(added, frame);
    if (!box) return;
    const [x, y, w, h] = box;
    const x0 = Math.floor(x), y0 = Math.floor(y);
    out.push({ mask: [x0, y0, Math.ceil(x + w) - x0, Math.ceil(y + h) - y0], track: -1, action: "mask",
               added: true, addedIndex: index, score: null });
  });
  return out;
}

function currentRegions() {
  if (state.current === null) return [];
  return isVideo() ? videoRegions() : (state.regions[state.current] || []);
}

// ---- drawing ----

function render() {
  const id = state.current;
  const regions = currentRegions();
  if (isVideo() && state.selectedAdded !== null) {
    const found = regions.findIndex((r) => r.added && r.addedIndex === state.selectedAdded);
    state.selected = found >= 0 ? found : null;
  }
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
    if (region.track >= 0) rect.dataset.track = region.track;
    const title = document.createElementNS(SVG, "title");
    title.textContent = describe(region);
    rect.append(title);
    // A real mouse press is handled by the overlay (a click selects, a drag draws, even when it
    // starts on a box); this serves clicks sent without a pointer (keyboard, assistive tools).
    rect.addEventListener("click", (event) => { event.stopPropagation(); select(index); });
    svg.append(rect);
  });
  renderCounts(regions);
  renderSelection(regions);
  if (isVideo()) renderTimeline();
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
  add(isVideo() ? " will be hidden in this frame" : " will be hidden", String(hidden));
  if (unsure) add(" of them unsure, please check", `, ${unsure}`);
  if (visible) add(" left visible", `, ${visible}`);
  if (removed) add(" not a face", `, ${removed}`);
  if (isVideo()) {
    const v = state.videos[state.current];
    const tracks = new Set();
    v.regions.forEach((row) => row.forEach((r) => { if (r[4] >= 0) tracks.add(r[4]); }));
    const note = document.createElement("div");
    note.className = "small muted";
    note.textContent = `${tracks.size} face track${tracks.size === 1 ? "" : "s"} in the video` +
      (v.keep.size ? `, ${v.keep.size} left visible` : "") + (v.added.length ? `, ${v.added.length} box(es) added` : "");
    counts.append(note);
  }
}

function renderSelection(regions) {
  const region = state.selected === null ? null : regions[state.selected];
  $("selection").hidden = !region;
  if (!region) return;
  $("selection-text").textContent = describe(region);
  $("act-mask").setAttribute("aria-pressed", String(region.action === "mask"));
  $("act-remove").setAttribute("aria-pressed", String(region.action === "remove"));
  $("act-keep").setAttribute("aria-pressed", String(region.action === "keep"));
  $("act-remove").textContent = isVideo() ? "Not a face: remove box (this frame)" : "Not a face: remove box";
  $("act-keep").textContent = isVideo() ? "Leave this person visible (whole video)" : "Leave this person visible";
  $("act-remove").hidden = region.added;
  $("act-keep").hidden = region.added || (isVideo() && region.track < 0);
  $("act-mask").hidden = region.added;
  $("act-delete").hidden = !region.added;
  $("act-hold-start").hidden = !(region.added && isVideo());
  $("act-hold-end").hidden = !(region.added && isVideo());
}

function select(index) {
  state.selected = index;
  const region = currentRegions()[index];
  state.selectedAdded = region && region.added && isVideo() ? region.addedIndex : null;
  render();
}

function setAction(action) {
  const regions = currentRegions();
  const region = state.selected === null ? null : regions[state.selected];
  if (!region) return;
  if (isVideo()) {
    const v = state.videos[state.current];
    const key = removedKey(v.frame, region.mask);
    if (action === "keep" && region.track >= 0) { v.keep.add(region.track); v.removed.delete(key); }
    else if (action === "remove") { v.removed.add(key); }
    else if (action === "mask") { v.removed.delete(key); if (region.track >= 0) v.keep.delete(region.track); }
  } else {
    region.action = action;
  }
  markEdited();
  render();
}

function deleteSelected() {
  const regions = currentRegions();
  const region = state.selected === null ? null : regions[state.selected];
  if (!region || !region.added) return;
  if (isVideo()) {
    state.videos[state.current].added.splice(region.addedIndex, 1);
    state.selectedAdded = null;
  } else {
    regions.splice(state.selected, 1);
  }
  state.selected = null;
  markEdited();
  render();
}

function holdSelected(toEnd) {
  const v = state.videos[state.current];
  if (state.selectedAdded === null) return;
  const added = v.added[state.selectedAdded];
  const last = v.regions.length - 1;
  if (toEnd) {
    const key = added.keys[added.keys.length - 1];
    if (key.frame < last) added.keys.push({ frame: last, box: key.box.slice() });
  } else {
    const key = added.keys[0];
    if (key.frame > 0) added.keys.unshift({ frame: 0, box: key.box.slice() });
  }
  markEdited();
  render();
}

function markEdited() {
  delete state.exported[state.current];
  $("result").replaceChildren();
  renderFiles();
}

// ---- timeline (videos) ----

function renderTimeline() {
  const v = state.videos[state.current];
  const frames = v.regions.length;
  const runs = new Map(); // track -> [[first, last, low]]
  v.regions.forEach((row, frame) => {
    for (const [, , , , track, score, source] of row) {
      if (track < 0) continue;
      if (!runs.has(track)) runs.set(track, { segments: [], best: 0 });
      const entry = runs.get(track);
      if (source === DETECTED) entry.best = Math.max(entry.best, score);
      const last = entry.segments[entry.segments.length - 1];
      if (last && last[1] === frame - 1) last[1] = frame; else entry.segments.push([frame, frame]);
    }
  });
  // Pack tracks into as few rows as possible: a row holds tracks that never overlap in time.
  const tracks = [...runs.entries()].sort((a, b) => a[1].segments[0][0] - b[1].segments[0][0]);
  const rowEnds = [];
  const placed = tracks.map(([track, entry]) => {
    const first = entry.segments[0][0], last = entry.segments[entry.segments.length - 1][1];
    let row = rowEnds.findIndex((end) => end < first - 1);
    if (row < 0) { row = rowEnds.length; rowEnds.push(last); } else { rowEnds[row] = last; }
    return [track, entry, row];
  });
  const ROW = 10;
  const total = rowEnds.length + v.added.length;
  const height = Math.max(1, total) * ROW;
  const svg = $("timeline");
  svg.setAttribute("viewBox", `0 0 ${frames} ${height}`);
  svg.setAttribute("preserveAspectRatio", "none");
  svg.style.height = `${Math.min(Math.max(total, 1) * 8 + 4, 200)}px`;
  svg.replaceChildren();
  const selected = state.selected !== null ? currentRegions()[state.selected] : null;
  const bar = (x, y, w, cls) => {
    const rect = document.createElementNS(SVG, "rect");
    rect.setAttribute("x", x); rect.setAttribute("y", y + 1);
    rect.setAttribute("width", Math.max(w, 0.6)); rect.setAttribute("height", ROW - 2);
    rect.setAttribute("class", cls);
    svg.append(rect);
    return rect;
  };
  placed.forEach(([track, entry, row]) => {
    const cls = v.keep.has(track) ? "seg-keep" : entry.best < state.lowConfidence ? "seg-low" : "seg-mask";
    const chosen = selected && !selected.added && selected.track === track ? " seg-selected" : "";
    for (const [first, last] of entry.segments) {
      const rect = bar(first, row * ROW, last - first + 1, cls + chosen);
      rect.dataset.track = track;
    }
  });
  v.added.forEach((added, i) => {
    const first = added.keys[0].frame, last = added.keys[added.keys.length - 1].frame;
    bar(first, (rowEnds.length + i) * ROW, last - first + 1, "seg-added");
  });
  const cursor = document.createElementNS(SVG, "line");
  cursor.setAttribute("x1", v.frame + 0.5); cursor.setAttribute("x2", v.frame + 0.5);
  cursor.setAttribute("y1", 0); cursor.setAttribute("y2", height);
  cursor.setAttribute("class", "cursor");
  svg.append(cursor);
}

function setupTimeline() {
  $("timeline").addEventListener("click", (event) => {
    if (!isVideo()) return;
    const box = $("timeline").getBoundingClientRect();
    const v = state.videos[state.current];
    const frame = Math.floor(((event.clientX - box.left) / box.width) * v.regions.length);
    showFrame(frame);
  });
  $("scrubber").addEventListener("input", () => showFrame(Number($("scrubber").value)));
  $("prev-frame").addEventListener("click", () => showFrame(state.videos[state.current].frame - 1));
  $("next-frame").addEventListener("click", () => showFrame(state.videos[state.current].frame + 1));
}

// ---- dragging a new box ----

function toPicture(svg, event) {
  const point = svg.createSVGPoint();
  point.x = event.clientX; point.y = event.clientY;
  const p = point.matrixTransform(svg.getScreenCTM().inverse());
  const size = state.sizes[state.current];
  return { x: Math.min(Math.max(p.x, 0), size.width), y: Math.min(Math.max(p.y, 0), size.height) };
}

function addBox(box) {
  if (isVideo()) {
    const v = state.videos[state.current];
    const selected = state.selectedAdded === null ? null : v.added[state.selectedAdded];
    if (selected && !selected.keys.some((k) => k.frame === v.frame)) {
      selected.keys.push({ frame: v.frame, box });
      selected.keys.sort((a, b) => a.frame - b.frame);
    } else {
      v.added.push({ keys: [{ frame: v.frame, box }] });
      state.selectedAdded = v.added.length - 1;
    }
  } else {
    const regions = state.regions[state.current];
    regions.push({ mask: box, score: null, action: "mask", added: true, track: -1 });
    state.selected = regions.length - 1;
  }
  markEdited();
  render();
}

function setupDrawing() {
  const svg = $("overlay");
  let start = null;
  let pressed = null; // the box under the press, if any
  let ghost = null;
  svg.addEventListener("pointerdown", (event) => {
    if (state.current === null || event.button !== 0) return;
    start = toPicture(svg, event);
    pressed = event.target instanceof SVGRectElement && event.target.dataset.index !== undefined
      ? Number(event.target.dataset.index) : null;
    ghost = document.createElementNS(SVG, "rect");
    ghost.setAttribute("class", "drawing");
    svg.setPointerCapture(event.pointerId);
    event.preventDefault();
  });
  svg.addEventListener("pointermove", (event) => {
    if (!start) return;
    const p = toPicture(svg, event);
    if (!ghost.isConnected) svg.append(ghost);
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
    if (x1 - x0 < MIN_BOX || y1 - y0 < MIN_BOX) { // a click, not a drag
      if (pressed !== null) { select(pressed); return; }
      state.selected = null;
      state.selectedAdded = null;
      render();
      return;
    }
    addBox([x0, y0, x1 - x0, y1 - y0]);
  });
}

// ---- export ----

function updateStyleWarning() {
  const style = $("mask-style").value;
  $("style-warning").hidden = !(style === "mosaic" || style === "blur");
}

function exportBody(id) {
  const body = {
    mask: $("mask-style").value,
    destination: document.querySelector('input[name="destination"]:checked').value,
    overwrite: $("overwrite").checked,
  };
  if (state.files[id].kind === "video") {
    const v = state.videos[id];
    body.keep_tracks = [...v.keep];
    body.removed = [...v.removed].map((key) => {
      const [frame, mask] = key.split(":");
      return { frame: Number(frame), mask: mask.split(",").map(Number) };
    });
    body.added = v.added.map((a) => ({ keys: a.keys }));
  } else {
    body.regions = state.regions[id];
  }
  return body;
}

async function exportCurrent() {
  const id = state.current;
  if (id === null) return;
  const button = $("export");
  const progress = $("progress");
  const text = $("progress-text");
  button.disabled = true;
  $("result").replaceChildren();
  progress.hidden = false;
  progress.removeAttribute("value");
  text.hidden = false;
  try {
    let job = await api(`/api/files/${id}/export`, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(exportBody(id)) });
    while (job.state === "running") {
      text.textContent = job.phase === "auditing"
        ? "Saved. Now re-checking the copy for any face or data left (audit)…"
        : `Hiding faces and writing the copy…${job.total ? ` frame ${job.done} of ${job.total}` : ""}`;
      await sleep(250);
      job = await api(`/api/jobs/${job.id}`);
      if (job.total) { progress.max = job.total; progress.value = job.done; }
    }
    showResult(job);
  } catch (error) {
    showFailure(error.message);
  } finally {
    progress.hidden = true;
    text.hidden = true;
    button.disabled = false;
  }
}

function showFailure(message) {
  const p = document.createElement("p");
  p.className = "fail";
  p.textContent = `Export failed: ${message}`;
  $("result").replaceChildren(p);
  $("result").scrollIntoView({ block: "nearest" });
}

function showResult(job) {
  if (job.state !== "done") { showFailure(job.error || "unknown error"); return; }
  state.exported[job.file] = job.output;
  renderFiles();
  const p = document.createElement("p");
  p.className = "ok";
  p.id = "export-done";
  const video = state.files[job.file].kind === "video";
  const faces = video ? `${job.faces} face track${job.faces === 1 ? "" : "s"} hidden`
                      : `${job.faces} region${job.faces === 1 ? "" : "s"} hidden`;
  const kept = job.kept ? `, ${job.kept} ${video ? "person" : "face"}${job.kept === 1 ? "" : "s"} left visible as you chose` : "";
  const removed = job.removed ? `, ${job.removed} marked not a face` : "";
  p.textContent = `Saved: ${job.output} (${faces}${kept}${removed}).`;
  const audit = document.createElement("div");
  audit.className = "audit";
  if (job.audit) {
    audit.append(...auditSummary(job.audit, job.kept + job.removed));
    audit.classList.add(job.audit.clean ? "clean" : "findings");
  } else {
    audit.textContent = job.audit_note || "No audit was run.";
  }
  $("result").replaceChildren(p, audit);
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
  if (isVideo()) { setStatus("Plan files for videos: use veil redact --plan (see the README).", true); return; }
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
  $("act-hold-start").addEventListener("click", () => holdSelected(false));
  $("act-hold-end").addEventListener("click", () => holdSelected(true));
  $("export").addEventListener("click", exportCurrent);
  $("mask-style").addEventListener("change", updateStyleWarning);
  $("plan-file").addEventListener("change", uploadPlan);
  document.addEventListener("keydown", (event) => {
    if (event.target !== document.body || state.current === null) return;
    if (event.key === "Escape") { state.selected = null; state.selectedAdded = null; render(); }
    if (isVideo() && (event.key === "ArrowLeft" || event.key === "ArrowRight")) {
      showFrame(state.videos[state.current].frame + (event.key === "ArrowLeft" ? -1 : 1));
    }
    if ((event.key === "Delete" || event.key === "Backspace") && state.selected !== null) {
      const region = currentRegions()[state.selected];
      if (region && region.added) deleteSelected(); else setAction("remove");
    }
  });
  setupDrawing();
  setupTimeline();
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
    if (!state.files.length) { setStatus("No pictures or videos found in this folder.", true); return; }
    openFile(state.files[0].id);
  } catch (error) {
    setStatus(`Could not reach veil: ${error.message}`, true);
  }
}

start();

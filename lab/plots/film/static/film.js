/* The training film: one scrubber drives every panel of a run at one epoch.
 *
 * Plain JavaScript without dependencies, so the same file runs in the Streamlit component
 * (index.html) and inlined in the self-contained HTML report (lab/plots/film/__init__.py).
 * Whatever a user named (the run, the classes) is data: it reaches the page through textContent
 * and canvas fillText only. Cheap by design, since a film is played, not looked at once: frames
 * are decoded when they arrive, a step redraws the canvases and writes a few attributes, the
 * curves' lines are drawn once per data change, and the page is measured only when its width
 * changes.
 *
 * window.LabFilm.mount(root, head, text) -> {update(metrics, start, frames), epoch(), held(), show(index),
 * play(), pause(), destroy()}. update keeps the frames before `start` and replaces the rest with
 * `frames` (metrics null: the rows held stay); it returns false, changing nothing, when `start` lies
 * past the frames held: the caller must ask for a resend.
 */
(function () {
  "use strict";
  if (window.LabFilm) return; // a report with two films inlines this file twice

  const PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
    "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"]; // Tableau 10, cycled beyond
  const TRAIN_COLOR = PALETTE[0];
  const VAL_COLOR = PALETTE[1];
  const RIGHT_COLOR = "#2e9d48";
  const WRONG_COLOR = "#d1373b";
  const SPEEDS = [0.5, 1, 2, 4, 8]; // frames per second
  const DEFAULT_SPEED = 2;
  const FONT = "11px system-ui, -apple-system, 'Segoe UI', sans-serif";
  const CAM_CELL = 104; // CSS px a side of one CAM picture: ~4x a 16x16 map, near a 128 px image
  const CAM_CAPTION = 32; // two lines: "✓ true", "→ predicted 97%"
  const CAM_GAP = 10;
  const HEIGHTS = {loss: 220, accuracy: 220, class_acc: 220, features: 320, confusion: 320};
  const JET = jetTable(); // [r, g, b] * 256
  const CONFUSION_FILLS = Array.from({length: 101}, (_, i) => `rgba(78, 121, 167, ${i / 100})`);
  let mounted = 0; // ids for label/for pairs when a page holds several films

  function jetTable() {
    const table = new Uint8ClampedArray(256 * 3);
    const ramp = (x) => Math.max(0, Math.min(1, 1.5 - Math.abs(x)));
    for (let i = 0; i < 256; i++) {
      const t = i / 255;
      table[i * 3] = 255 * ramp(4 * t - 3);
      table[i * 3 + 1] = 255 * ramp(4 * t - 2);
      table[i * 3 + 2] = 255 * ramp(4 * t - 1);
    }
    return table;
  }

  function fill(template, values) {
    let out = String(template);
    for (const [key, value] of Object.entries(values)) out = out.split("{" + key + "}").join(String(value));
    return out;
  }

  const finite = (v) => typeof v === "number" && isFinite(v);
  const percent = (v) => Math.round(v * 100) + "%";
  const colorOf = (i) => PALETTE[((i % PALETTE.length) + PALETTE.length) % PALETTE.length];

  function el(tag, className, parent) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (parent) parent.appendChild(node);
    return node;
  }

  /* The longest prefix of `name` (with an ellipsis) that fits `width` pixels in ctx's font. */
  function fitText(ctx, name, width) {
    if (ctx.measureText(name).width <= width) return name;
    let chars = name.length;
    while (chars > 1 && ctx.measureText(name.slice(0, chars) + "…").width > width) chars--;
    return name.slice(0, chars) + "…";
  }

  /* 1, 2 or 5 times a power of ten, at least v: a round step between an axis's ticks. */
  function niceStep(v) {
    if (!(v > 0)) return 1;
    const power = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 5]) if (m * power >= v * (1 - 1e-9)) return m * power;
    return 10 * power;
  }

  function decodeBytes(base64) {
    try {
      const raw = atob(String(base64));
      const bytes = new Uint8Array(raw.length);
      for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
      return bytes;
    } catch (err) {
      return null; // a broken map shows as missing, not as a dead widget
    }
  }

  /* One CAM map (h*w uint8) painted with the jet colours on a canvas of h x w pixels, drawn
   * scaled (smoothly) over its image at every step. */
  function heatCanvas(bytes, h, w) {
    const canvas = document.createElement("canvas");
    canvas.width = w;
    canvas.height = h;
    const ctx = canvas.getContext("2d");
    const image = ctx.createImageData(w, h);
    for (let i = 0; i < h * w; i++) {
      const v = bytes[i] * 3;
      image.data[i * 4] = JET[v];
      image.data[i * 4 + 1] = JET[v + 1];
      image.data[i * 4 + 2] = JET[v + 2];
      image.data[i * 4 + 3] = 255;
    }
    ctx.putImageData(image, 0, 0);
    return canvas;
  }

  function prepareConfusion(rows) {
    if (!Array.isArray(rows) || !rows.length) return null;
    const n = rows.length;
    const counts = rows.map((row) => Array.from({length: n}, (_, j) => (Array.isArray(row) && finite(row[j]) ? row[j] : 0)));
    return {n, counts, sums: counts.map((row) => row.reduce((a, b) => a + b, 0))};
  }

  function preparePoints(points) {
    if (!points || !Array.isArray(points.x) || !Array.isArray(points.y) || !Array.isArray(points.label)) return null;
    const n = Math.min(points.x.length, points.y.length, points.label.length);
    const pred = Array.isArray(points.pred) ? points.pred : null;
    const x = new Float32Array(n);
    const y = new Float32Array(n);
    const groups = []; // per true class: indices predicted right, and wrong
    for (let i = 0; i < n; i++) {
      x[i] = finite(points.x[i]) ? points.x[i] : NaN;
      y[i] = finite(points.y[i]) ? points.y[i] : NaN;
      const label = Math.max(0, Math.floor(points.label[i]) || 0);
      while (groups.length <= label) groups.push({right: [], wrong: []});
      const wrong = pred !== null && pred[i] !== points.label[i];
      groups[label][wrong ? "wrong" : "right"].push(i);
    }
    return {n, x, y, groups};
  }

  function prepareCams(cams) {
    if (!cams || !Array.isArray(cams.maps)) return null;
    const h = Math.floor(cams.h);
    const w = Math.floor(cams.w);
    if (!(h > 0 && w > 0 && h * w <= 1 << 16)) return null;
    const heat = cams.maps.map((map) => {
      const bytes = decodeBytes(map);
      return bytes && bytes.length === h * w ? heatCanvas(bytes, h, w) : null;
    });
    const preds = Array.isArray(cams.preds) ? cams.preds : [];
    const confidence = Array.isArray(cams.confidence) ? cams.confidence : [];
    return {heat, preds, confidence};
  }

  function prepareFrame(raw) {
    const frame = raw || {};
    return {
      epoch: finite(frame.epoch) ? frame.epoch : 0,
      classAcc: Array.isArray(frame.class_acc) ? frame.class_acc : null,
      confusion: prepareConfusion(frame.confusion),
      points: preparePoints(frame.points),
      knn: finite(frame.knn_acc) ? frame.knn_acc : null,
      cams: prepareCams(frame.cams),
    };
  }

  /* The scatter's axes over every held frame, so a point's motion on screen is its real motion. */
  function pointBounds(frames) {
    let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
    for (const frame of frames) {
      const p = frame.points;
      if (!p) continue;
      for (let i = 0; i < p.n; i++) {
        const x = p.x[i], y = p.y[i];
        if (!(x === x && y === y)) continue; // NaN
        if (x < x0) x0 = x;
        if (x > x1) x1 = x;
        if (y < y0) y0 = y;
        if (y > y1) y1 = y;
      }
    }
    if (!(x0 <= x1)) return null;
    const padX = (x1 - x0) * 0.04 || 1, padY = (y1 - y0) * 0.04 || 1;
    return {x0: x0 - padX, x1: x1 + padX, y0: y0 - padY, y1: y1 + padY};
  }

  function mount(root, head, text) {
    head = head || {};
    text = text || {};
    const classes = (Array.isArray(head.classes) ? head.classes : []).map(String);
    const cam = head.cam && Array.isArray(head.cam.images) ? head.cam : null;
    const state = {
      frames: [], metrics: [], byEpoch: new Map(), index: -1, follow: true, playing: false, timer: 0,
      speed: DEFAULT_SPEED, bounds: null, xMax: 1, version: 0, width: -1, dpr: 1, fg: "#222", names: {},
    };
    const nameOf = (c) => (c >= 0 && c < classes.length ? classes[c] : String(c));

    root.replaceChildren();
    root.classList.add("lab-film");
    root.tabIndex = 0;
    const controls = buildControls();
    const grid = el("div", "lab-film-grid", root);
    const panels = {
      loss: panel("loss", text.loss, drawLoss),
      accuracy: panel("accuracy", text.accuracy, drawAccuracy),
      class_acc: panel("class_acc", text.class_acc, drawClassAcc),
      features: panel("features", text.feature_space, drawFeatures),
      confusion: panel("confusion", text.confusion, drawConfusion),
      cams: panel("cams", cam ? fill(text.cams, {method: cam.method || "", layer: cam.layer || ""}) : text.cams, drawCams),
    };
    buildLegend(panels.features.section);
    const images = (cam ? cam.images : []).map((src) => {
      const image = new Image();
      image.onload = () => panels.cams.width > 0 && panels.cams.draw(panels.cams, state.frames[state.index]);
      if (typeof src === "string" && src.startsWith("data:image/")) image.src = src; // never fetch anything
      return image;
    });

    const resizeObserver = new ResizeObserver(() => layout());
    resizeObserver.observe(root);
    window.addEventListener("resize", layout); // a zoom changes devicePixelRatio without resizing the root
    layout();
    render();

    function buildControls() {
      const bar = el("div", "lab-film-bar", root);
      const play = el("button", "lab-film-play", bar);
      play.type = "button";
      play.textContent = text.play;
      play.addEventListener("click", () => (state.playing ? pause() : startPlaying()));
      const scrubberId = "lab-film-scrubber-" + ++mounted;
      const label = el("label", "lab-film-epoch", bar);
      label.htmlFor = scrubberId;
      const scrubber = el("input", "lab-film-scrubber", bar);
      Object.assign(scrubber, {type: "range", id: scrubberId, min: "0", max: "0", step: "1", value: "0"});
      scrubber.addEventListener("input", () => seek(Number(scrubber.value)));
      const speedLabel = el("label", "lab-film-speed", bar);
      speedLabel.textContent = text.speed + " ";
      const speed = el("select", "", speedLabel);
      for (const fps of SPEEDS) {
        const option = el("option", "", speed);
        option.value = String(fps);
        option.textContent = fps + "×";
        option.selected = fps === DEFAULT_SPEED;
      }
      speed.addEventListener("change", () => {
        state.speed = Number(speed.value) || DEFAULT_SPEED;
        if (state.playing) schedule();
      });
      const follow = el("button", "lab-film-follow", bar);
      follow.type = "button";
      follow.textContent = text.newest;
      follow.addEventListener("click", followNewest);
      root.addEventListener("keydown", onKey);
      return {play, label, scrubber, follow};
    }

    function panel(name, title, draw) {
      const section = el("section", "lab-film-panel lab-film-" + name, grid);
      section.dataset.panel = name;
      const heading = el("h3", "lab-film-title", section);
      el("span", "lab-film-name", heading).textContent = title;
      const epoch = el("span", "lab-film-at", heading);
      const wrap = el("div", "lab-film-canvas", section);
      const canvas = el("canvas", "", wrap);
      const nodata = el("p", "lab-film-nodata", wrap);
      nodata.textContent = text.no_data;
      nodata.hidden = true;
      const height = HEIGHTS[name] || 0;
      canvas.style.height = height + "px";
      return {name, section, epoch, wrap, canvas, ctx: canvas.getContext("2d"), nodata, draw,
        width: 0, height, empty: false, shownAt: null, background: null, backgroundVersion: -1};
    }

    function buildLegend(parent) {
      const legend = el("ul", "lab-film-legend", parent);
      classes.forEach((name, c) => {
        const item = el("li", "", legend);
        el("span", "lab-film-swatch", item).style.background = colorOf(c);
        item.appendChild(document.createTextNode(name));
      });
      el("li", "lab-film-marks", legend).textContent = "● ✓   × ✗";
    }

    /* Sizes every canvas to its box at the screen's pixel ratio; a no-op unless the width or the
     * ratio changed, so a step never reads the layout. */
    function layout() {
      const width = root.clientWidth;
      const dpr = window.devicePixelRatio || 1;
      if (width === state.width && dpr === state.dpr) return;
      state.width = width;
      state.dpr = dpr;
      state.fg = getComputedStyle(root).color || state.fg;
      const all = Object.values(panels);
      const widths = all.map((p) => p.wrap.clientWidth); // every read before any write
      all.forEach((p, i) => {
        p.width = widths[i];
        if (p.name === "cams") {
          p.height = camRows(p.width) * (CAM_CELL + CAM_CAPTION + CAM_GAP);
          p.canvas.style.height = p.height + "px";
        }
        p.canvas.width = Math.max(1, Math.round(p.width * dpr));
        p.canvas.height = Math.max(1, Math.round(p.height * dpr));
      });
      fitNames();
      state.version++;
      render();
    }

    function camColumns(width) {
      return Math.max(1, Math.floor((width + CAM_GAP) / (CAM_CELL + CAM_GAP)));
    }

    function camRows(width) {
      return Math.max(1, Math.ceil(images.length / camColumns(width)));
    }

    /* Class names cut to the room each panel has for them, measured once per layout. */
    function fitNames() {
      const ctx = panels.class_acc.ctx;
      ctx.font = FONT;
      const barLabel = Math.min(110, panels.class_acc.width * 0.3);
      const rowLabel = Math.min(90, panels.confusion.width * 0.22);
      const columnLabel = Math.min(70, panels.confusion.height * 0.22);
      const camName = CAM_CELL - ctx.measureText("→  100%").width;
      state.names = {
        bars: classes.map((n) => fitText(ctx, n, barLabel - 6)),
        rows: classes.map((n) => fitText(ctx, n, rowLabel - 4)),
        columns: classes.map((n) => fitText(ctx, n, columnLabel - 4)),
        cams: classes.map((n) => fitText(ctx, n, camName)),
        barLabel, rowLabel, columnLabel,
      };
    }

    function setMetrics(metrics) {
      state.metrics = metrics.filter((row) => row && finite(row.epoch)).slice().sort((a, b) => a.epoch - b.epoch);
      state.byEpoch = new Map(state.metrics.map((row) => [row.epoch, row]));
    }

    function update(metrics, start, frames) {
      start = Math.max(0, Math.floor(Number(start)) || 0);
      if (start > state.frames.length) return false;
      state.frames.length = start;
      for (const raw of Array.isArray(frames) ? frames : []) state.frames.push(prepareFrame(raw));
      if (Array.isArray(metrics)) setMetrics(metrics);
      state.bounds = pointBounds(state.frames);
      const lastMetric = state.metrics.length ? state.metrics[state.metrics.length - 1].epoch : 0;
      const lastFrame = state.frames.length ? state.frames[state.frames.length - 1].epoch : 0;
      state.xMax = Math.max(1, lastMetric, lastFrame);
      state.version++;
      const last = state.frames.length - 1;
      state.index = state.follow ? last : Math.min(Math.max(state.index, 0), last);
      render();
      return true;
    }

    function seek(index) {
      stopTimer();
      state.follow = false;
      state.index = Math.min(Math.max(index, 0), state.frames.length - 1);
      render();
    }

    function startPlaying() {
      if (!state.frames.length) return;
      if (state.index >= state.frames.length - 1) state.index = 0; // play again from the start
      state.playing = true;
      state.follow = false;
      render();
      schedule();
    }

    function schedule() {
      clearTimeout(state.timer);
      state.timer = setTimeout(tick, 1000 / state.speed);
    }

    function tick() {
      if (!state.playing) return;
      const last = state.frames.length - 1;
      if (state.index < last) state.index++;
      if (state.index >= last) stopTimer();
      else schedule();
      render();
    }

    function stopTimer() {
      state.playing = false;
      clearTimeout(state.timer);
    }

    function pause() {
      stopTimer();
      state.follow = false;
      render();
    }

    function followNewest() {
      stopTimer();
      state.follow = true;
      state.index = state.frames.length - 1;
      render();
    }

    function onKey(event) {
      const tag = event.target.tagName;
      const typing = tag === "INPUT" || tag === "SELECT"; // they use the arrows themselves
      const moves = {ArrowLeft: -1, ArrowRight: 1, Home: -Infinity, End: Infinity};
      if (event.key in moves && !typing) {
        const move = moves[event.key];
        seek(finite(move) ? state.index + move : move < 0 ? 0 : state.frames.length - 1);
      } else if (event.key === " " && !typing && tag !== "BUTTON") {
        state.playing ? pause() : startPlaying();
      } else {
        return;
      }
      event.preventDefault();
    }

    function epochText(frame) {
      if (!frame) return "";
      if (frame.epoch === 0) return text.untrained;
      return fill(text.epoch, {epoch: frame.epoch, last: state.frames[state.frames.length - 1].epoch});
    }

    /* Writes the controls and redraws every panel at the chosen frame. */
    function render() {
      const frame = state.frames[state.index];
      const shown = frame ? String(frame.epoch) : "";
      const label = epochText(frame);
      const {play, scrubber, follow} = controls;
      scrubber.max = String(Math.max(0, state.frames.length - 1));
      scrubber.value = String(Math.max(0, state.index));
      scrubber.disabled = !frame;
      scrubber.setAttribute("aria-valuetext", label);
      controls.label.textContent = label;
      play.textContent = state.playing ? text.pause : text.play;
      follow.disabled = state.follow;
      root.dataset.epoch = shown;
      root.dataset.frames = String(state.frames.length);
      root.dataset.follow = state.follow ? "1" : "0";
      for (const p of Object.values(panels)) {
        p.section.dataset.epoch = shown;
        let at = frame ? " · " + label : "";
        if (p.name === "features" && frame && frame.knn !== null) at += " · " + fill(text.knn, {acc: percent(frame.knn)});
        if (p.shownAt !== at) p.epoch.textContent = p.shownAt = at;
        if (p.width > 0) p.draw(p, frame);
      }
    }

    function setEmpty(p, empty) {
      if (p.empty !== empty) p.nodata.hidden = !(p.empty = empty);
    }

    function begin(p) {
      const ctx = p.ctx;
      ctx.setTransform(state.dpr, 0, 0, state.dpr, 0, 0);
      ctx.clearRect(0, 0, p.width, p.height);
      ctx.font = FONT;
      ctx.fillStyle = ctx.strokeStyle = state.fg;
      ctx.globalAlpha = 1;
      ctx.lineWidth = 1;
      ctx.setLineDash([]);
      ctx.textAlign = "left";
      ctx.textBaseline = "alphabetic";
      return ctx;
    }

    function drawLoss(p, frame) {
      const values = state.metrics.flatMap((r) => [r.train_loss, r.val_loss]).filter(finite);
      const highest = Math.max(0, ...values);
      const step = niceStep(highest / 4);
      drawCurves(p, frame, ["train_loss", "val_loss"], step * Math.max(1, Math.ceil(highest / step - 1e-9)), step,
        (v) => String(Number(v.toPrecision(3))));
    }

    function drawAccuracy(p, frame) {
      drawCurves(p, frame, ["train_acc", "val_acc"], 1, 0.25, percent);
    }

    /* Train and validation curves over every epoch (drawn once per data change, then copied),
     * and the cursor at the chosen epoch with the values there. */
    function drawCurves(p, frame, keys, top, step, format) {
      const hasData = state.metrics.some((r) => keys.some((k) => finite(r[k])));
      const ctx = begin(p);
      setEmpty(p, !hasData);
      if (!hasData) return;
      const box = {left: 44, right: p.width - 12, top: 22, bottom: p.height - 22};
      const x = (epoch) => box.left + (epoch / state.xMax) * (box.right - box.left);
      const y = (v) => box.bottom - (v / top) * (box.bottom - box.top);
      if (p.backgroundVersion !== state.version) {
        p.background = curveBackground(p, keys, top, step, format, box, x, y);
        p.backgroundVersion = state.version;
      }
      ctx.setTransform(1, 0, 0, 1, 0, 0);
      ctx.drawImage(p.background, 0, 0);
      ctx.setTransform(state.dpr, 0, 0, state.dpr, 0, 0);
      if (!frame) return;
      const cx = x(frame.epoch);
      ctx.globalAlpha = 0.55;
      ctx.beginPath();
      ctx.moveTo(cx, box.top);
      ctx.lineTo(cx, box.bottom);
      ctx.stroke();
      ctx.globalAlpha = 1;
      const row = state.byEpoch.get(frame.epoch);
      if (!row) return;
      ctx.textAlign = cx > (box.left + box.right) / 2 ? "right" : "left";
      const dx = ctx.textAlign === "right" ? -6 : 6;
      const shown = keys.map((key, i) => [row[key], i === 0 ? TRAIN_COLOR : VAL_COLOR]).filter(([v]) => finite(v));
      shown.sort((a, b) => b[0] - a[0]); // the higher value's label above its dot, the lower's below
      shown.forEach(([v, color], i) => {
        const cy = y(v);
        ctx.fillStyle = color;
        ctx.beginPath();
        ctx.arc(cx, cy, 3.5, 0, 2 * Math.PI);
        ctx.fill();
        ctx.fillText(format(v), cx + dx, cy + (i === 0 ? -6 : 13));
      });
    }

    function curveBackground(p, keys, top, step, format, box, x, y) {
      const canvas = document.createElement("canvas");
      canvas.width = p.canvas.width;
      canvas.height = p.canvas.height;
      const ctx = canvas.getContext("2d");
      ctx.setTransform(state.dpr, 0, 0, state.dpr, 0, 0);
      ctx.font = FONT;
      ctx.fillStyle = ctx.strokeStyle = state.fg;
      ctx.textBaseline = "middle";
      for (let i = 0; i * step <= top * (1 + 1e-9); i++) { // value grid
        const v = i * step;
        ctx.globalAlpha = 0.15;
        ctx.beginPath();
        ctx.moveTo(box.left, y(v));
        ctx.lineTo(box.right, y(v));
        ctx.stroke();
        ctx.globalAlpha = 0.75;
        ctx.textAlign = "right";
        ctx.fillText(format(v), box.left - 6, y(v));
      }
      const every = Math.max(1, Math.round(niceStep(state.xMax / 6)));
      ctx.textAlign = "center";
      ctx.textBaseline = "top";
      for (let e = 0; e <= state.xMax; e += every) ctx.fillText(String(e), x(e), box.bottom + 5);
      ctx.globalAlpha = 1;
      ctx.lineWidth = 1.75;
      keys.forEach((key, i) => {
        ctx.strokeStyle = i === 0 ? TRAIN_COLOR : VAL_COLOR;
        ctx.beginPath();
        let drawing = false;
        for (const row of state.metrics) {
          if (!finite(row[key])) {
            drawing = false;
            continue;
          }
          drawing ? ctx.lineTo(x(row.epoch), y(row[key])) : ctx.moveTo(x(row.epoch), y(row[key]));
          drawing = true;
        }
        ctx.stroke();
      });
      ctx.textAlign = "left";
      ctx.textBaseline = "middle";
      let lx = box.left;
      [[text.train, TRAIN_COLOR], [text.val, VAL_COLOR]].forEach(([name, color]) => {
        ctx.fillStyle = color;
        ctx.fillRect(lx, 7, 14, 3);
        ctx.fillStyle = state.fg;
        ctx.fillText(name, lx + 18, 9);
        lx += 30 + ctx.measureText(name).width;
      });
      return canvas;
    }

    function drawClassAcc(p, frame) {
      const ctx = begin(p);
      const acc = frame && frame.classAcc;
      setEmpty(p, !acc);
      if (!acc) return;
      const n = acc.length;
      const box = {left: state.names.barLabel, right: p.width - 40, top: 4, bottom: p.height - 18};
      const rowHeight = (box.bottom - box.top) / Math.max(1, n);
      const width = (v) => v * (box.right - box.left);
      ctx.globalAlpha = 0.15;
      for (const v of [0, 0.5, 1]) ctx.fillRect(box.left + width(v), box.top, 1, box.bottom - box.top);
      ctx.globalAlpha = 0.75;
      ctx.textAlign = "center";
      ctx.textBaseline = "top";
      for (const v of [0, 0.5, 1]) ctx.fillText(percent(v), box.left + width(v), box.bottom + 4);
      ctx.globalAlpha = 1;
      ctx.textBaseline = "middle";
      ctx.font = Math.max(7, Math.min(11, rowHeight * 0.8)) + "px system-ui, sans-serif";
      for (let c = 0; c < n; c++) {
        const cy = box.top + (c + 0.5) * rowHeight;
        ctx.fillStyle = state.fg;
        ctx.textAlign = "right";
        if (rowHeight >= 7) ctx.fillText(state.names.bars[c] || String(c), box.left - 6, cy);
        ctx.textAlign = "left";
        if (!finite(acc[c])) {
          ctx.globalAlpha = 0.5;
          ctx.fillText("–", box.left + 4, cy);
          ctx.globalAlpha = 1;
          continue;
        }
        ctx.fillStyle = colorOf(c);
        ctx.fillRect(box.left, cy - rowHeight * 0.35, width(Math.max(0, Math.min(1, acc[c]))), rowHeight * 0.7);
        ctx.fillStyle = state.fg;
        ctx.fillText(percent(acc[c]), box.left + width(Math.min(1, acc[c])) + 4, cy);
      }
    }

    function drawConfusion(p, frame) {
      const ctx = begin(p);
      const matrix = frame && frame.confusion;
      setEmpty(p, !matrix);
      if (!matrix) return;
      const {n, counts, sums} = matrix;
      const left = state.names.rowLabel + 16, bottom = state.names.columnLabel + 18;
      const cell = Math.max(1, Math.min((p.width - left - 4) / n, (p.height - bottom - 4) / n));
      const side = cell * n, x0 = left + Math.max(0, (p.width - left - 4 - side) / 2), y0 = 4;
      const countFont = Math.min(11, cell * 0.42);
      for (let i = 0; i < n; i++) {
        for (let j = 0; j < n; j++) {
          const share = sums[i] > 0 ? counts[i][j] / sums[i] : 0;
          ctx.fillStyle = CONFUSION_FILLS[Math.round(share * 100)];
          ctx.fillRect(x0 + j * cell, y0 + i * cell, cell - 1, cell - 1);
          if (cell >= 14 && counts[i][j] > 0) {
            ctx.fillStyle = share > 0.55 ? "#fff" : state.fg;
            ctx.font = countFont + "px system-ui, sans-serif";
            ctx.textAlign = "center";
            ctx.textBaseline = "middle";
            ctx.fillText(String(counts[i][j]), x0 + (j + 0.5) * cell, y0 + (i + 0.5) * cell);
          }
        }
      }
      ctx.fillStyle = state.fg;
      ctx.font = FONT;
      const nameSize = cell >= 8;
      ctx.textBaseline = "middle";
      ctx.textAlign = "right";
      for (let i = 0; i < n && nameSize; i++) ctx.fillText(state.names.rows[i] || nameOf(i), x0 - 4, y0 + (i + 0.5) * cell);
      for (let j = 0; j < n && nameSize; j++) {
        ctx.save();
        ctx.translate(x0 + (j + 0.5) * cell, y0 + side + 4);
        ctx.rotate(-Math.PI / 2);
        ctx.fillText(state.names.columns[j] || nameOf(j), 0, 0);
        ctx.restore();
      }
      ctx.globalAlpha = 0.75;
      ctx.textAlign = "center";
      ctx.textBaseline = "bottom";
      ctx.fillText(text.predicted, x0 + side / 2, p.height - 2);
      ctx.save();
      ctx.translate(x0 - state.names.rowLabel - 8, y0 + side / 2);
      ctx.rotate(-Math.PI / 2);
      ctx.textBaseline = "middle";
      ctx.fillText(text.true, 0, 0);
      ctx.restore();
    }

    function drawFeatures(p, frame) {
      const ctx = begin(p);
      const points = frame && frame.points;
      const b = state.bounds;
      setEmpty(p, !points || !b);
      if (!points || !b) return;
      const pad = 8;
      const sx = (p.width - 2 * pad) / (b.x1 - b.x0), sy = (p.height - 2 * pad) / (b.y1 - b.y0);
      const r = 2.6;
      ctx.globalAlpha = 0.2;
      ctx.strokeRect(0.5, 0.5, p.width - 1, p.height - 1);
      ctx.globalAlpha = 0.8;
      points.groups.forEach((group, c) => { // right ones as dots, class by class: one path per colour
        ctx.fillStyle = colorOf(c);
        ctx.beginPath();
        for (const i of group.right) {
          const px = pad + (points.x[i] - b.x0) * sx, py = p.height - pad - (points.y[i] - b.y0) * sy;
          ctx.moveTo(px + r, py);
          ctx.arc(px, py, r, 0, 2 * Math.PI);
        }
        ctx.fill();
      });
      ctx.globalAlpha = 1;
      ctx.lineWidth = 1.5;
      points.groups.forEach((group, c) => { // wrong ones as crosses on top, in their true class's colour
        ctx.strokeStyle = colorOf(c);
        ctx.beginPath();
        for (const i of group.wrong) {
          const px = pad + (points.x[i] - b.x0) * sx, py = p.height - pad - (points.y[i] - b.y0) * sy;
          ctx.moveTo(px - r, py - r);
          ctx.lineTo(px + r, py + r);
          ctx.moveTo(px - r, py + r);
          ctx.lineTo(px + r, py - r);
        }
        ctx.stroke();
      });
    }

    function drawCams(p, frame) {
      const ctx = begin(p);
      const cams = frame && frame.cams;
      setEmpty(p, !cam || !cams);
      if (!cam || !cams) return;
      const columns = camColumns(p.width);
      const mark = ctx.measureText("✓ ").width;
      ctx.textBaseline = "top";
      ctx.imageSmoothingEnabled = true;
      images.forEach((image, i) => {
        const x = (i % columns) * (CAM_CELL + CAM_GAP), y = Math.floor(i / columns) * (CAM_CELL + CAM_CAPTION + CAM_GAP);
        if (image.complete && image.naturalWidth) ctx.drawImage(image, x, y, CAM_CELL, CAM_CELL);
        if (cams.heat[i]) {
          ctx.globalAlpha = 0.5;
          ctx.drawImage(cams.heat[i], x, y, CAM_CELL, CAM_CELL);
          ctx.globalAlpha = 1;
        }
        const truth = Array.isArray(cam.labels) ? cam.labels[i] : null, pred = cams.preds[i];
        if (!finite(pred) || !finite(truth)) return;
        const right = pred === truth;
        ctx.strokeStyle = ctx.fillStyle = right ? RIGHT_COLOR : WRONG_COLOR;
        ctx.lineWidth = 2;
        ctx.strokeRect(x + 1, y + 1, CAM_CELL - 2, CAM_CELL - 2);
        ctx.fillText(right ? "✓" : "✗", x, y + CAM_CELL + 3);
        ctx.fillStyle = state.fg;
        const names = state.names.cams;
        const sure = finite(cams.confidence[i]) ? " " + percent(cams.confidence[i]) : "";
        ctx.fillText(names[truth] ?? nameOf(truth), x + mark, y + CAM_CELL + 3);
        ctx.fillText("→ " + (names[pred] ?? nameOf(pred)) + sure, x, y + CAM_CELL + 17);
      });
    }

    function destroy() {
      stopTimer();
      resizeObserver.disconnect();
      window.removeEventListener("resize", layout);
      root.removeEventListener("keydown", onKey);
    }

    const film = {
      update,
      epoch: () => (state.frames[state.index] ? state.frames[state.index].epoch : null),
      held: () => state.frames.length,
      show: seek,
      play: startPlaying,
      pause,
      destroy,
    };
    root.labFilm = film; // for a page script (the benchmark) that did not mount it
    return film;
  }

  window.LabFilm = {mount};
})();

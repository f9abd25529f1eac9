/* LoRA Handbook calculator: the form, the URL and the rendering. The numbers are calc's.
 *
 * calc itself computes everything: its modules, rewritten for MicroPython at build time
 * (macros/mpy_transform.py), run in a worker (calc-worker.mjs) and answer calc.pages.calculator.compute_json(state).
 * This file holds no formula: it reads the form, asks the worker, and prints the integers and floats it
 * gets back (integers arrive as decimal strings, floats as their IEEE-754 bits; pyFixed() rounds exactly as
 * Python's format() does, so the page shows what `python -m calc` prints).
 *
 * Loaded only by the calculator page (the page content carries the <script>). Survives Material's instant
 * navigation: the script re-runs (or document$ fires) and mount() is idempotent per page; the worker and the
 * downloaded data are kept in one window global. The whole state lives in the query string: a change pushes
 * a history entry, back/forward (popstate) restores it.
 */
(function () {
  "use strict";
  if (window.__lhCalc) { window.__lhCalc.mount(); return; }

  var FIELDS = ["r", "lora_alpha", "targets", "target_modules", "use_dora", "use_rslora", "method", "base_precision",
    "adapter_dtype", "optimizer", "micro_batch", "seq_len", "gradient_checkpointing", "num_gpus", "sharding"];
  var BOOLS = { use_dora: 1, use_rslora: 1, gradient_checkpointing: 1 };
  var LORA_ONLY = ["r", "lora_alpha", "targets", "use_dora", "use_rslora", "adapter_dtype"];
  var CONTROL = {  // calc field -> control id
    r: "lh-calc-r", lora_alpha: "lh-calc-alpha", targets: "lh-calc-targets", target_modules: "lh-calc-modules",
    use_dora: "lh-calc-dora", use_rslora: "lh-calc-rslora", method: "lh-calc-method", lora: "lh-calc-method",
    base_precision: "lh-calc-precision", adapter_dtype: "lh-calc-adapter-dtype", optimizer: "lh-calc-optimizer",
    micro_batch: "lh-calc-batch", seq_len: "lh-calc-seq", gradient_checkpointing: "lh-calc-gc",
    num_gpus: "lh-calc-gpus", sharding: "lh-calc-sharding", config_json: "lh-calc-config-json"
  };
  var SLOW_MS = 1500;   // a computation running longer is abandoned (worker restarted) when the input changes
  var shared = { data: null, engine: null, current: null };

  // ---------------------------------------------------------------------------------------- formatting
  function groupDigits(s) { return String(s).replace(/\B(?=(\d{3})+(?!\d))/g, ","); }

  function hexFloat(s) {            // "0x3fb999999999999a" -> 0.1 (the exact double)
    if (s === null || s === undefined) return null;
    var view = new DataView(new ArrayBuffer(8));
    view.setUint32(0, parseInt(s.slice(2, 10), 16));
    view.setUint32(4, parseInt(s.slice(10, 18), 16));
    return view.getFloat64(0);
  }

  // Python's format(x, ".{d}f"): the exact binary value, rounded half to even.
  function pyFixed(x, d) {
    if (!isFinite(x)) return String(x);
    var neg = x < 0 || Object.is(x, -0);
    var view = new DataView(new ArrayBuffer(8));
    view.setFloat64(0, Math.abs(x));
    var hi = view.getUint32(0), lo = view.getUint32(4);
    var exp = (hi >>> 20) & 0x7ff;
    var mant = (BigInt(hi & 0xfffff) << 32n) | BigInt(lo);
    if (exp === 0) exp = 1; else mant |= 1n << 52n;
    var e2 = exp - 1075, num = mant, den = 1n;
    if (e2 >= 0) num = mant << BigInt(e2); else den = 1n << BigInt(-e2);
    var scaled = num * (10n ** BigInt(d));
    var q = scaled / den, twice = 2n * (scaled % den);
    if (twice > den || (twice === den && (q & 1n) === 1n)) q += 1n;
    var s = q.toString().padStart(d + 1, "0");
    return (neg ? "-" : "") + (d ? s.slice(0, s.length - d) + "." + s.slice(s.length - d) : s);
  }

  function trimmed(x, d) {
    var s = pyFixed(x, d);
    return s.indexOf(".") < 0 ? s : s.replace(/0+$/, "").replace(/\.$/, "");
  }

  // bytes (decimal string) / 2^shift to d decimals, as Python's f"{b / 2**shift:.{d}f}"
  function scaledBytes(s, shift, d, signed) {
    var x = Number(BigInt(s)) / Math.pow(2, shift);
    var out = pyFixed(x, d);
    return signed && out.charAt(0) !== "-" ? "+" + out : out;
  }
  function gib(s, signed) { return scaledBytes(s, 30, 2, signed); }
  function mib(s) { return scaledBytes(s, 20, 2, false); }

  // ------------------------------------------------------------------------------------------ the engine
  // The worker downloads MicroPython, calc and the GPU list itself: the main thread is busy with Material's
  // start-up for a few hundred milliseconds after this script runs, and nothing the worker needs waits on it.
  function Engine(base, versions) {
    this.base = base;
    this.versions = versions;
    this.workerUrl = base + "calc-worker.mjs?v=" + (versions["calc-worker.mjs"] || "0");
    this.nextId = 1;
    this.busy = null;      // {id, kind, payload, resolve, started}
    this.queue = [];
    this.initialised = false;
    this.start();
  }
  Engine.prototype.start = function () {
    var self = this;
    this.initialised = false;
    this.worker = new Worker(this.workerUrl);
    this.worker.onmessage = function (ev) { self.answer(ev.data); };
    this.worker.onerror = function (ev) {
      ev.preventDefault();
      self.answer({ id: self.busy && self.busy.id, error: "the calculator's worker failed: " + (ev.message || "unknown") });
    };
    this.started = performance.now();
    this.ready = this.send("init", { base: this.base, versions: this.versions }, true).then(function (msg) {
      if (msg && msg.timings) {   // for benchmarks/bench_calculator.py
        // ms since navigation (the worker reports epoch ms: its own clock starts elsewhere)
        var since = function (epoch) { return Math.round(epoch - performance.timeOrigin); };
        self.timings = { worker_created: Math.round(self.started), worker_running: since(msg.timings.worker_running),
                         downloaded: since(msg.timings.downloaded), micropython_loaded: since(msg.timings.micropython),
                         calc_imported: since(msg.timings.imported), ready: Math.round(performance.now()) };
      }
      return msg;
    });
  };
  Engine.prototype.send = function (kind, payload, front) {
    var self = this;
    return new Promise(function (resolve) {
      var job = { id: self.nextId++, kind: kind, payload: payload, resolve: resolve };
      if (kind === "compute") {   // only the newest computation matters
        self.queue = self.queue.filter(function (j) {
          if (j.kind === "compute") { j.resolve({ superseded: true }); return false; }
          return true;
        });
        if (self.busy && self.busy.kind === "compute" && Date.now() - self.busy.started > SLOW_MS) self.restart();
      }
      if (front) self.queue.unshift(job); else self.queue.push(job);
      self.pump();
    });
  };
  Engine.prototype.restart = function () {
    var stuck = this.busy;
    this.worker.terminate();
    this.busy = null;
    if (stuck) stuck.resolve({ superseded: true });
    this.start();
  };
  Engine.prototype.pump = function () {
    if (this.busy || !this.queue.length) return;
    if (!this.initialised && this.queue[0].kind !== "init") return;   // nothing runs before MicroPython
    var job = this.queue.shift();
    job.started = Date.now();
    this.busy = job;
    this.worker.postMessage({ id: job.id, kind: job.kind, payload: job.payload });
  };
  Engine.prototype.answer = function (msg) {
    var job = this.busy;
    if (!job || !msg || msg.id !== job.id) return;
    this.busy = null;
    if (job.kind === "init" && !msg.error) this.initialised = true;
    job.resolve(msg);
    this.pump();
  };
  Engine.prototype.compute = function (stateJson) { return this.send("compute", stateJson); };
  Engine.prototype.parse = function (text) { return this.send("parse", text); };

  // --------------------------------------------------------------------------------------------- helpers
  function $(id) { return document.getElementById(id); }
  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined) node.textContent = text;
    return node;
  }
  function clone(o) { return JSON.parse(JSON.stringify(o)); }
  function asBool(v) { return v === true || v === "true" || v === "1" || v === "on"; }

  // ------------------------------------------------------------------------------------------ the page
  function Calculator(root, data) {
    this.root = root;
    this.data = data;
    this.cat = data.catalogue;
    this.defaults = this.cat.defaults;
    this.seq = 0;
    this.model = null;          // calc's model info for the current config (target names, resolved dims)
    this.pasteError = null;
    this.timer = null;
    this.state = this.fromQuery(location.search);
    this.writeForm();
    this.bind();
    this.compute();
  }

  Calculator.prototype.alive = function () { return document.body.contains(this.root); };

  // state <-> URL ---------------------------------------------------------------------------------------
  Calculator.prototype.baseConfig = function (state) {
    state = state || this.state;
    if (state.preset === "custom") return state.custom || {};
    var p = this.data.presets[state.preset];
    return p ? p.config : {};
  };
  Calculator.prototype.config = function (state) {
    state = state || this.state;
    var out = clone(this.baseConfig(state));
    Object.keys(state.overrides).forEach(function (k) { out[k] = state.overrides[k]; });
    return out;
  };
  Calculator.prototype.fromQuery = function (search) {
    var params = new URLSearchParams(search || "");
    var d = this.defaults, st = { preset: d.preset, custom: null, overrides: {} };
    FIELDS.forEach(function (f) { st[f] = clone(d[f]); });
    var preset = params.get("preset");
    if (preset === "custom" || (preset && this.data.presets[preset])) st.preset = preset;
    var cfg = {};
    params.forEach(function (value, key) {
      if (key.slice(0, 2) !== "c.") return;
      var v = value;
      try {
        var parsed = JSON.parse(value);
        if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) v = parsed;
        if (typeof parsed === "number") v = value;          // keep what was typed ("012", "1e3")
      } catch (e) { /* a string as typed */ }
      cfg[key.slice(2)] = v;
    });
    if (st.preset === "custom") { st.custom = cfg; } else { st.overrides = cfg; }
    var cat = this.cat, choices = {    // a value the form cannot show falls back to the default
      targets: cat.target_sets, method: cat.methods, adapter_dtype: cat.adapter_dtypes, optimizer: cat.optimizers,
      sharding: cat.sharding, base_precision: [].concat.apply([], Object.keys(cat.precisions).map(function (m) {
        return cat.precisions[m]; }))
    };
    FIELDS.forEach(function (f) {
      if (!params.has(f)) return;
      var v = params.get(f);
      if (BOOLS[f]) st[f] = asBool(v);
      else if (f === "target_modules") st[f] = v ? v.split(",").filter(Boolean) : [];
      else if (!choices[f] || choices[f].indexOf(v) >= 0) st[f] = v;
    });
    return st;
  };
  Calculator.prototype.toQuery = function (state) {
    state = state || this.state;
    var d = this.defaults, params = new URLSearchParams();
    if (state.preset !== d.preset) params.set("preset", state.preset);
    var cfg = state.preset === "custom" ? this.config(state) : state.overrides;
    Object.keys(cfg).sort().forEach(function (k) {
      var v = cfg[k];
      params.set("c." + k, typeof v === "string" ? v : JSON.stringify(v));
    });
    FIELDS.forEach(function (f) {
      var v = state[f];
      if (f === "target_modules") {
        if (state.targets === "custom" && v.length) params.set(f, v.join(","));
        return;
      }
      if (String(v) !== String(d[f])) params.set(f, String(v));
    });
    var q = params.toString();
    return q ? "?" + q : "";
  };
  Calculator.prototype.pageUrl = function (state) {
    return location.origin + location.pathname + this.toQuery(state);
  };

  // form <-> state --------------------------------------------------------------------------------------
  Calculator.prototype.dims = function () {
    var mt = this.baseConfig().model_type;
    var fam = this.cat.families[mt];
    return fam ? fam.dims : {};
  };
  Calculator.prototype.resolved = function () {
    if (this.model && this.model.resolved) return this.model.resolved;
    var p = this.data.presets[this.state.preset];
    return p ? p.resolved : {};
  };
  Calculator.prototype.targetNames = function () {
    if (this.model && this.model.target_names) return this.model.target_names;
    var p = this.data.presets[this.state.preset];
    return p ? p.target_names : [];
  };
  Calculator.prototype.writeForm = function () {
    var st = this.state, self = this;
    $("lh-calc-preset").value = st.preset;
    var dims = this.dims(), base = this.baseConfig(), resolved = this.resolved();
    Object.keys(this.data.labels.dimensions).forEach(function (dim) {
      var id = "lh-calc-dim-" + dim, input = $(id), key = dims[dim];
      var wrap = input.closest(".lh-calc__field");
      wrap.hidden = !key;
      var code = wrap.querySelector("label code");
      if (code && key) code.textContent = key;
      input.dataset.key = key || "";
      if (!key) return;
      var has = Object.prototype.hasOwnProperty;
      var v = has.call(st.overrides, key) ? st.overrides[key] : (has.call(base, key) ? base[key] : null);
      if (dim === "tied") {
        input.checked = v === null ? !!resolved[key] : asBool(v);
      } else {
        input.value = v === null ? "" : String(v);
        var r = resolved[key];
        input.placeholder = r === null || r === undefined ? "default" : "default: " + r;
      }
    });
    $("lh-calc-r").value = st.r;
    $("lh-calc-alpha").value = st.lora_alpha;
    $("lh-calc-targets").value = st.targets;
    $("lh-calc-dora").checked = asBool(st.use_dora);
    $("lh-calc-rslora").checked = asBool(st.use_rslora);
    var radio = $("lh-calc-method-" + st.method) || $("lh-calc-method-" + this.defaults.method);
    radio.checked = true;
    this.precisionOptions();
    $("lh-calc-precision").value = st.base_precision;
    $("lh-calc-adapter-dtype").value = st.adapter_dtype;
    $("lh-calc-optimizer").value = st.optimizer;
    $("lh-calc-batch").value = st.micro_batch;
    $("lh-calc-seq").value = st.seq_len;
    $("lh-calc-gc").checked = asBool(st.gradient_checkpointing);
    $("lh-calc-gpus").value = st.num_gpus;
    $("lh-calc-sharding").value = st.sharding;
    this.moduleBoxes();
    this.lockLora();
    self.root.dataset.preset = st.preset;
  };
  Calculator.prototype.precisionOptions = function () {
    var st = this.state, sel = $("lh-calc-precision");
    var list = this.cat.precisions[st.method] || this.cat.precisions[this.defaults.method];
    var have = Array.prototype.map.call(sel.options, function (o) { return o.value; }).join(",");
    if (have !== list.join(",")) {
      sel.textContent = "";
      list.forEach(function (p) { sel.appendChild(el("option", { value: p }, p)); });
    }
    if (list.indexOf(st.base_precision) < 0) {
      st.base_precision = list.indexOf(this.defaults.base_precision) >= 0 ? this.defaults.base_precision : list[0];
    }
    sel.value = st.base_precision;
  };
  Calculator.prototype.lockLora = function () {
    var full = this.state.method === "full";
    LORA_ONLY.forEach(function (f) { var c = $(CONTROL[f]); if (c) c.disabled = full; });
    $("lh-calc-modules").disabled = full;
  };
  Calculator.prototype.moduleBoxes = function () {
    var st = this.state, box = $("lh-calc-module-boxes"), names = this.targetNames();
    var current = Array.prototype.map.call(box.querySelectorAll("input"), function (i) { return i.value; });
    if (current.join(",") !== names.join(",")) {
      box.textContent = "";
      names.forEach(function (name) {
        var id = "lh-calc-tm-" + name.replace(/[^A-Za-z0-9_-]/g, "_");
        var wrap = el("div", { "class": "lh-calc__check" });
        var input = el("input", { type: "checkbox", id: id, value: name, name: "target_module" });
        var label = el("label", { "for": id });
        label.appendChild(el("code", {}, name));
        wrap.appendChild(input);
        wrap.appendChild(label);
        box.appendChild(wrap);
      });
    }
    var chosen;
    if (st.targets === "custom") chosen = st.target_modules;
    else if (st.targets === "all-linear") chosen = names;
    else chosen = (this.model && this.model.peft_target_modules && this.resolvedFor === st.targets) ? this.model.peft_target_modules : [];
    var leaves = chosen.map(function (n) { return n.split(".").pop(); });
    Array.prototype.forEach.call(box.querySelectorAll("input"), function (i) {
      i.checked = chosen.indexOf(i.value) >= 0 || leaves.indexOf(i.value) >= 0;
    });
  };
  Calculator.prototype.readForm = function () {
    var st = this.state, dims = this.dims(), base = this.baseConfig(), resolved = this.resolved();
    Object.keys(this.data.labels.dimensions).forEach(function (dim) {
      var key = dims[dim], input = $("lh-calc-dim-" + dim);
      if (!key) return;
      var has = Object.prototype.hasOwnProperty.call(base, key);
      if (dim === "tied") return;   // a checkbox: only a click changes it (see tiedChanged)
      var v = input.value;
      var original = has && base[key] !== null ? String(base[key]) : "";
      if (v === original) delete st.overrides[key]; else st.overrides[key] = v;
    }, this);
    st.r = $("lh-calc-r").value;
    st.lora_alpha = $("lh-calc-alpha").value;
    st.targets = $("lh-calc-targets").value;
    st.use_dora = $("lh-calc-dora").checked;
    st.use_rslora = $("lh-calc-rslora").checked;
    var m = this.root.querySelector('input[name="method"]:checked');
    st.method = m ? m.value : this.defaults.method;
    st.base_precision = $("lh-calc-precision").value;
    st.adapter_dtype = $("lh-calc-adapter-dtype").value;
    st.optimizer = $("lh-calc-optimizer").value;
    st.micro_batch = $("lh-calc-batch").value;
    st.seq_len = $("lh-calc-seq").value;
    st.gradient_checkpointing = $("lh-calc-gc").checked;
    st.num_gpus = $("lh-calc-gpus").value;
    st.sharding = $("lh-calc-sharding").value;
    return st;
  };
  Calculator.prototype.computeState = function () {
    var st = this.state, out = { config: this.config() };
    FIELDS.forEach(function (f) { out[f] = st[f]; });
    return out;
  };

  // events ------------------------------------------------------------------------------------------------
  Calculator.prototype.bind = function () {
    var self = this, form = $("lh-calc-form");
    form.addEventListener("input", function (ev) {
      var t = ev.target;
      if (t.id === "lh-calc-config-json") { if (!t.value.trim() && self.pasteError) { self.pasteError = null; self.changed(false); } return; }
      if (t.tagName === "INPUT" && t.type === "text") {
        self.readForm();
        self.pending();
        clearTimeout(self.timer);
        self.timer = setTimeout(function () { self.compute(); }, 150);
      }
    });
    form.addEventListener("keydown", function (ev) {   // Enter commits a text field (there is no <form>)
      var t = ev.target;
      if (ev.key === "Enter" && t.tagName === "INPUT" && t.type === "text") {
        self.readForm();
        self.changed(true);
      }
    });
    form.addEventListener("change", function (ev) {
      var t = ev.target;
      if (t.id === "lh-calc-config-json") return;
      if (t.id === "lh-calc-preset") return self.presetChanged();
      if (t.id === "lh-calc-dim-tied") self.tiedChanged(t.checked);
      if (t.name === "target_module") {
        self.state.targets = "custom";
        $("lh-calc-targets").value = "custom";
        self.state.target_modules = Array.prototype.filter.call(
          $("lh-calc-module-boxes").querySelectorAll("input"), function (i) { return i.checked; })
          .map(function (i) { return i.value; });
        return self.changed(true);
      }
      self.readForm();
      if (t.id === "lh-calc-targets" && self.state.targets === "custom" && !self.state.target_modules.length) {
        self.state.target_modules = Array.prototype.filter.call(
          $("lh-calc-module-boxes").querySelectorAll("input"), function (i) { return i.checked; })
          .map(function (i) { return i.value; });
      }
      if (t.name === "method") { self.precisionOptions(); self.lockLora(); }
      self.moduleBoxes();
      self.changed(true);
    });
    $("lh-calc-paste-apply").addEventListener("click", function () { self.paste(); });
    $("lh-calc-copy").addEventListener("click", function () { self.copyLink(); });
  };
  Calculator.prototype.tiedChanged = function (checked) {
    var key = this.dims().tied, base = this.baseConfig();
    if (!key) return;
    if (Object.prototype.hasOwnProperty.call(base, key) && asBool(base[key]) === checked) delete this.state.overrides[key];
    else this.state.overrides[key] = checked;
  };
  Calculator.prototype.presetChanged = function () {
    var st = this.state, value = $("lh-calc-preset").value;
    if (value === "custom") {
      st.custom = this.config();
      st.overrides = {};
    } else {
      st.custom = null;
      st.overrides = {};
      var names = this.data.presets[value].target_names;
      st.target_modules = st.target_modules.filter(function (n) { return names.indexOf(n) >= 0; });
      if (st.targets === "custom" && !st.target_modules.length) st.targets = this.defaults.targets;
    }
    st.preset = value;
    this.pasteError = null;
    this.model = null;
    this.writeForm();
    this.changed(true);
  };
  Calculator.prototype.changed = function (push) {
    clearTimeout(this.timer);
    if (push) {
      var url = this.pageUrl();
      if (url !== location.href) history.pushState({ lhCalc: this.toQuery() }, "", url);
    }
    this.compute();
  };
  Calculator.prototype.restore = function () {
    clearTimeout(this.timer);
    this.state = this.fromQuery(location.search);
    this.model = null;
    this.pasteError = null;
    this.clearErrors();
    this.writeForm();
    this.compute();
  };
  Calculator.prototype.paste = function () {
    var self = this, text = $("lh-calc-config-json").value;
    shared.engine.ready.then(function () { return shared.engine.parse(text); }).then(function (msg) {
      if (!self.alive() || msg.superseded) return;
      self.root.dataset.pastes = String(Number(self.root.dataset.pastes || 0) + 1);
      if (msg.error) return self.internal(msg.error);
      var out = JSON.parse(msg.result);
      if (out.errors) {
        self.pasteError = out.errors.config_json || "cannot use this config";
        self.compute();
        return;
      }
      self.pasteError = null;
      self.state.preset = "custom";
      self.state.custom = out.config;
      self.state.overrides = {};
      self.model = null;
      self.writeForm();
      self.changed(true);
    });
  };
  Calculator.prototype.copyLink = function () {
    var url = this.pageUrl(), status = $("lh-calc-copied"), input = $("lh-calc-link");
    input.value = url;
    function fallback() {
      input.focus();
      input.select();
      status.textContent = "Select the link above and copy it (Ctrl+C or Cmd+C).";
    }
    if (navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(url).then(function () {
        status.textContent = "Link copied.";
      }, fallback);
    } else fallback();
  };

  // computing and rendering --------------------------------------------------------------------------------
  // the form's state is ahead of the results: mark them (tests and assistive technology can tell)
  Calculator.prototype.pending = function () {
    var results = $("lh-calc-results");
    $("lh-calc-form").dataset.query = this.toQuery();
    $("lh-calc-link").value = this.pageUrl();
    if (results.dataset.state === "ok") results.dataset.state = "pending";
    results.setAttribute("aria-busy", "true");
  };
  Calculator.prototype.compute = function () {
    var self = this, seq = ++this.seq, query = this.toQuery(), state = this.computeState();
    var results = $("lh-calc-results");
    this.pending();
    shared.engine.ready.then(function (msg) {
      if (msg && msg.error) return { error: msg.error };
      return shared.engine.compute(JSON.stringify(state));
    }).then(function (msg) {
      if (!self.alive() || seq !== self.seq || msg.superseded) return;
      if (msg.error) return self.internal(msg.error, query);
      self.render(JSON.parse(msg.result), query);
      if (shared.engine.timings && !self.root.dataset.timings) {
        var t = shared.engine.timings;
        t.first_result = Math.round(performance.now());
        t.compute_ms = msg.ms;
        self.root.dataset.timings = JSON.stringify(t);
      }
    });
    setTimeout(function () {   // a slow computation: say so rather than show the previous numbers
      if (seq === self.seq && results.dataset.state === "pending") {
        results.dataset.state = "computing";
        $("lh-calc-numbers").hidden = true;
        $("lh-calc-status").textContent = "Computing…";
      }
    }, 400);
  };
  Calculator.prototype.internal = function (message, query) {
    console.error("LoRA Handbook calculator:", message);
    this.clearErrors();
    this.showAlert(["The calculator failed: " + message]);
    this.invalid(query);
  };
  Calculator.prototype.clearErrors = function () {
    Array.prototype.forEach.call(this.root.querySelectorAll(".lh-calc__error"), function (p) {
      p.hidden = true;
      p.textContent = "";
    });
    Array.prototype.forEach.call(this.root.querySelectorAll("[aria-invalid]"), function (c) {
      c.removeAttribute("aria-invalid");
    });
    $("lh-calc-alert").hidden = true;
    $("lh-calc-alert").textContent = "";
  };
  Calculator.prototype.showAlert = function (lines) {
    var alert = $("lh-calc-alert");
    alert.textContent = "";
    lines.forEach(function (line) { alert.appendChild(el("p", {}, line)); });
    alert.hidden = !lines.length;
  };
  Calculator.prototype.fieldFor = function (key) {
    if (key.slice(0, 7) === "config.") {
      var cfgKey = key.slice(7), dims = this.dims();
      for (var dim in dims) if (dims[dim] === cfgKey) return "lh-calc-dim-" + dim;
      return null;
    }
    return CONTROL[key] || null;
  };
  Calculator.prototype.showErrors = function (errors) {
    var general = [], self = this;
    Object.keys(errors).forEach(function (key) {
      var id = self.fieldFor(key), msg = errors[key];
      var slot = id && $(id + "-err");
      if (!slot) { general.push((key.replace(/^config\.?/, "") || "config") + ": " + msg); return; }
      slot.textContent = msg;
      slot.hidden = false;
      var control = $(id);
      if (id === "lh-calc-modules") control = $("lh-calc-targets");
      if (id === "lh-calc-method") control = self.root.querySelector('input[name="method"]:checked');
      if (control) control.setAttribute("aria-invalid", "true");
    });
    if (general.length) general.unshift("Fix this to see results:");
    this.showAlert(general);
  };
  Calculator.prototype.invalid = function (query) {
    var results = $("lh-calc-results");
    $("lh-calc-numbers").hidden = true;
    this.blank();
    $("lh-calc-invalid").hidden = false;
    results.dataset.state = "invalid";
    results.dataset.query = query === undefined ? this.toQuery() : query;
    results.removeAttribute("aria-busy");
    $("lh-calc-status").textContent = "No results: an input is invalid.";
  };
  Calculator.prototype.blank = function () {
    ["trainable", "share", "total", "scaling", "adapter", "peak", "phase"].forEach(function (k) {
      $("lh-calc-out-" + k).textContent = "";
    });
    $("lh-calc-chart").textContent = "";
    $("lh-calc-memory-table").querySelector("tbody").textContent = "";
    $("lh-calc-memory-table").querySelector("tfoot").textContent = "";
    $("lh-calc-gpu-table").querySelector("tbody").textContent = "";
  };
  Calculator.prototype.render = function (out, query) {
    this.clearErrors();
    var errors = out.errors || {};
    if (this.pasteError) errors.config_json = this.pasteError;
    if (out.model) {
      var before = this.targetNames().join(",");
      this.model = out.model;
      this.resolvedFor = this.state.targets;
      if (before !== this.targetNames().join(",") || this.state.targets !== "custom") this.moduleBoxes();
      var resolved = out.model.resolved || {}, dims = this.dims(), st = this.state, base = this.baseConfig();
      Object.keys(dims).forEach(function (dim) {
        var key = dims[dim], input = $("lh-calc-dim-" + dim);
        if (!key) return;
        var r = resolved[key];
        if (dim === "tied") {     // not set by the config or the reader: show calc's resolved default
          var has = Object.prototype.hasOwnProperty;
          if (!has.call(st.overrides, key) && !has.call(base, key)) input.checked = !!r;
          return;
        }
        input.placeholder = r === null || r === undefined ? "default" : "default: " + r;
      });
    }
    if (Object.keys(errors).length || !out.result) {
      this.showErrors(errors);
      return this.invalid(query);
    }
    this.show(out.result);
    var results = $("lh-calc-results");
    $("lh-calc-invalid").hidden = true;
    $("lh-calc-numbers").hidden = false;
    results.dataset.state = "ok";
    results.dataset.query = query;
    results.removeAttribute("aria-busy");
    $("lh-calc-status").textContent = "Results updated.";
  };
  Calculator.prototype.show = function (r) {
    var labels = this.data.labels, full = r.method === "full";
    $("lh-calc-out-trainable").textContent = groupDigits(r.trainable_params);
    $("lh-calc-out-total").textContent = groupDigits(r.total_params);
    if (full) {
      $("lh-calc-out-share").textContent = "all of them (full fine-tuning)";
      $("lh-calc-out-scaling").textContent = "none (full fine-tuning)";
      $("lh-calc-out-adapter").textContent = "none (full fine-tuning saves the whole model)";
    } else {
      $("lh-calc-out-share").textContent = pyFixed(hexFloat(r.trainable_percent), 4) + " % of " +
        groupDigits(r.all_params);
      var scalings = r.scalings.map(function (s) { return trimmed(hexFloat(s), 4); });
      var scaling = trimmed(hexFloat(r.scaling), 4);
      var others = scalings.filter(function (s) { return s !== scaling; });
      $("lh-calc-out-scaling").textContent = scaling + (others.length ? " (fused expert parameters: " + others.join(", ") + ")" : "");
      $("lh-calc-out-adapter").textContent = mib(r.adapter_bytes) + " MiB (" + groupDigits(r.adapter_bytes) + " bytes, " +
        groupDigits(r.adapter_tensors) + " tensors, " + r.adapter_dtype + ")";
    }
    var mem = r.memory, many = Number(mem.num_gpus) > 1;
    $("lh-calc-out-peak").textContent = gib(mem.peak_bytes) + " GiB" +
      " + CUDA context " + gib(mem.cuda_context_bytes) + " GiB = " + gib(mem.required_bytes) + " GiB";
    $("lh-calc-out-phase").textContent = "The peak is set during " + (labels.phases[mem.phase] || mem.phase) +
      ". The CUDA context is outside PyTorch's allocator, so it is not in the table." +
      (many ? " All " + mem.num_gpus + " GPUs together: " + gib(mem.total_bytes) + " GiB allocated." : "");
    // chart: one stacked bar, each component's share of the peak
    var chart = $("lh-calc-chart"), peak = Number(mem.peak_bytes), parts = [];
    chart.textContent = "";
    var bar = el("div", { "class": "lh-calc__bar" }), legend = el("ul", { "class": "lh-calc__legend" });
    mem.components.forEach(function (c, i) {
      var name = c[0], bytes = c[1], label = labels.components[name] || name;
      if (BigInt(bytes) === 0n) return;
      var seg = el("span", { "class": "lh-calc__seg lh-calc__seg--" + i, title: label + ": " + gib(bytes) + " GiB" });
      seg.style.width = (peak ? 100 * Number(bytes) / peak : 0) + "%";
      bar.appendChild(seg);
      var item = el("li", {});
      item.appendChild(el("span", { "class": "lh-calc__swatch lh-calc__seg--" + i, "aria-hidden": "true" }));
      item.appendChild(document.createTextNode(label + " " + gib(bytes) + " GiB"));
      legend.appendChild(item);
      parts.push(label + " " + gib(bytes) + " GiB");
    });
    chart.appendChild(bar);
    chart.appendChild(legend);
    chart.setAttribute("aria-label", "Memory per GPU, peak " + gib(mem.peak_bytes) + " GiB: " + parts.join(", "));
    // table
    var table = $("lh-calc-memory-table"), body = table.querySelector("tbody"), foot = table.querySelector("tfoot");
    body.textContent = "";
    foot.textContent = "";
    function row(parent, attrs, cells, header) {
      var tr = el("tr", attrs);
      cells.forEach(function (text, i) { tr.appendChild(el(i === 0 && header ? "th" : "td", i === 0 && header ? { scope: "row" } : {}, text)); });
      parent.appendChild(tr);
      return tr;
    }
    mem.components.forEach(function (c) {
      row(body, { "data-component": c[0] }, [labels.components[c[0]] || c[0], gib(c[1]), groupDigits(c[1])], true);
    });
    row(foot, { "data-component": "peak" }, ["Peak allocated" + (many ? " per GPU" : ""), gib(mem.peak_bytes), groupDigits(mem.peak_bytes)], true);
    row(foot, { "data-component": "cuda_context" }, ["CUDA context (per process)", gib(mem.cuda_context_bytes), groupDigits(mem.cuda_context_bytes)], true);
    row(foot, { "data-component": "required" }, ["Required per GPU", gib(mem.required_bytes), groupDigits(mem.required_bytes)], true);
    // GPUs
    var gbody = $("lh-calc-gpu-table").querySelector("tbody");
    gbody.textContent = "";
    r.gpus.forEach(function (g) {
      var tr = row(gbody, { "data-gpu": g.id, "data-fits": g.fits ? "yes" : "no" },
        [g.name, gib(g.usable_bytes), gib(g.required_bytes), gib(g.headroom_bytes, true),
          g.fits ? "✓ fits" : "✗ does not fit"], true);
      tr.className = g.fits ? "lh-calc__fits" : "lh-calc__nofit";
    });
  };

  // ------------------------------------------------------------------------------------------- mounting
  function loadData(base, versions) {
    if (!shared.data) {
      shared.data = fetch(base + "presets.json?v=" + (versions["presets.json"] || "0")).then(function (r) {
        if (!r.ok) throw new Error("presets.json: HTTP " + r.status);
        return r.json();
      });
      shared.data.catch(function () { shared.data = null; });
    }
    return shared.data;
  }

  // the worker and the data start as early as possible: from the <script> itself, which comes before the form
  function boot(holder) {
    var base = holder.getAttribute("data-base") || "/assets/calculator/";
    var versions = {};
    try { versions = JSON.parse(holder.getAttribute("data-versions") || "{}"); } catch (e) { /* none */ }
    if (!shared.engine) shared.engine = new Engine(base, versions);
    return loadData(base, versions);
  }

  function mount() {
    var root = document.getElementById("lh-calc");
    if (!root || root.__lhMounted) return;
    root.__lhMounted = true;
    boot(root).then(function (data) {
      if (!document.body.contains(root)) return;
      shared.current = new Calculator(root, data);
    }).catch(function (err) {
      console.error("LoRA Handbook calculator:", err.message);
      var status = document.getElementById("lh-calc-status");
      if (status) status.textContent = "The calculator could not load its data: " + err.message;
    });
  }

  window.addEventListener("popstate", function () {
    var c = shared.current;
    if (c && c.alive()) c.restore();
  });
  window.__lhCalc = { mount: mount, pyFixed: pyFixed };
  if (window.document$ && typeof window.document$.subscribe === "function") {
    window.document$.subscribe(function () { mount(); });
  }
  // The page's <script> precedes the form (a parser-blocking script, so MicroPython starts downloading and
  // the worker starting before Material's own start-up occupies the main thread); the form is mounted once
  // it is parsed. Re-inserted by instant navigation, the script runs after the content is in place.
  var me = document.currentScript;
  if (me && me.hasAttribute("data-base")) boot(me).catch(function () { /* mount() reports it */ });
  if (document.getElementById("lh-calc") || document.readyState !== "loading") mount();
  else document.addEventListener("DOMContentLoaded", mount);
})();

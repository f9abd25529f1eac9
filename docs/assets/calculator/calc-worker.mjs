// LoRA Handbook calculator: calc on MicroPython, in a module worker (so a huge configuration never freezes
// the page). calculator.js creates it and at once sends {kind: "init", payload: {base, versions}}: the
// worker downloads MicroPython (micropython.mjs, micropython.wasm), calc (calc_bundle.json) and the GPU list
// (gpus.json) from `base` itself, in parallel, so its start does not wait on the page's busy main thread.
// Then each {id, kind: "compute"|"parse", payload} is answered with {id, result} (calc.pages.calculator's JSON) or
// {id, error}. The Python modules are calc's own, rewritten at build time by macros/mpy_transform.py;
// "format": "mpy" bundles hold them precompiled by mpy-cross (base64), "py" bundles as source.

let ready = null;
let mp = null;
const timings = {};   // epoch milliseconds (timeOrigin + now), reported with "ready" (benchmarks read them)
const clock = () => Math.round(performance.timeOrigin + performance.now());
timings.worker_running = clock();

function base64(text) {
  const raw = atob(text);
  const out = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
  return out;
}

async function text(url) {
  let response;
  try {
    response = await fetch(url);
  } catch (err) {
    throw new Error(`could not download the calculator (${url.split("/").pop().split("?")[0]}): ${err.message}`);
  }
  if (!response.ok) {
    throw new Error(`could not download the calculator (${url.split("/").pop().split("?")[0]}: HTTP ${response.status})`);
  }
  return response.text();
}

async function init({ base, versions }) {
  const v = (name) => "?v=" + ((versions && versions[name]) || "0");
  const bundleText = text(base + "calc_bundle.json" + v("calc_bundle.json"));
  const gpusText = text(base + "gpus.json" + v("gpus.json"));
  bundleText.catch(() => {});   // awaited below; a failure must not also surface as an unhandled rejection
  gpusText.catch(() => {});
  let loadMicroPython;
  try {
    ({ loadMicroPython } = await import(base + "micropython.mjs"));
  } catch (err) {
    throw new Error(`could not download the calculator (micropython.mjs): ${err.message}`);
  }
  // streams and compiles micropython.wasm while the JSON downloads finish
  mp = await loadMicroPython({
    url: base + "micropython.wasm", heapsize: 48 * 1024 * 1024, pystack: 64 * 1024, linebuffer: true,
    stdout: () => {}, stderr: () => {},
  });
  timings.micropython = clock();
  const bundle = JSON.parse(await bundleText);
  const gpus = await gpusText;
  timings.downloaded = clock();
  const fs = mp.FS;
  // every folder the bundle's paths need (calc/, calc/pages/ ...), parents first
  const dirs = new Set(["/lib"]);
  for (const path of Object.keys(bundle.files)) {
    const parts = path.split("/").slice(0, -1);
    for (let i = 1; i <= parts.length; i++) dirs.add("/lib/" + parts.slice(0, i).join("/"));
  }
  for (const dir of [...dirs].sort()) {
    try { fs.mkdir(dir); } catch (e) { /* exists */ }
  }
  const binary = bundle.format === "mpy";
  for (const [path, source] of Object.entries(bundle.files)) fs.writeFile("/lib/" + path, binary ? base64(source) : source);
  mp.runPython("import calc.pages.calculator as _webapi");
  mp.globals.set("_gpus_json", gpus);
  mp.runPython("_webapi.set_gpus(_gpus_json)");
  timings.imported = clock();
}

function run(code, payload) {
  mp.globals.set("_arg", payload);
  mp.runPython("_out = " + code + "(_arg)");
  return mp.globals.get("_out");
}

self.onmessage = async (event) => {
  const { id, kind, payload } = event.data || {};
  try {
    if (kind === "init") {
      if (!ready) ready = init(payload);
      await ready;
      self.postMessage({ id, result: "ready", timings });
      return;
    }
    await ready;
    const code = kind === "parse" ? "_webapi.parse_config_json" : "_webapi.compute_json";
    const start = performance.now();
    const result = run(code, payload);
    self.postMessage({ id, result, ms: Math.round(performance.now() - start) });
  } catch (err) {
    self.postMessage({ id, error: String((err && (err.message || err.type)) || err) });
  }
};

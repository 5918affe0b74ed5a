// The page: controls, read-outs and the loss curve. Every computation runs in worker.js; this file
// only sends requests and shows results. document.body.dataset.state and window.makemore expose the
// state and the latest results (the end-to-end test, web/e2e/e2e.mjs, reads them).

const $ = (id) => document.getElementById(id);
const WINDOW = 1000; // steps per loss window, as the CLI's loss.csv
const FD_SAMPLES = 32; // finite-difference coordinates per tensor (makemore gradcheck's default)

const results = (window.makemore = { progress: null, losses: null, names: null, gradcheck: null, lastSave: null });

// ---- the worker and its requests -------------------------------------------------------------

const worker = new Worker(new URL('worker.js', import.meta.url), { type: 'module' });
const pending = new Map();
let nextId = 1;

/** Sends {op, args} to the worker; resolves with its result or rejects with its error message. */
function request(op, args = {}, transfer = []) {
  const id = nextId++;
  return new Promise((resolve, reject) => {
    pending.set(id, { resolve, reject });
    worker.postMessage({ id, op, args }, transfer);
  });
}

worker.onmessage = ({ data }) => {
  if (data.id !== undefined) {
    const p = pending.get(data.id);
    pending.delete(data.id);
    if (data.ok) p.resolve(data.result);
    else p.reject(new Error(data.error));
  } else if (data.event === 'progress') {
    showProgress(data.progress);
  } else if (data.event === 'stopped') {
    trainingStopped(data).catch(showError);
  }
};
// A worker that fails to load (a syntax error, a missing file) never answers: say why.
worker.onerror = (e) => {
  e.preventDefault();
  showError(`the worker failed: ${e.message || 'worker.js or makemore.js could not be loaded'}`);
  for (const p of pending.values()) p.reject(new Error('the worker failed'));
  pending.clear();
};

// ---- state ------------------------------------------------------------------------------------

let hasWords = false;
let model = null; // {calibrated} once mm_init or mm_load_checkpoint succeeded
let run = null; // the training run: {params, status: 'running' | 'pausing' | 'paused' | 'done' | 'failed'}
let busyDepth = 0; // > 0 while a request other than training runs
let isas = { scalar: true, simd128: true };

/** The state when nothing but training runs: what the e2e test waits for. */
function idleState() {
  if (!hasWords) return 'loading';
  if (run?.status === 'running' || run?.status === 'pausing') return 'training';
  if (run?.status === 'paused') return 'paused';
  if (run?.status === 'done') return 'trained';
  return 'ready';
}

function refresh() {
  const state = busyDepth > 0 ? 'busy' : idleState();
  document.body.dataset.state = state;
  const idle = state !== 'busy' && state !== 'training';
  $('train').disabled = !(hasWords && idle);
  $('train').textContent = run?.status === 'paused' && sameParams() ? 'Resume' : 'Train';
  const pause = $('pause');
  pause.disabled = !(run?.status === 'running' || (run?.status === 'paused' && state !== 'busy'));
  pause.textContent = run?.status === 'paused' ? 'Resume' : run?.status === 'pausing' ? 'Pausing…' : 'Pause';
  pause.setAttribute('aria-pressed', String(run?.status === 'paused'));
  for (const id of ['evaluate', 'sample', 'save']) $(id).disabled = !(model && idle);
  for (const id of ['gradcheck', 'checkpoint-file']) $(id).disabled = !(hasWords && idle);
  $('words-file').disabled = !idle && state !== 'loading';
  for (const id of ['isa', 'seed', 'steps', 'lr', 'decay-step']) $(id).disabled = state === 'training';
  for (const opt of $('isa').options) opt.disabled = !isas[opt.value];
}

function setStatus(text) {
  $('status').textContent = text;
}

function showError(e) {
  const el = $('error');
  el.textContent = `Error: ${e?.message ?? e}`;
  el.hidden = false;
}

function clearError() {
  $('error').hidden = true;
  $('error').textContent = '';
}

/** Runs fn as one "busy" request: the state is 'busy' meanwhile, errors are shown. */
async function busy(label, fn) {
  busyDepth++;
  refresh();
  setStatus(label);
  try {
    return await fn();
  } catch (e) {
    showError(e);
    setStatus('Failed.');
  } finally {
    busyDepth--;
    refresh();
  }
}

/** A click/change handler that clears the last error and shows any new one. */
function on(id, type, fn) {
  $(id).addEventListener(type, (event) => {
    clearError();
    Promise.resolve()
      .then(() => fn(event))
      .catch(showError);
  });
}

// ---- inputs -------------------------------------------------------------------------------------

function integer(id, min, max = Number.MAX_SAFE_INTEGER) {
  const el = $(id);
  const v = Number(el.value);
  if (el.value.trim() === '' || !Number.isInteger(v) || v < min || v > max) {
    throw new Error(`${el.labels[0]?.textContent.trim() || id}: an integer from ${min} to ${max}, not "${el.value}"`);
  }
  return v;
}

function positive(id) {
  const el = $(id);
  const v = Number(el.value);
  if (el.value.trim() === '' || !Number.isFinite(v) || v <= 0) {
    throw new Error(`${el.labels[0]?.textContent.trim() || id}: a number > 0, not "${el.value}"`);
  }
  return v;
}

function trainParams() {
  return {
    isa: $('isa').value,
    seed: integer('seed', 0),
    steps: integer('steps', 1),
    lr: positive('lr'),
    decayStep: integer('decay-step', 0),
  };
}

/** Whether the training inputs still hold the paused run's values (then Train resumes it). */
function sameParams() {
  try {
    return JSON.stringify(trainParams()) === JSON.stringify(run.params);
  } catch {
    return false;
  }
}

// ---- data ---------------------------------------------------------------------------------------

/** Forgets the model and every result (new words). */
function resetModel() {
  model = null;
  run = null;
  results.progress = results.losses = results.names = null;
  for (const id of ['step', 'sps', 'loss-now', 'train-time', 'loss-train', 'loss-val', 'loss-test']) {
    $(id).textContent = '–';
    delete $(id).dataset.value;
  }
  $('names').replaceChildren();
  $('model-info').textContent = 'No model yet.';
  showLrNow();
  drawCurve();
}

async function loadWords(bytes, source) {
  await busy(`Loading ${source}…`, async () => {
    // A list that fails to load leaves the previous words and model as they were (the Rust side
    // replaces them only on success).
    const info = await request('loadWords', { bytes }, [bytes]);
    resetModel();
    hasWords = true;
    const extra = [
      info.duplicates ? `${info.duplicates} duplicates kept` : '',
      info.blank_lines ? `${info.blank_lines} blank lines skipped` : '',
    ].filter(Boolean);
    $('data-info').textContent =
      `${source}: ${info.words} words${extra.length ? ` (${extra.join(', ')})` : ''}, ` +
      `vocabulary of ${info.vocab.length} symbols (${info.vocab}); examples: ` +
      `${info.train} train, ${info.val} val, ${info.test} test.`;
    results.data = info;
    setStatus('Ready.');
  });
}

async function start() {
  try {
    ({ isas } = await request('ready'));
  } catch (e) {
    showError(`could not load makemore.wasm: ${e.message}`);
    setStatus('The WebAssembly module did not load.');
    return;
  }
  if (!isas.simd128) $('isa').value = 'scalar';
  refresh();
  let response;
  try {
    response = await fetch('names.txt');
    if (!response.ok) throw new Error(`HTTP ${response.status} ${response.statusText}`);
  } catch (e) {
    showError(`could not fetch names.txt (${e.message}): pick a word list below`);
    $('data-info').textContent = 'No word list loaded: pick one (one word per line).';
    setStatus('Waiting for a word list.');
    return;
  }
  await loadWords(await response.arrayBuffer(), 'names.txt');
}

on('words-file', 'change', async (event) => {
  const file = event.target.files[0];
  event.target.value = ''; // picking the same file again fires 'change' again
  if (file) await loadWords(await file.arrayBuffer(), file.name);
});

// ---- training -----------------------------------------------------------------------------------

function showLrNow(lr) {
  let text = '–';
  if (lr !== undefined) text = String(Number(lr.toPrecision(6)));
  else {
    const v = Number($('lr').value);
    if (Number.isFinite(v)) text = String(v);
  }
  $('lr-now').textContent = text;
}

on('train', 'click', async () => {
  if (run?.status === 'paused' && sameParams()) return resume();
  const params = trainParams();
  await busy('Initialising the model…', async () => {
    resetModel();
    const info = await request('train', params); // mm_init, then the worker's loop starts
    run = { params, status: 'running' };
    model = { calibrated: false };
    $('model-info').textContent = `Training: ${info.params} parameters on ${info.isa}, ${info.steps} steps.`;
    $('step').textContent = `${info.step} / ${info.steps}`;
    setStatus(`Training on ${info.isa}…`);
  });
});

async function resume() {
  await request('resume');
  run.status = 'running';
  setStatus('Training…');
  refresh();
}

on('pause', 'click', async () => {
  if (run?.status === 'paused') return resume();
  if (run?.status !== 'running') return;
  run.status = 'pausing'; // 'paused' once the worker says its loop stopped
  refresh();
  await request('pause');
});

for (const id of ['isa', 'seed', 'steps', 'lr', 'decay-step']) {
  $(id).addEventListener('input', () => {
    if (!run || run.status === 'done') showLrNow();
    refresh();
  });
}

function showProgress(p) {
  results.progress = {
    step: p.step,
    steps: p.steps,
    loss: p.loss,
    lr: p.lr,
    sps: p.sps,
    seconds: p.seconds,
    compute_seconds: p.compute_seconds,
    windows: p.windows,
    windows_from: p.windows_from,
  };
  $('step').textContent = `${p.step} / ${p.steps}`;
  $('sps').textContent = `${Math.round(p.sps)}`;
  $('loss-now').textContent = p.loss.toFixed(4);
  showLrNow(p.lr);
  $('train-time').textContent = p.done
    ? `${p.seconds.toFixed(2)} s, ${Math.round(p.sps)} steps/s overall`
    : `${p.seconds.toFixed(1)} s`;
  drawCurve(p.windows, p.steps, run?.params.decayStep, p.windows_from);
}

async function trainingStopped({ reason, error }) {
  if (!run) return;
  if (reason === 'done') {
    run.status = 'done';
    setStatus('Trained.');
    await evaluate(); // synchronously 'busy' from here, so 'trained' means the losses are shown
    return;
  }
  if (reason === 'error') {
    run.status = 'failed'; // Train starts a new run; the model stays for inspection
    showError(error);
    setStatus('Training stopped on an error.');
  } else {
    run.status = 'paused';
    setStatus('Paused.');
  }
  refresh();
}

// ---- the loss curve -------------------------------------------------------------------------------

/** Round tick values covering [lo, hi]: steps of 1, 2 or 5 times a power of ten, about n of them. */
function ticks(lo, hi, n) {
  const raw = (hi - lo) / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw);
  const out = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) out.push(Number(t.toPrecision(12)));
  return { out, step };
}

const stepLabel = (s) => (s >= 1e6 ? `${s / 1e6}M` : s >= 1e3 ? `${s / 1e3}k` : `${s}`);

/** Draws log10 of each window's mean loss at the window's end step, as the CLI's loss.svg. */
let lastCurve = [];
function drawCurve(windows = [], steps = null, decayStep = null, windowsFrom = 0) {
  lastCurve = [windows, steps, decayStep, windowsFrom];
  const svg = $('loss-curve');
  // The drawing's width follows the element's (within 420..800 units), so that the text stays
  // legible on a phone instead of shrinking with the whole picture.
  const W = Math.round(Math.min(800, Math.max(420, svg.clientWidth || 800)));
  const H = Math.round(W * 0.45), L = 60, R = 16, T = 14, B = 44; // L, R, T, B: the plot area's margins
  svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
  const pw = W - L - R, ph = H - T - B;
  const xMax = steps || Number($('steps').value) || 1;
  const points = windows.map((mean, i) => [windowsFrom + (i + 1) * WINDOW, Math.log10(mean)]).filter(([, y]) => Number.isFinite(y));
  let yLo = 0, yHi = 1;
  if (points.length) {
    yLo = Math.min(...points.map((p) => p[1]));
    yHi = Math.max(...points.map((p) => p[1]));
    const pad = yHi > yLo ? 0.05 * (yHi - yLo) : 0.05;
    yLo -= pad;
    yHi += pad;
  }
  const px = (x) => L + (x / Math.max(xMax, 1)) * pw;
  const py = (y) => T + ph - ((y - yLo) / (yHi - yLo)) * ph;
  const f = (v) => v.toFixed(1);
  const parts = [`<rect x="${L}" y="${T}" width="${pw}" height="${ph}" fill="none" stroke="#888"/>`];

  for (const t of ticks(0, xMax, W < 600 ? 4 : 8).out) {
    parts.push(`<line x1="${f(px(t))}" y1="${T}" x2="${f(px(t))}" y2="${T + ph + 5}" stroke="#e4e4e4"/>`,
      `<text x="${f(px(t))}" y="${T + ph + 19}" text-anchor="middle">${stepLabel(t)}</text>`);
  }
  parts.push(`<text x="${L + pw / 2}" y="${H - 6}" text-anchor="middle">step</text>`);
  if (points.length) {
    const y = ticks(yLo, yHi, 6);
    const decimals = Math.max(0, -Math.floor(Math.log10(y.step)));
    for (const t of y.out) {
      parts.push(`<line x1="${L - 5}" y1="${f(py(t))}" x2="${L + pw}" y2="${f(py(t))}" stroke="#e4e4e4"/>`,
        `<text x="${L - 8}" y="${f(py(t) + 4)}" text-anchor="end">${t.toFixed(decimals)}</text>`);
    }
    const coords = points.map(([x, v]) => `${f(px(x))},${f(py(v))}`).join(' ');
    parts.push(points.length === 1
      ? `<circle cx="${f(px(points[0][0]))}" cy="${f(py(points[0][1]))}" r="2.5" fill="#1f5fbf"/>`
      : `<polyline points="${coords}" fill="none" stroke="#1f5fbf" stroke-width="1.5" stroke-linejoin="round"/>`);
  } else {
    parts.push(`<text x="${L + pw / 2}" y="${T + ph / 2}" text-anchor="middle" fill="#888">no full 1000-step window yet</text>`);
  }
  parts.push(`<text transform="translate(14 ${T + ph / 2}) rotate(-90)" text-anchor="middle">log10 loss</text>`);
  if (decayStep > 0 && decayStep < xMax) {
    const x = px(decayStep);
    const right = x > L + 0.75 * pw; // put the label on the side with room
    parts.push(`<line x1="${f(x)}" y1="${T}" x2="${f(x)}" y2="${T + ph}" stroke="#c0392b" stroke-width="1.2" stroke-dasharray="6 4"/>`,
      `<text x="${f(right ? x - 6 : x + 6)}" y="${T + 14}" text-anchor="${right ? 'end' : 'start'}" fill="#c0392b">lr / 10</text>`);
  }
  svg.innerHTML = `<g font-size="12" fill="#333">${parts.join('')}</g>`;
}
let resizeTimer;
window.addEventListener('resize', () => {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(() => drawCurve(...lastCurve), 100);
});

// ---- evaluation, sampling, gradient check, checkpoints ------------------------------------------

async function evaluate() {
  await busy('Evaluating (calibrating batchnorm on the train split)…', async () => {
    results.losses = null;
    const losses = await request('evaluate');
    model.calibrated = true;
    for (const split of ['train', 'val', 'test']) {
      const el = $(`loss-${split}`);
      el.textContent = losses[split].toFixed(4);
      el.dataset.value = String(losses[split]); // shortest round-trip text of the JSON's f64
    }
    results.losses = losses;
    setStatus('Evaluated.');
  });
}
on('evaluate', 'click', evaluate);

on('sample', 'click', async () => {
  const args = {
    count: integer('count', 1, 100000),
    seed: integer('sample-seed', 0),
    temperature: positive('temperature'),
    topK: integer('top-k', 0, 1 << 30),
  };
  if (!model.calibrated) await evaluate(); // sampling needs batchnorm's running statistics
  if (!model.calibrated) return;
  await busy('Sampling…', async () => {
    results.names = null;
    const names = await request('sample', args);
    const badge = { 'in train': 'train', 'in val/test': 'val', new: 'new' };
    $('names').replaceChildren(...names.map(({ name, from }) => {
      const li = document.createElement('li');
      li.dataset.from = from;
      const span = document.createElement('span');
      span.className = `badge ${badge[from] ?? ''}`;
      span.textContent = from;
      li.append(name, span);
      return li;
    }));
    results.names = names;
    setStatus(`Sampled ${names.length} names.`);
  });
});

// As makemore gradcheck prints them: 1.062e-6, 0.000e0.
const sci = (v) => (v === null || v === undefined ? '-' : Number(v).toExponential(3).replace('e+', 'e'));
const bool = (v) => (v === null || v === undefined ? '-' : String(v));

on('gradcheck', 'click', async () => {
  const seed = integer('seed', 0);
  await busy('Checking gradients…', async () => {
    results.gradcheck = null;
    const g = await request('gradcheck', { seed, fdSamples: FD_SAMPLES });
    const table = $('gradcheck-table');
    table.tBodies[0].replaceChildren(...g.rows.map((r) => {
      const tr = document.createElement('tr');
      const cells = [r.name, bool(r.atomic_approximate), sci(r.atomic_maxdiff),
        bool(r.fused?.exact), bool(r.fused?.approximate), sci(r.fused?.maxdiff), sci(r.fd_rel_err),
        r.ok ? 'pass' : 'FAIL'];
      cells.forEach((text, i) => {
        const td = document.createElement(i === 0 ? 'th' : 'td');
        if (i === 0) td.scope = 'row';
        td.textContent = text;
        tr.append(td);
      });
      tr.lastChild.className = r.ok ? 'pass' : 'fail';
      return tr;
    }));
    table.dataset.ok = String(g.all_ok);
    table.hidden = false;
    $('gradcheck-loss').textContent =
      `Loss at init (f64): ${g.loss.toFixed(4)}. ${g.all_ok ? 'Every row passes.' : 'Some rows FAIL.'}`;
    results.gradcheck = g;
    setStatus('Gradients checked.');
  });
});

on('save', 'click', async () => {
  await busy('Saving…', async () => {
    const bytes = await request('save');
    const filename = 'makemore.safetensors';
    const url = URL.createObjectURL(new Blob([bytes], { type: 'application/octet-stream' }));
    const a = Object.assign(document.createElement('a'), { href: url, download: filename });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000); // after the download has started
    results.lastSave = { filename, bytes: bytes.length };
    setStatus(`Saved ${filename} (${bytes.length} bytes).`);
  });
});

on('checkpoint-file', 'change', async (event) => {
  const file = event.target.files[0];
  event.target.value = '';
  if (!file) return;
  const bytes = await file.arrayBuffer();
  await busy(`Loading ${file.name}…`, async () => {
    const info = await request('loadCheckpoint', { bytes, isa: $('isa').value }, [bytes]);
    resetModel();
    model = { calibrated: info.calibrated };
    results.model = info;
    const r = info.run;
    const resumable = r !== null && r.step < r.steps;
    if (resumable) {
      // The run is paused at its step: its inputs in the form, and Train resumes it.
      $('seed').value = r.seed;
      $('steps').value = r.steps;
      $('lr').value = r.lr;
      $('decay-step').value = r.decay_step;
      run = { params: trainParams(), status: 'paused' };
      $('step').textContent = `${r.step} / ${r.steps}`;
      showLrNow();
    }
    $('model-info').textContent =
      `${file.name}: ${info.params} parameters (hidden ${info.hidden}, embedding ${info.embedding}, ` +
      `context ${info.context}, vocabulary of ${info.vocab.length} symbols), ` +
      `${r === null ? 'no training state the page can train on' : `step ${r.step} of ${r.steps}`}, ` +
      `batchnorm ${info.calibrated ? 'calibrated' : 'not calibrated (Evaluate calibrates it)'}.` +
      (resumable ? ` Resume trains it on to step ${r.steps} on ${info.isa}.` : '');
    setStatus(resumable ? 'Checkpoint loaded: paused.' : 'Checkpoint loaded.');
  });
});

drawCurve();
showLrNow();
refresh();
start().catch(showError);

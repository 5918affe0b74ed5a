// The module worker: owns makemore.wasm and runs every computation off the UI thread.
//
// Requests from the page are {id, op, args}; each gets one reply {id, ok, result} or {id, ok: false,
// error}. Training runs as a loop of mm_train chunks that posts unsolicited {event: 'progress'} after
// each chunk and {event: 'stopped', reason: 'paused' | 'done' | 'error'} when it ends; between chunks
// it yields to the event loop so that a 'pause' request gets through.

import { load } from './makemore.js';

const ISA = { scalar: 0, simd128: 1 };
const TARGET_MS = 30; // aim for chunks of about this long
const mmPromise = load(new URL('makemore.wasm', import.meta.url));

// Yields to the event loop, so that a request the page sent meanwhile ('pause') runs first. Not
// setTimeout(0): nested timeouts are clamped to >= 4 ms (HTML spec; measured 4.9 ms in Chromium),
// some 15% of a 30 ms chunk. A message to ourselves is a task without that delay, queued behind
// the page's messages (both are posted-message tasks).
const channel = new MessageChannel();
const waiting = [];
channel.port1.onmessage = () => waiting.shift()();
const yieldToEventLoop = () =>
  new Promise((resolve) => {
    waiting.push(resolve);
    channel.port2.postMessage(null);
  });

// The current run: null until mm_init or a loaded checkpoint that can train on (and after new
// words or a checkpoint that cannot).
let run = null;

function startLoop() {
  run.running = true;
  run.resumedAt = performance.now();
  run.wallBefore = run.seconds; // wall seconds of the earlier running periods
  run.recent = [[run.resumedAt, run.step]]; // [time, step] of the last ~second, for the current steps/s
  if (run.looping) return; // a pause and a resume within one chunk: the loop never stopped
  run.looping = true;
  const mine = run;
  trainLoop(mine)
    .catch((e) => {
      mine.running = false;
      postMessage({ event: 'stopped', reason: 'error', error: e.message ?? String(e) });
    })
    .finally(() => (mine.looping = false));
}

async function trainLoop(run) {
  const mm = await mmPromise;
  while (run.running) {
    const t0 = performance.now();
    const p = mm.train(run.chunk);
    const t1 = performance.now();
    run.computeSeconds += (t1 - t0) / 1000;
    run.seconds = run.wallBefore + (t1 - run.resumedAt) / 1000;
    // Size the next chunk to about TARGET_MS (at least 50 steps, at most 8x the last).
    const perStep = (t1 - t0) / Math.max(1, p.step - run.step);
    run.chunk = Math.round(Math.min(Math.max(TARGET_MS / Math.max(perStep, 1e-6), 50), run.chunk * 8));
    run.step = p.step;

    // Steps/s over the last second or so of wall time (this includes the yields).
    run.recent.push([t1, p.step]);
    while (run.recent.length > 2 && t1 - run.recent[1][0] >= 1000) run.recent.shift();
    const [tOld, sOld] = run.recent[0];
    const sps = ((p.step - sOld) * 1000) / Math.max(t1 - tOld, 1e-3);

    const progress = { ...p, sps, seconds: run.seconds, compute_seconds: run.computeSeconds };
    if (p.done) {
      run.running = false;
      progress.sps = (p.step - run.start) / run.seconds; // overall, on finish
    }
    postMessage({ event: 'progress', progress });
    if (p.done) {
      postMessage({ event: 'stopped', reason: 'done' });
      return;
    }
    await yieldToEventLoop(); // let 'pause' in
  }
  postMessage({ event: 'stopped', reason: 'paused' });
}

const ops = {
  async ready(mm) {
    return { isas: Object.fromEntries(Object.entries(ISA).map(([name, v]) => [name, mm.isaAvailable(v)])) };
  },
  loadWords(mm, { bytes }) {
    const info = mm.loadWords(new Uint8Array(bytes));
    run = null; // the model is gone with the old words (a failed load keeps both)
    return info;
  },
  train(mm, { seed, isa, steps, lr, decayStep }) {
    if (run?.running) throw new Error('training is already running');
    if (!(isa in ISA)) throw new Error(`unknown instruction set ${isa}`);
    const info = mm.init(seed, ISA[isa], steps, lr, decayStep);
    // seconds: wall-clock time while running (mm_train calls, yields, messages; not pauses);
    // computeSeconds: inside mm_train only. The first chunk is a guess (~250 steps).
    run = { running: false, chunk: 250, step: info.step, start: info.step, seconds: 0, computeSeconds: 0 };
    startLoop();
    return info;
  },
  resume() {
    if (!run) throw new Error('nothing to resume: start training first');
    if (!run.running) startLoop();
    return {};
  },
  pause() {
    if (run) run.running = false; // the loop stops after its current chunk and posts 'stopped'
    return {};
  },
  evaluate: (mm) => mm.evaluate(),
  sample: (mm, { count, seed, temperature, topK }) => mm.sample(count, seed, temperature, topK),
  gradcheck: (mm, { seed, fdSamples }) => mm.gradcheck(seed, fdSamples),
  save: (mm) => mm.save(),
  loadCheckpoint(mm, { bytes, isa }) {
    if (!(isa in ISA)) throw new Error(`unknown instruction set ${isa}`);
    const info = mm.loadCheckpoint(new Uint8Array(bytes), ISA[isa]);
    // A run saved before its last step is paused there: 'resume' trains it on.
    const step = info.run?.step;
    run = step < info.run?.steps ? { running: false, chunk: 250, step, start: step, seconds: 0, computeSeconds: 0 } : null;
    return info;
  },
};

self.onmessage = async ({ data: { id, op, args } }) => {
  try {
    if (!(op in ops)) throw new Error(`unknown request ${op}`);
    if (run?.running && !['pause', 'resume', 'ready'].includes(op)) {
      throw new Error(`cannot ${op} while training runs: pause it first`);
    }
    const result = await ops[op](await mmPromise, args ?? {});
    // Bytes (a checkpoint) are transferred, not copied.
    postMessage({ id, ok: true, result }, result instanceof Uint8Array ? [result.buffer] : []);
  } catch (e) {
    postMessage({ id, ok: false, error: e?.message ?? String(e) });
  }
};

// The shim over makemore.wasm (see API.md): one async load(), then one method per export.
//
// Every call returns its decoded result (JSON, or bytes for save) or throws Error(message) when the
// export's status is not 0. Views of the module's memory are made after each call: a call that grows
// the memory replaces memory.buffer, and views made before it would be detached (length 0).

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder('utf-8', { fatal: false });

// Stubs for any import the module might declare (API.md says none): each throws when called, so a
// missing function shows up as an error naming it instead of a failed instantiation.
function stubImports(module) {
  const imports = {};
  for (const { module: mod, name, kind } of WebAssembly.Module.imports(module)) {
    if (kind !== 'function') throw new Error(`makemore.wasm imports ${kind} ${mod}.${name}, which the shim cannot provide`);
    (imports[mod] ??= {})[name] = () => {
      throw new Error(`makemore.wasm called the import ${mod}.${name}, which is not provided`);
    };
  }
  return imports;
}

export async function load(url = 'makemore.wasm') {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`fetching ${url}: HTTP ${response.status} ${response.statusText}`);
  const module = await WebAssembly.compile(await response.arrayBuffer());
  const instance = await WebAssembly.instantiate(module, stubImports(module));
  const x = instance.exports;
  for (const name of ['memory', 'mm_alloc', 'mm_free', 'mm_out_ptr', 'mm_out_len']) {
    if (!(name in x)) throw new Error(`makemore.wasm does not export ${name}`);
  }

  // The output buffer's bytes, copied out (the buffer is only valid until the next call).
  const output = () => {
    const ptr = x.mm_out_ptr() >>> 0;
    const len = x.mm_out_len() >>> 0;
    return new Uint8Array(x.memory.buffer, ptr, len).slice();
  };

  // Runs export `name` with `args`; `input` (bytes) is copied into module memory and its pointer and
  // length are passed first. Returns the output bytes; throws the error message on status != 0.
  const call = (name, args = [], input = null) => {
    const f = x[name];
    if (typeof f !== 'function') throw new Error(`makemore.wasm does not export ${name}`);
    let status;
    if (input) {
      const len = input.length;
      const ptr = x.mm_alloc(len) >>> 0;
      try {
        new Uint8Array(x.memory.buffer, ptr, len).set(input);
        status = f(ptr, len, ...args);
      } finally {
        x.mm_free(ptr, len);
      }
    } else {
      status = f(...args);
    }
    const bytes = output();
    if (status !== 0) throw new Error(fromUtf8.decode(bytes) || `${name} failed (status ${status})`);
    return bytes;
  };
  const json = (name, args, input) => JSON.parse(fromUtf8.decode(call(name, args, input)));

  return {
    /** The word list (text or bytes) → {words, duplicates, blank_lines, vocab, train, val, test}. */
    loadWords: (words) => json('mm_load_words', [], typeof words === 'string' ? utf8.encode(words) : words),
    /** isa: 0 scalar, 1 simd128. Seeds and step counts are passed as f64. */
    init: (seed, isa, steps, lr, decayStep) => json('mm_init', [seed, isa, steps, lr, decayStep]),
    train: (maxSteps) => json('mm_train', [maxSteps]),
    evaluate: () => json('mm_evaluate'),
    sample: (count, seed, temperature, topK) => json('mm_sample', [count, seed, temperature, topK]),
    gradcheck: (seed, fdSamples) => json('mm_gradcheck', [seed, fdSamples]),
    /** The checkpoint's safetensors bytes. */
    save: () => call('mm_save'),
    /** isa: as init's, for the loaded model's training, evaluation and sampling. */
    loadCheckpoint: (bytes, isa) => json('mm_load_checkpoint', [isa], bytes),
    /** No status: 1 if this build runs the isa, else 0. */
    isaAvailable: (isa) => x.mm_isa_available(isa) === 1,
  };
}

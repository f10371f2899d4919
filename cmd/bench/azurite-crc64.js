// Loaded into Azurite by cmd/bench (NODE_OPTIONS=--require=<this file>).
// Azurite checks x-ms-content-crc64 with a byte-at-a-time JavaScript loop
// (tens of MB/s on one core), which Azure does in hardware at line rate;
// left as is, the emulator's checksum loop, not the uploader, would be what
// the benchmark measures for the side that sends CRC64s. This swaps in the
// same CRC-64/NVME as a slicing-by-16 loop in WebAssembly, the input copied
// into the module's memory 256 KiB at a time (1.0-1.6 GB/s on the 2-core
// development machine, about 10 times the slicing-by-8 JavaScript it replaced;
// node cmd/bench/azurite-crc64-speed.js), and checks at start-up that it
// gives Azurite's results for many lengths and cut points, so Azurite still
// verifies every checksum.
// WASM is azurite-crc64.wat, built by: npx -y -p wabt@1.0.39 wat2wasm azurite-crc64.wat -o c.wasm && base64 -w0 c.wasm
"use strict";
const Module = require("module");
const fs = require("fs");
const crypto = require("crypto");

const WASM = "AGFzbQEAAAABCAJgAABgAX8AAwMCAAEFAwEABQcTAgZtZW1vcnkCAAZ1cGRhdGUAAQgBAAqwBAKlAQIDfwF+A0AgAK0hA0EIIQEDQCADQgGIQrWTr+Ka5aS2mn9CACADQgGDfYOFIQMgAUEBayIBDQALIABBA3QgAzcDgCAgAEEBaiIAQYACSQ0AC0GAECECA0BBACEAA0AgAiAAaikDgBAhAyACIABqIANCCIggA0L/AYOnQQN0KQOAIIU3A4AgIABBCGoiAEGAEEkNAAsgAkGAEGoiAkGAgAJJDQALC4YDBAF+An8BfgR/QQApAwAhAUGAgAQhAiACIABqIQMCQANAIAJBEGogA0sNASABIAIpAwCFIQQgBKchBSAEQiCIpyEGIAIpAwghBCAEpyEHIARCIIinIQggCEEVdkH4D3EpA4AgIAhBDXZB+A9xKQOAMIUgCEEFdkH4D3EpA4BAIAhBA3RB+A9xKQOAUIWFIAdBFXZB+A9xKQOAYCAHQQ12QfgPcSkDgHCFIAdBBXZB+A9xKQOAgAEgB0EDdEH4D3EpA4CQAYWFhSAGQRV2QfgPcSkDgKABIAZBDXZB+A9xKQOAsAGFIAZBBXZB+A9xKQOAwAEgBkEDdEH4D3EpA4DQAYWFIAVBFXZB+A9xKQOA4AEgBUENdkH4D3EpA4DwAYUgBUEFdkH4D3EpA4CAAiAFQQN0QfgPcSkDgJAChYWFhSEBIAJBEGohAgwACwsCQANAIAIgA08NASABQgiIIAGnIAItAABzQf8BcUEDdCkDgCCFIQEgAkEBaiECDAALC0EAIAE3AwAL";

const target = "/azurite/dist/src/common/utils/utils.js";
const load = Module._extensions[".js"];
Module._extensions[".js"] = function (module, filename) {
  if (!filename.endsWith(target)) {
    return load(module, filename);
  }
  const src = fs.readFileSync(filename, "utf8") + "\nexports.__CRC64Hash = CRC64Hash;\n";
  module._compile(src, filename);
  const C = module.exports.__CRC64Hash;
  const stock = C.prototype.update;
  C.prototype.update = fastUpdate(stock);
  selfCheck(C, stock);
};

// The module's memory: the state (lo, hi) at 0, tables, and the input from IN.
const IN = 65536;
const { memory, update: run } = new WebAssembly.Instance(
  new WebAssembly.Module(Buffer.from(WASM, "base64"))).exports;
const heap = new Uint8Array(memory.buffer); // the memory never grows
const state = new Uint32Array(memory.buffer, 0, 2);
const CHUNK = heap.length - IN;

// fastUpdate is CRC64Hash.prototype.update on the same state: this.hi and
// this.lo, the running CRC's halves as unsigned 32-bit numbers. Strings are
// hashed as UTF-8, as Azurite's does; anything not bytes goes to Azurite's.
function fastUpdate(stock) {
  return function update(chunk) {
    const bytes = typeof chunk === "string" ? Buffer.from(chunk) : chunk;
    if (!(bytes instanceof Uint8Array)) {
      return stock.call(this, chunk);
    }
    state[0] = this.lo;
    state[1] = this.hi;
    const n = bytes.length;
    if (n <= CHUNK) {
      heap.set(bytes, IN);
      run(n);
    } else {
      for (let off = 0; off < n; off += CHUNK) {
        const m = Math.min(CHUNK, n - off);
        heap.set(new Uint8Array(bytes.buffer, bytes.byteOffset + off, m), IN);
        run(m);
      }
    }
    this.lo = state[0];
    this.hi = state[1];
    return this;
  };
}

// selfCheck compares the new update with Azurite's on the same bytes: whole
// inputs of many lengths, each input cut in two at many points, pieces of
// odd sizes at odd offsets, and a string; it throws on any difference.
function selfCheck(C, stock) {
  const size = 2 * CHUNK + 37;
  const data = crypto.randomBytes(size);
  const points = [0, 1, 2, 7, 8, 9, 15, 16, 17, 31, 32, 33, 4095, 4096, 4097,
    CHUNK - 1, CHUNK, CHUNK + 1, CHUNK + 16, 2 * CHUNK, size - 1, size];
  const same = (what, got, want) => {
    if (got.hi !== want.hi || got.lo !== want.lo) {
      throw new Error("bench: the replacement CRC64 differs from Azurite's on " + what);
    }
  };
  // Azurite's state after each prefix in points, in one pass of its loop.
  const ref = new Map();
  const r = new C();
  let at = 0;
  for (const p of points) {
    stock.call(r, data.subarray(at, p));
    at = p;
    ref.set(p, { hi: r.hi, lo: r.lo });
  }
  const whole = ref.get(size);
  for (const p of points) {
    same(p + " bytes", new C().update(data.subarray(0, p)), ref.get(p));
    same(size + " bytes cut at " + p,
      new C().update(data.subarray(0, p)).update(data.subarray(p)), whole);
  }
  const c = new C();
  for (let off = 0, k = 1; off < size; off += k, k = k % 23 + 1) {
    c.update(data.subarray(off, Math.min(off + k, size)));
  }
  same(size + " bytes in pieces of 1 to 23", c, whole);
  const text = "CRC-64/NVME \u00e9\u4e2d\ud83d\ude00".repeat(7);
  const want = new C();
  stock.call(want, text);
  same("a string", new C().update(text), want);
}

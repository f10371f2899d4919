// Loaded into Azurite by cmd/bench (NODE_OPTIONS=--require=<this file>).
// Azurite checks x-ms-content-crc64 with a byte-at-a-time JavaScript loop
// (about 20 MB/s on one core), which Azure does in hardware at line rate;
// left as is, the emulator's checksum loop, not the uploader, would be what
// the benchmark measures for the side that sends CRC64s. This swaps in a
// slicing-by-8 version of the same CRC-64/NVME and checks at start-up that
// both give the same result, so Azurite still verifies every checksum.
"use strict";
const Module = require("module");
const fs = require("fs");
const crypto = require("crypto");

const target = "/azurite/dist/src/common/utils/utils.js";
const load = Module._extensions[".js"];
Module._extensions[".js"] = function (module, filename) {
  if (!filename.endsWith(target)) {
    return load(module, filename);
  }
  const src = fs.readFileSync(filename, "utf8") + "\nexports.__CRC64Hash = CRC64Hash;\n";
  module._compile(src, filename);
  const C = module.exports.__CRC64Hash;
  const slow = C.prototype.update;
  C.prototype.update = update;
  selfCheck(C, slow);
};

// T[k] as hi/lo halves: T[0] is the byte table, T[k][i] = T[k-1][i] >> 8 ^ T[0][T[k-1][i] & 0xff].
const HI = [], LO = [];
(function tables() {
  const POLY_HI = 0x9a6c9329, POLY_LO = 0xac4bc9b5;
  HI[0] = new Uint32Array(256);
  LO[0] = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let hi = 0, lo = i;
    for (let j = 0; j < 8; j++) {
      const odd = lo & 1;
      lo = ((hi & 1) << 31 | lo >>> 1) >>> 0;
      hi = hi >>> 1;
      if (odd) { hi = (hi ^ POLY_HI) >>> 0; lo = (lo ^ POLY_LO) >>> 0; }
    }
    HI[0][i] = hi; LO[0][i] = lo;
  }
  for (let k = 1; k < 8; k++) {
    HI[k] = new Uint32Array(256);
    LO[k] = new Uint32Array(256);
    for (let i = 0; i < 256; i++) {
      const h = HI[k - 1][i], l = LO[k - 1][i], b = l & 0xff;
      HI[k][i] = (h >>> 8 ^ HI[0][b]) >>> 0;
      LO[k][i] = ((h & 0xff) << 24 | l >>> 8) ^ LO[0][b];
    }
  }
})();

function update(chunk) {
  const bytes = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk);
  let hi = this.hi | 0, lo = this.lo | 0, i = 0;
  const n = bytes.length;
  const [H0, H1, H2, H3, H4, H5, H6, H7] = HI;
  const [L0, L1, L2, L3, L4, L5, L6, L7] = LO;
  for (; i + 8 <= n; i += 8) {
    const a = lo ^ bytes.readInt32LE(i);
    const b = hi ^ bytes.readInt32LE(i + 4);
    const x0 = a & 0xff, x1 = a >>> 8 & 0xff, x2 = a >>> 16 & 0xff, x3 = a >>> 24;
    const x4 = b & 0xff, x5 = b >>> 8 & 0xff, x6 = b >>> 16 & 0xff, x7 = b >>> 24;
    hi = H7[x0] ^ H6[x1] ^ H5[x2] ^ H4[x3] ^ H3[x4] ^ H2[x5] ^ H1[x6] ^ H0[x7] | 0;
    lo = L7[x0] ^ L6[x1] ^ L5[x2] ^ L4[x3] ^ L3[x4] ^ L2[x5] ^ L1[x6] ^ L0[x7] | 0;
  }
  for (; i < n; i++) {
    const x = (lo ^ bytes[i]) & 0xff;
    lo = ((hi & 0xff) << 24 | lo >>> 8) ^ L0[x] | 0;
    hi = (hi >>> 8 ^ H0[x]) | 0;
  }
  this.hi = hi >>> 0;
  this.lo = lo >>> 0;
  return this;
}

function selfCheck(C, slow) {
  const data = crypto.randomBytes(1 << 16);
  for (const cut of [0, 1, 7, 8, 9, 4096, 65535]) {
    const fast = new C().update(data.subarray(0, cut)).update(data.subarray(cut)).digest();
    const ref = new C();
    slow.call(ref, data);
    if (Buffer.compare(Buffer.from(fast), Buffer.from(ref.digest())) !== 0) {
      throw new Error("bench: the replacement CRC64 differs from Azurite's");
    }
  }
}

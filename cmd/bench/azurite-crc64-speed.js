// Times Azurite's CRC64Hash.update as patched by azurite-crc64.js (or the
// patch file given) against Azurite's stock loop, in MB/s (10^6 bytes/s):
//
//	node cmd/bench/azurite-crc64-speed.js [patch.js] [MiB]
//
// The patched update hashes MiB (default 64) of random bytes in 4 MiB and in
// 4 KiB pieces, best of 7 (other load on the machine only slows some); the
// stock loop a quarter of that, once.
"use strict";
const Module = require("module");
const fs = require("fs");
const path = require("path");
const crypto = require("crypto");

const patch = path.resolve(process.argv[2] || path.join(__dirname, "azurite-crc64.js"));
const mib = +(process.argv[3] || 64);
const file = require.resolve("azurite/dist/src/common/utils/utils.js", { paths: [__dirname] });

// Azurite's own, compiled apart from the require hook.
const m = new Module(file, module);
m.filename = file;
m.paths = Module._nodeModulePaths(path.dirname(file));
m._compile(fs.readFileSync(file, "utf8") + "\nexports.__CRC64Hash = CRC64Hash;\n", file);
const Stock = m.exports.__CRC64Hash;

require(patch); // installs the hook; requiring utils.js patches it and self-checks
const C = require(file).__CRC64Hash;

function time(Hash, bytes, piece, reps) {
  const views = [];
  for (let off = 0; off < bytes.length; off += piece) views.push(bytes.subarray(off, off + piece));
  let best = 0, h;
  for (let r = 0; r < reps; r++) {
    h = new Hash();
    const t = process.hrtime.bigint();
    for (const v of views) h.update(v);
    const s = Number(process.hrtime.bigint() - t) / 1e9;
    best = Math.max(best, bytes.length / 1e6 / s);
  }
  return { mbs: best, digest: Buffer.from(h.digest()).toString("hex") };
}

const data = crypto.randomBytes(mib << 20);
const small = data.subarray(0, data.length >> 2);
console.log(`node ${process.version}, ${patch}`);
for (const piece of [4 << 20, 4 << 10]) {
  const fast = time(C, data, piece, 7);
  const stock = time(Stock, small, piece, 1);
  const check = time(C, small, piece, 1);
  if (check.digest !== stock.digest) throw new Error("patched and stock CRC64s differ");
  console.log(`${piece >> 10} KiB pieces: patched ${fast.mbs.toFixed(0)} MB/s over ${mib} MiB, ` +
    `stock ${stock.mbs.toFixed(1)} MB/s over ${mib >> 2} MiB`);
}

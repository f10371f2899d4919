;; CRC-64/NVME (Azure's x-ms-content-crc64), slicing-by-16, for azurite-crc64.js.
;; Build: npx -y -p wabt@1.0.39 wat2wasm azurite-crc64.wat -o /dev/stdout | base64 -w0
;;
;; Memory (5 pages):
;;   0              the CRC state, an i64 (JS sees lo at 0, hi at 4), not inverted
;;   4096 + 2048*k  table T_k, 256 i64s: T_0 is the byte table and
;;                  T_k[i] = T_(k-1)[i] >> 8 ^ T_0[T_(k-1)[i] & 0xff], for k < 16
;;   65536 ...      the input, up to 256 KiB at a time, copied in by JS
;; Table indices are pre-scaled: (x >> (8j - 3)) & 0x7f8 is byte j of x times 8.
(module
  (memory (export "memory") 5)
  (start $tables)

  (func $tables (local $i i32) (local $j i32) (local $k i32) (local $c i64)
    ;; T_0: the reflected polynomial 0x9a6c9329ac4bc9b5, a bit at a time.
    (loop $t0
      (local.set $c (i64.extend_i32_u (local.get $i)))
      (local.set $j (i32.const 8))
      (loop $bit
        (local.set $c
          (i64.xor (i64.shr_u (local.get $c) (i64.const 1))
            (i64.and (i64.const 0x9a6c9329ac4bc9b5)
              (i64.sub (i64.const 0) (i64.and (local.get $c) (i64.const 1))))))
        (br_if $bit (local.tee $j (i32.sub (local.get $j) (i32.const 1)))))
      (i64.store offset=4096 (i32.shl (local.get $i) (i32.const 3)) (local.get $c))
      (br_if $t0 (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 1))) (i32.const 256))))
    ;; T_1 .. T_15; $k is the byte offset of T_k from T_0, $i of the entry.
    (local.set $k (i32.const 2048))
    (loop $tk
      (local.set $i (i32.const 0))
      (loop $e
        (local.set $c (i64.load offset=2048 (i32.add (local.get $k) (local.get $i))))
        (i64.store offset=4096 (i32.add (local.get $k) (local.get $i))
          (i64.xor (i64.shr_u (local.get $c) (i64.const 8))
            (i64.load offset=4096
              (i32.shl (i32.wrap_i64 (i64.and (local.get $c) (i64.const 0xff))) (i32.const 3)))))
        (br_if $e (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 8))) (i32.const 2048))))
      (br_if $tk (i32.lt_u (local.tee $k (i32.add (local.get $k) (i32.const 2048))) (i32.const 32768)))))

  ;; update(n): feeds the n bytes at 65536 into the state at 0.
  (func (export "update") (param $n i32)
    (local $crc i64) (local $p i32) (local $end i32) (local $x i64)
    (local $a0 i32) (local $a1 i32) (local $b0 i32) (local $b1 i32)
    (local.set $crc (i64.load (i32.const 0)))
    (local.set $p (i32.const 65536))
    (local.set $end (i32.add (local.get $p) (local.get $n)))
    ;; 16 bytes a step: a = crc ^ the first 8 (T_15 .. T_8), b = the next 8 (T_7 .. T_0).
    (block $done
      (loop $wide
        (br_if $done (i32.gt_u (i32.add (local.get $p) (i32.const 16)) (local.get $end)))
        (local.set $x (i64.xor (local.get $crc) (i64.load (local.get $p))))
        (local.set $a0 (i32.wrap_i64 (local.get $x)))
        (local.set $a1 (i32.wrap_i64 (i64.shr_u (local.get $x) (i64.const 32))))
        (local.set $x (i64.load offset=8 (local.get $p)))
        (local.set $b0 (i32.wrap_i64 (local.get $x)))
        (local.set $b1 (i32.wrap_i64 (i64.shr_u (local.get $x) (i64.const 32))))
        ;; A balanced xor tree, b's half first: it does not wait on crc.
        (local.set $crc
          (i64.xor
            (i64.xor
              (i64.xor
                (i64.xor
                  (i64.load offset=4096  (i32.and (i32.shr_u (local.get $b1) (i32.const 21)) (i32.const 0x7f8)))
                  (i64.load offset=6144  (i32.and (i32.shr_u (local.get $b1) (i32.const 13)) (i32.const 0x7f8))))
                (i64.xor
                  (i64.load offset=8192  (i32.and (i32.shr_u (local.get $b1) (i32.const 5)) (i32.const 0x7f8)))
                  (i64.load offset=10240 (i32.and (i32.shl (local.get $b1) (i32.const 3)) (i32.const 0x7f8)))))
              (i64.xor
                (i64.xor
                  (i64.load offset=12288 (i32.and (i32.shr_u (local.get $b0) (i32.const 21)) (i32.const 0x7f8)))
                  (i64.load offset=14336 (i32.and (i32.shr_u (local.get $b0) (i32.const 13)) (i32.const 0x7f8))))
                (i64.xor
                  (i64.load offset=16384 (i32.and (i32.shr_u (local.get $b0) (i32.const 5)) (i32.const 0x7f8)))
                  (i64.load offset=18432 (i32.and (i32.shl (local.get $b0) (i32.const 3)) (i32.const 0x7f8))))))
            (i64.xor
              (i64.xor
                (i64.xor
                  (i64.load offset=20480 (i32.and (i32.shr_u (local.get $a1) (i32.const 21)) (i32.const 0x7f8)))
                  (i64.load offset=22528 (i32.and (i32.shr_u (local.get $a1) (i32.const 13)) (i32.const 0x7f8))))
                (i64.xor
                  (i64.load offset=24576 (i32.and (i32.shr_u (local.get $a1) (i32.const 5)) (i32.const 0x7f8)))
                  (i64.load offset=26624 (i32.and (i32.shl (local.get $a1) (i32.const 3)) (i32.const 0x7f8)))))
              (i64.xor
                (i64.xor
                  (i64.load offset=28672 (i32.and (i32.shr_u (local.get $a0) (i32.const 21)) (i32.const 0x7f8)))
                  (i64.load offset=30720 (i32.and (i32.shr_u (local.get $a0) (i32.const 13)) (i32.const 0x7f8))))
                (i64.xor
                  (i64.load offset=32768 (i32.and (i32.shr_u (local.get $a0) (i32.const 5)) (i32.const 0x7f8)))
                  (i64.load offset=34816 (i32.and (i32.shl (local.get $a0) (i32.const 3)) (i32.const 0x7f8))))))))
        (local.set $p (i32.add (local.get $p) (i32.const 16)))
        (br $wide)))
    ;; The last 0 .. 15 bytes one at a time.
    (block $out
      (loop $byte
        (br_if $out (i32.ge_u (local.get $p) (local.get $end)))
        (local.set $crc
          (i64.xor (i64.shr_u (local.get $crc) (i64.const 8))
            (i64.load offset=4096
              (i32.shl
                (i32.and (i32.xor (i32.wrap_i64 (local.get $crc)) (i32.load8_u (local.get $p))) (i32.const 0xff))
                (i32.const 3)))))
        (local.set $p (i32.add (local.get $p) (i32.const 1)))
        (br $byte)))
    (i64.store (i32.const 0) (local.get $crc))))

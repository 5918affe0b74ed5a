#!/usr/bin/env bash
# The firmware, end to end: installs QEMU and the target if missing, trains two small checkpoints
# with the CLI, builds the two firmwares with them embedded, runs each under QEMU (mps2-an386,
# Cortex-M4F; the Exercise-4 one also on netduinoplus2, an STM32F405) with a timeout, and diffs
# what they print against the host:
# - the 20 sampled names against `makemore sample --checkpoint .. --seed .. --count 20`;
# - the training lines against firmware-host (the same code and core on the host).
# Exits non-zero if QEMU fails or times out, or if anything differs. Called by .ci/run.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

steps=${FIRMWARE_CKPT_STEPS:-3000}        # CLI training steps of the embedded checkpoints
qemu_timeout=${FIRMWARE_QEMU_TIMEOUT:-300} # seconds per QEMU run (each takes 1 to 2 s)
work="$root/target/firmware"
mkdir -p "$work"

say() { printf '\n-- firmware: %s\n' "$1"; }

say "tools"
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
if ! command -v qemu-system-arm >/dev/null || ! command -v arm-none-eabi-size >/dev/null; then
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    qemu-system-arm binutils-arm-none-eabi >/dev/null
fi
rustup target add thumbv7em-none-eabihf >/dev/null 2>&1 || rustup target add thumbv7em-none-eabihf
qemu-system-arm --version | head -1

say "checkpoints: makemore train --steps $steps (Exercise 4; Exercise 1 with --hidden 64)"
cargo build -q --release -p cli
makemore() { cargo run -q --release -p cli -- "$@"; }
makemore train --steps "$steps" --out "$work/ex4" --samples 0 --threads 1 >"$work/ex4.train.log"
makemore train --steps "$steps" --hidden 64 --out "$work/ex1" --samples 0 --threads 1 >"$work/ex1.train.log"
export MAKEMORE_CHECKPOINT_EX4="$work/ex4/model.safetensors"
export MAKEMORE_CHECKPOINT_EX1="$work/ex1/model.safetensors"
ls -l "$MAKEMORE_CHECKPOINT_EX4" "$MAKEMORE_CHECKPOINT_EX1"

say "build (thumbv7em-none-eabihf, release)"
# The executables' paths from cargo's JSON messages (wherever the target directory is).
elves=$(cd firmware && cargo build --release -p makemore-firmware --target thumbv7em-none-eabihf \
  --message-format=json-render-diagnostics | grep -o '"executable":"[^"]*"' | cut -d'"' -f4)
elf() { printf '%s\n' "$elves" | grep "/$1\$"; }
arm-none-eabi-size $(elf ex4-128k) $(elf ex1-64k)

say "host reference (firmware-host)"
(cd firmware && cargo build -q --release -p firmware-host)
host=$(cd firmware && cargo build --release -p firmware-host --message-format=json-render-diagnostics |
  grep -o '"executable":"[^"]*"' | cut -d'"' -f4)

failed=0
# model:binary:machine. netduinoplus2 (STM32F405: 1 MiB flash at 0x08000000, aliased at 0 at boot;
# 128 KiB SRAM at 0x20000000) runs the same Exercise-4 binary, whose layout fits its real SRAM.
for config in ex4:ex4-128k:mps2-an386 ex1:ex1-64k:mps2-an386 ex4:ex4-128k:netduinoplus2; do
  IFS=: read -r model bin machine <<<"$config"
  say "$bin under QEMU $machine"
  out="$work/$bin.$machine.out"
  t0=$(date +%s%N)
  rc=0
  timeout "$qemu_timeout" qemu-system-arm -cpu cortex-m4 -machine "$machine" -nographic \
    -semihosting-config enable=on,target=native -kernel "$(elf "$bin")" </dev/null >"$out" 2>&1 || rc=$?
  ms=$((($(date +%s%N) - t0) / 1000000))
  cat "$out"
  printf 'QEMU exit %s after %d.%03d s\n' "$rc" $((ms / 1000)) $((ms % 1000))
  if [ "$rc" -ne 0 ]; then
    [ "$rc" -eq 124 ] && echo "FAIL: $bin timed out after ${qemu_timeout}s" >&2
    echo "FAIL: $bin: QEMU exited with $rc" >&2
    failed=1
    continue
  fi

  # The names: the lines between the "sample:" and "train:" headers.
  awk '/^train:/{s=0} s{print} /^sample:/{s=1}' "$out" >"$work/$bin.$machine.names"
  # the seed the firmware says it used (makemore_core::rng::SAMPLE_SEED)
  seed=$(sed -n 's/^sample: .* seed \([0-9]*\),.*/\1/p' "$out")
  makemore sample --checkpoint "$work/$model/model.safetensors" --seed "$seed" --count 20 \
    2>/dev/null | cut -f1 >"$work/$model.host.names"
  if [ "$(wc -l <"$work/$bin.$machine.names")" -eq 20 ] &&
    diff -u "$work/$model.host.names" "$work/$bin.$machine.names"; then
    echo "OK: the 20 names equal makemore sample's"
  else
    echo "FAIL: $bin: the names differ from makemore sample's (or are not 20)" >&2
    failed=1
  fi

  # The training lines: exact (the loss and its f32 bits).
  grep -E '^(train:|step )' "$out" >"$work/$bin.$machine.train" || true
  "$host" "$model" >"$work/$model.host.train"
  if [ -s "$work/$bin.$machine.train" ] && diff -u "$work/$model.host.train" "$work/$bin.$machine.train"; then
    echo "OK: the $(grep -c '^step ' "$work/$bin.$machine.train") loss lines equal the host's bit for bit"
  else
    echo "FAIL: $bin: the training lines differ from the host's" >&2
    failed=1
  fi
done

if [ "$failed" -ne 0 ]; then
  echo "firmware: FAILED" >&2
  exit 1
fi
echo "firmware: every run matches the host"

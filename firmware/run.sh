#!/usr/bin/env bash
# The firmware, end to end: installs QEMU and the targets if missing, trains two small checkpoints
# with the CLI, builds the firmwares with them embedded, runs each under QEMU with a timeout
# (mps2-an386, Cortex-M4F: Exercise 4 in 128 KiB, Exercise 4 with the lean step in 64 KiB,
# Exercise 1 in 64 KiB; the first also on netduinoplus2, an STM32F405; the sampling-only
# Exercise-4 one on microbit, a Cortex-M0 without FPU; the smallest complete example,
# firmware/example, on mps2-an386) and diffs what they print against the host:
# - the 20 sampled names against `makemore sample --checkpoint .. --seed .. --count 20`;
# - the training lines against firmware-host (the same code and core on the host);
# and the example's files against their code blocks in docs/firmware.md.
# Every run is deterministic (-icount shift=0); it prints the instructions per sampled name and per
# training step from the firmware's SysTick counts, checked by a calibration loop, and the memory
# report. Exits non-zero if QEMU fails or times out, or if anything differs. Called by .ci/run.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

steps=${FIRMWARE_CKPT_STEPS:-3000}        # CLI training steps of the embedded checkpoints
qemu_timeout=${FIRMWARE_QEMU_TIMEOUT:-300} # seconds per QEMU run (each takes 1 to 5 s)
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
for target in thumbv7em-none-eabihf thumbv6m-none-eabi; do
  rustup target add "$target" >/dev/null 2>&1 || rustup target add "$target"
done
qemu-system-arm --version | head -1

say "checkpoints: makemore train --steps $steps (Exercise 4; Exercise 1 with --hidden 64)"
cargo build -q --release -p cli
makemore() { cargo run -q --release -p cli -- "$@"; }
makemore train --steps "$steps" --out "$work/ex4" --samples 0 --threads 1 >"$work/ex4.train.log"
makemore train --steps "$steps" --hidden 64 --out "$work/ex1" --samples 0 --threads 1 >"$work/ex1.train.log"
export MAKEMORE_CHECKPOINT_EX4="$work/ex4/model.safetensors"
export MAKEMORE_CHECKPOINT_EX1="$work/ex1/model.safetensors"
ls -l "$MAKEMORE_CHECKPOINT_EX4" "$MAKEMORE_CHECKPOINT_EX1"

# The runs, model:binary:machine:reference, the reference being firmware-host's argument for the
# training lines (- for a binary that only samples). ex4-lean-64k trains Exercise 4 in 64 KiB with
# the core's lean step, its checkpoint read in place. netduinoplus2 (STM32F405: 1 MiB flash at
# 0x08000000, aliased at 0 at boot; 128 KiB SRAM at 0x20000000) runs the same Exercise-4 binary as
# mps2-an386, whose layout fits its real SRAM. microbit (nRF51822: 256 KiB of flash, 16 KiB of
# RAM) runs the M0 binary, which only samples, its checkpoint read in place from flash.
runs="ex4:ex4-128k:mps2-an386:ex4 ex4:ex4-lean-64k:mps2-an386:ex4-lean ex1:ex1-64k:mps2-an386:ex1
ex4:ex4-128k:netduinoplus2:ex4 ex4:ex4-m0-sample:microbit:-"
# Per machine: the CPU, the Rust target, and the processor clock SysTick counts (Hz), from QEMU's
# sources (hw/arm/mps2.c SYSCLK_FRQ 25 MHz; hw/arm/netduinoplus2.c SYSCLK_FRQ 168 MHz, wired to
# the STM32F405's cpuclk; hw/arm/nrf51_soc.c HCLK_FRQ 16 MHz: a real nRF51 has no SysTick, QEMU's
# has one), checked by the calibration below.
machine() {
  case "$1" in
  mps2-an386) echo "cortex-m4 thumbv7em-none-eabihf 25000000" ;;
  netduinoplus2) echo "cortex-m4 thumbv7em-none-eabihf 168000000" ;;
  microbit) echo "cortex-m0 thumbv6m-none-eabi 16000000" ;;
  *) echo "unknown machine $1" >&2 && return 1 ;;
  esac
}

# cargo in the firmware workspace with its own release profile (LTO, one codegen unit: the sizes
# in docs/firmware.md), whatever a caller's CARGO_PROFILE_RELEASE_* say (.ci/run sets them for the
# main workspace).
fw_cargo() { (cd firmware && env -u CARGO_PROFILE_RELEASE_LTO -u CARGO_PROFILE_RELEASE_CODEGEN_UNITS cargo "$@"); }

# Each binary for its machine's target only (the M4F binaries for thumbv7em, the M0 one for
# thumbv6m). The executables' paths from cargo's JSON messages (wherever the target directory is).
elves=""
for target in thumbv7em-none-eabihf thumbv6m-none-eabi; do
  bins=()
  for run in $runs; do
    IFS=: read -r _ bin mach _ <<<"$run"
    read -r _ t _ <<<"$(machine "$mach")"
    [ "$t" = "$target" ] && [[ " ${bins[*]} " != *" $bin "* ]] && bins+=(--bin "$bin")
  done
  say "build ($target, release): ${bins[*]}"
  built=$(fw_cargo build --release -p makemore-firmware --target "$target" "${bins[@]}" \
    --message-format=json-render-diagnostics | grep -o '"executable":"[^"]*"' | cut -d'"' -f4)
  arm-none-eabi-size $built
  elves+="$built"$'\n'
done
elf() { printf '%s' "$elves" | grep "/$2/release/$1\$"; }

say "host reference (firmware-host)"
fw_cargo build -q --release -p firmware-host
host=$(fw_cargo build --release -p firmware-host --message-format=json-render-diagnostics |
  grep -o '"executable":"[^"]*"' | cut -d'"' -f4)

# The QEMU command line of a machine. -icount shift=0: every instruction advances the virtual
# clock by 2^0 = 1 ns, so the run is deterministic and SysTick's ticks count instructions.
# Semihosting (BKPT 0xAB) works alike on the Cortex-M4 and the Cortex-M0.
qemu() {
  local mach=$1 elf=$2 cpu
  read -r cpu _ _ <<<"$(machine "$mach")"
  timeout "$qemu_timeout" qemu-system-arm -cpu "$cpu" -machine "$mach" -nographic -icount shift=0 \
    -semihosting-config enable=on,target=native -kernel "$elf" </dev/null
}

# ticks of the processor clock (Hz) to instructions, rounded: 1 instruction = 1 ns of virtual time
instructions() { echo $((($1 * 1000000000 + $2 / 2) / $2)); }
# the number on the firmware's line "cost: WHAT N ticks"
ticks() { sed -n "s/^cost: $1 \([0-9]*\) ticks\$/\1/p" "$2"; }

failed=0
summary=()
for run in $runs; do
  IFS=: read -r model bin mach reference <<<"$run"
  read -r _ target hz <<<"$(machine "$mach")"
  say "$bin under QEMU $mach"
  out="$work/$bin.$mach.out"
  t0=$(date +%s%N)
  rc=0
  qemu "$mach" "$(elf "$bin" "$target")" >"$out" 2>&1 || rc=$?
  ms=$((($(date +%s%N) - t0) / 1000000))
  cat "$out"
  printf 'QEMU exit %s after %d.%03d s\n' "$rc" $((ms / 1000)) $((ms % 1000))
  if [ "$rc" -ne 0 ]; then
    [ "$rc" -eq 124 ] && echo "FAIL: $bin timed out after ${qemu_timeout}s" >&2
    echo "FAIL: $bin: QEMU exited with $rc" >&2
    failed=1
    continue
  fi

  # The names: the lines between the "sample:" header and the next "word:" line ("cost:").
  awk '/^[a-z]+:/{s=0} s{print} /^sample:/{s=1}' "$out" >"$work/$bin.$mach.names"
  # the seed the firmware says it used (makemore_core::rng::SAMPLE_SEED)
  seed=$(sed -n 's/^sample: .* seed \([0-9]*\),.*/\1/p' "$out")
  makemore sample --checkpoint "$work/$model/model.safetensors" --seed "$seed" --count 20 \
    2>/dev/null | cut -f1 >"$work/$model.host.names"
  if [ "$(wc -l <"$work/$bin.$mach.names")" -eq 20 ] &&
    diff -u "$work/$model.host.names" "$work/$bin.$mach.names"; then
    echo "OK: the 20 names equal makemore sample's"
  else
    echo "FAIL: $bin: the names differ from makemore sample's (or are not 20)" >&2
    failed=1
  fi

  # The training lines: exact (the loss and its f32 bits).
  if [ "$reference" != - ]; then
    grep -E '^(train:|step )' "$out" >"$work/$bin.$mach.train" || true
    "$host" "$reference" >"$work/$reference.host.train"
    if [ -s "$work/$bin.$mach.train" ] && diff -u "$work/$reference.host.train" "$work/$bin.$mach.train"; then
      echo "OK: the $(grep -c '^step ' "$work/$bin.$mach.train") loss lines equal the host's bit for bit"
    else
      echo "FAIL: $bin: the training lines differ from the host's" >&2
      failed=1
    fi
  fi

  # The cost. Calibration: the firmware times a loop of a known number of instructions; converted
  # with this machine's clock it must come back within one tick (plus the few instructions that
  # read SysTick). A wrong clock is off by a factor; without -icount the ticks follow the host's
  # clock (0 or 61782 ticks for the 2 000 000 instructions, tried once), so the check fails.
  known=$(sed -n 's/^cost: calibration \([0-9]*\) instructions [0-9]* ticks$/\1/p' "$out")
  cal=$(sed -n 's/^cost: calibration [0-9]* instructions \([0-9]*\) ticks$/\1/p' "$out")
  if [ -z "$known" ] || [ -z "$cal" ]; then
    echo "FAIL: $bin: no calibration line" >&2
    failed=1
    continue
  fi
  got=$(instructions "$cal" "$hz")
  off=$((got > known ? got - known : known - got))
  if [ "$off" -le $((1000000000 / hz + 1 + 16)) ]; then
    echo "OK: calibration: $cal ticks at $hz Hz = $got instructions, the loop has $known"
  else
    echo "FAIL: $bin: calibration: $cal ticks at $hz Hz = $got instructions, the loop has $known" >&2
    failed=1
  fi
  line="$bin on $mach:"
  names=$(ticks "sample 20 names" "$out")
  if [ -n "$names" ]; then
    per=$(($(instructions "$names" "$hz") / 20))
    echo "cost: sampling: $names ticks = $(instructions "$names" "$hz") instructions: $per instructions per name"
    line+=" $per instructions per name;"
  else
    echo "FAIL: $bin: no sampling cost line" >&2
    failed=1
  fi
  if [ "$reference" != - ]; then
    steps=$(ticks "train [0-9]* steps" "$out")
    n=$(sed -n 's/^cost: train \([0-9]*\) steps .*/\1/p' "$out")
    if [ -n "$steps" ] && [ -n "$n" ]; then
      per=$(($(instructions "$steps" "$hz") / n))
      echo "cost: training: $steps ticks = $(instructions "$steps" "$hz") instructions: $per instructions per step"
      line+=" $per instructions per step;"
    else
      echo "FAIL: $bin: no training cost line" >&2
      failed=1
    fi
  fi
  summary+=("$line $(sed -n 's/^memory: //p' "$out")")
done

# Repeatable: the same binary on the same machine counts the same ticks (virtual time is the
# instruction count, not the host's clock). One M4F run with training and the M0 run, again.
for again in ex1-64k:mps2-an386 ex4-m0-sample:microbit; do
  IFS=: read -r bin mach <<<"$again"
  read -r _ target _ <<<"$(machine "$mach")"
  say "$bin under QEMU $mach again: the same cost lines"
  rc=0
  qemu "$mach" "$(elf "$bin" "$target")" >"$work/$bin.$mach.again" 2>&1 || rc=$?
  if [ "$rc" -eq 0 ] && [ -s "$work/$bin.$mach.out" ] &&
    diff -u <(grep '^cost:' "$work/$bin.$mach.out") <(grep '^cost:' "$work/$bin.$mach.again"); then
    grep '^cost:' "$work/$bin.$mach.again"
    echo "OK: identical"
  else
    echo "FAIL: $bin on $mach: QEMU exited with $rc or the cost lines differ between two runs" >&2
    failed=1
  fi
done

# The smallest complete example (firmware/example, shown in full in docs/firmware.md): the
# Exercise-4 checkpoint sampled in place in 16 KiB of RAM; its names against makemore sample's,
# its files against the docs' code blocks (each the block after a line `firmware/example/FILE`:).
say "makemore-firmware-example (the docs' smallest complete example) under QEMU mps2-an386"
example=$(MAKEMORE_CHECKPOINT="$MAKEMORE_CHECKPOINT_EX4" fw_cargo build --release \
  -p makemore-firmware-example --target thumbv7em-none-eabihf \
  --message-format=json-render-diagnostics | grep -o '"executable":"[^"]*"' | cut -d'"' -f4)
arm-none-eabi-size "$example"
rc=0
qemu mps2-an386 "$example" >"$work/example.out" 2>&1 || rc=$?
cat "$work/example.out"
awk 's{print} /^sample:/{s=1}' "$work/example.out" >"$work/example.names"
seed=$(sed -n 's/^sample: .* seed \([0-9]*\),.*/\1/p' "$work/example.out")
if [ "$rc" -eq 0 ] && [ -n "$seed" ] && [ "$(wc -l <"$work/example.names")" -eq 20 ] &&
  makemore sample --checkpoint "$MAKEMORE_CHECKPOINT_EX4" --seed "$seed" --count 20 2>/dev/null |
  cut -f1 >"$work/example.host.names" && diff -u "$work/example.host.names" "$work/example.names"; then
  echo "OK: exit 0, the 20 names equal makemore sample's"
else
  echo "FAIL: makemore-firmware-example: QEMU exited with $rc (124: timed out) or the names differ" >&2
  failed=1
fi
for file in src/main.rs memory.x Cargo.toml build.rs; do
  if diff -u <(awk -v m="\`firmware/example/$file\`:" \
    '$0 == m {s=1; next} s && /^```/ {if (b) exit; b=1; next} b' docs/firmware.md) \
    "firmware/example/$file"; then
    echo "OK: docs/firmware.md shows firmware/example/$file as it is"
  else
    echo "FAIL: docs/firmware.md's code block of firmware/example/$file differs from the file" >&2
    failed=1
  fi
done
summary+=("makemore-firmware-example on mps2-an386: $(arm-none-eabi-size "$example" |
  awk 'NR == 2 {print "flash " $1 + $2 " B, .data " $2 " B, .bss " $3 " B"}')")

say "summary (instructions: QEMU -icount shift=0; memory: printed by each firmware)"
printf '%s\n' "${summary[@]}"

if [ "$failed" -ne 0 ]; then
  echo "firmware: FAILED" >&2
  exit 1
fi
echo "firmware: every run matches the host"

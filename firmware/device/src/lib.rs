//! The firmware's runtime around [`firmware_demo`], for every binary (Cortex-M4F and M0):
//! output and exit codes through semihosting, a HardFault handler and a panic handler that exit
//! non-zero (without them a fault hangs QEMU), the memory report (.data, .bss, and the stack
//! high-water of sampling and of training, from the painted stack), and the cost report (SysTick
//! ticks of sampling and of training, [`SysTickMeter`]).
//!
//! Semihosting is the `BKPT 0xAB` call on both ARMv7E-M and ARMv6-M: QEMU takes it on any
//! M-profile CPU (`-semihosting-config enable=on`), the microbit's Cortex-M0 included.
#![no_std]

use core::fmt::{self, Write};
use core::ptr::addr_of;

use cortex_m::peripheral::syst::SystClkSource;
use cortex_m::peripheral::SYST;
use cortex_m_rt::{exception, ExceptionFrame};
use cortex_m_semihosting::debug::{self, EXIT_FAILURE, EXIT_SUCCESS};
use cortex_m_semihosting::hio;
use makemore_core::lean::LeanTrainState;
use makemore_core::train::InPlaceTrainState;

use firmware_demo::{
    sample_checkpoint, sample_in_place, train, DemoError, InferScratch, Meter, SampleScratch,
    Trainer, LR, PRINT_EVERY, SAMPLE_COUNT, SAMPLE_SEED, TRAIN_SEED, TRAIN_STEPS,
};

/// A checkpoint embedded 8-byte aligned, so that its `f32` tensors can be read in place:
/// `static CHECKPOINT: &Aligned<[u8]> = &Aligned(*include_bytes!(..));`.
#[repr(C, align(8))]
pub struct Aligned<T: ?Sized>(pub T);

/// Semihosting stdout, one host call per line.
pub struct Console {
    line: [u8; 128],
    len: usize,
}

impl Console {
    pub const fn new() -> Self {
        Console {
            line: [0; 128],
            len: 0,
        }
    }

    fn flush(&mut self) {
        if let Ok(mut stdout) = hio::hstdout() {
            // Nothing to do if the host refuses output: the exit code still tells.
            let _ = stdout.write_all(&self.line[..self.len]);
        }
        self.len = 0;
    }
}

impl Default for Console {
    fn default() -> Self {
        Self::new()
    }
}

impl Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            if self.len == self.line.len() {
                self.flush();
            }
            self.line[self.len] = b;
            self.len += 1;
            if b == b'\n' {
                self.flush();
            }
        }
        Ok(())
    }
}

/// Ends the QEMU run with exit code 0 or 1.
pub fn exit(ok: bool) -> ! {
    debug::exit(if ok { EXIT_SUCCESS } else { EXIT_FAILURE });
    // Only reached without a semihosting host (real hardware without a debugger).
    loop {
        cortex_m::asm::bkpt();
    }
}

// Symbols of cortex-m-rt's link.x and of our link/<board>-<ram>.x.
extern "C" {
    static __vector_table: u32;
    static __sidata: u32;
    static __sdata: u32;
    static __edata: u32;
    static __sbss: u32;
    static __ebss: u32;
    static _stack_start: u32;
    static _stack_end: u32;
}

/// The stack region `_stack_end.._stack_start` (bottom, top): cortex-m-rt's `paint-stack`
/// fills it with [`cortex_m_rt::STACK_PAINT_VALUE`] at reset.
fn stack_region() -> (usize, usize) {
    (
        addr_of!(_stack_end) as usize,
        addr_of!(_stack_start) as usize,
    )
}

/// Bytes of stack used since the stack was (re)painted: from the top down to the lowest word
/// that no longer holds the paint.
pub fn stack_high_water() -> usize {
    let (bottom, top) = stack_region();
    let mut p = bottom;
    while p < top {
        // SAFETY: p is 4-byte aligned (cortex-m-rt's link.x asserts _stack_end % 4 == 0) and in
        // the stack region, RAM this program owns; a volatile read there has no side effect.
        let word = unsafe { core::ptr::read_volatile(p as *const u32) };
        if word != cortex_m_rt::STACK_PAINT_VALUE {
            return top - p;
        }
        p += 4;
    }
    0
}

/// Paints the unused part of the stack again (below the current stack pointer), so that the
/// next [`stack_high_water`] measures what runs from here on (plus the frames live now).
#[inline(always)]
pub fn repaint_stack() {
    let (bottom, _) = stack_region();
    // Everything live is at or above sp (no red zone on Arm; no interrupts are enabled), and
    // this loop needs no stack of its own.
    let sp = cortex_m::register::msp::read() as usize & !3;
    let mut p = bottom;
    while p < sp {
        // SAFETY: p is 4-byte aligned and in bottom..sp: stack memory below the stack pointer,
        // which holds no live data, so overwriting it cannot change the program's state.
        unsafe { core::ptr::write_volatile(p as *mut u32, cortex_m_rt::STACK_PAINT_VALUE) };
        p += 4;
    }
}

/// The flash and RAM the linker gave each part.
#[derive(Clone, Copy, Debug)]
pub struct MemoryLayout {
    /// vector table, .text, .rodata and the initial values of .data
    pub flash: usize,
    pub data: usize,
    pub bss: usize,
    pub stack: usize,
}

impl MemoryLayout {
    /// From the linker's symbols.
    pub fn read() -> Self {
        let (bottom, top) = stack_region();
        let data = addr_of!(__edata) as usize - addr_of!(__sdata) as usize;
        MemoryLayout {
            // .data's initial values (at __sidata) are the last thing cortex-m-rt puts in flash
            flash: addr_of!(__sidata) as usize + data - addr_of!(__vector_table) as usize,
            data,
            bss: addr_of!(__ebss) as usize - addr_of!(__sbss) as usize,
            stack: top - bottom,
        }
    }
}

/// SysTick as a free-running 24-bit down-counter on the processor clock, summing the ticks of
/// the intervals it measures in a u64. Under QEMU's `-icount shift=0` (one instruction per ns of
/// virtual time) ticks convert to instructions: `ticks * 1e9 / clock` (firmware/run.sh).
///
/// Each interval must stay under 2^23 ticks; a longer one is reported by [`SysTickMeter::take`]
/// (as is one of 2^24 to 2^25 ticks that the counter's wrap would hide, caught by COUNTFLAG).
pub struct SysTickMeter {
    syst: SYST,
    ticks: u64,
    too_long: bool,
}

/// SysTick's reload value and the mask of its 24-bit counter.
const SYST_MASK: u32 = 0x00ff_ffff;

impl SysTickMeter {
    /// Starts SysTick on the processor clock, without its exception.
    pub fn start(mut syst: SYST) -> Self {
        syst.disable_interrupt();
        syst.set_clock_source(SystClkSource::Core);
        syst.set_reload(SYST_MASK);
        syst.clear_current();
        syst.enable_counter();
        SysTickMeter {
            syst,
            ticks: 0,
            too_long: false,
        }
    }

    /// The ticks measured since the last call, or an error if an interval was too long.
    pub fn take(&mut self) -> Result<u64, RunError> {
        let ticks = core::mem::take(&mut self.ticks);
        if core::mem::take(&mut self.too_long) {
            return Err(RunError::TooLong);
        }
        Ok(ticks)
    }
}

impl Meter for SysTickMeter {
    #[inline(always)]
    fn measure<R>(&mut self, f: impl FnOnce() -> R) -> R {
        self.syst.has_wrapped(); // clears COUNTFLAG
        let t0 = SYST::get_current();
        let r = f();
        let t1 = SYST::get_current();
        let wrapped = self.syst.has_wrapped();
        // Counting down: t0 - t1 modulo 2^24, exact if the counter wrapped at most once.
        let ticks = t0.wrapping_sub(t1) & SYST_MASK;
        // A wrap (the counter reached 0) with 0 < t1 <= t0: a whole period or more went by.
        self.too_long |= ticks >= 1 << 23 || (wrapped && t1 != 0 && t1 <= t0);
        self.ticks += u64::from(ticks);
        r
    }
}

/// Iterations of the calibration loop: two instructions each.
pub const CALIBRATION_LOOPS: u32 = 1_000_000;

/// Measures a loop of exactly `2 * CALIBRATION_LOOPS` instructions (`subs`, `bne`), so that
/// firmware/run.sh can check its conversion of ticks into instructions.
#[inline(never)]
pub fn calibrate(meter: &mut SysTickMeter) -> Result<u64, RunError> {
    meter.measure(|| {
        // SAFETY: register arithmetic and a branch back into the block: no memory access, no
        // stack; r0 is declared clobbered (it ends at 0) and the flags are not assumed preserved.
        unsafe {
            core::arch::asm!(
                "2:",
                "subs r0, #1",
                "bne 2b",
                inout("r0") CALIBRATION_LOOPS => _,
                options(nomem, nostack),
            )
        }
    });
    meter.take()
}

/// What a run can fail with besides the demo's errors.
#[derive(Debug)]
pub enum RunError {
    Demo(DemoError),
    /// A measured interval was too long for the 24-bit SysTick.
    TooLong,
    /// The core peripherals were taken already.
    Peripherals,
}

impl From<DemoError> for RunError {
    fn from(e: DemoError) -> Self {
        RunError::Demo(e)
    }
}
impl From<fmt::Error> for RunError {
    fn from(_: fmt::Error) -> Self {
        RunError::Demo(DemoError::Fmt)
    }
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::Demo(e) => write!(f, "{e}"),
            RunError::TooLong => {
                f.write_str("cost: an interval reached 2^23 SysTick ticks, too long to measure")
            }
            RunError::Peripherals => f.write_str("the core peripherals were taken already"),
        }
    }
}

/// The stack high-water marks of the phases that ran: sampling, then training.
#[derive(Default)]
struct HighWater {
    sampling: Option<usize>,
    training: Option<usize>,
}

/// The frame of every binary: prints the header, starts the meter and prints the calibration
/// line, runs `body`, then prints the memory report and exits (code 0 on success, 1 on any
/// error or if the stack reached its last word).
fn firmware(
    what: &str,
    ram: usize,
    body: impl FnOnce(&mut Console, &mut SysTickMeter, &mut HighWater) -> Result<(), RunError>,
) -> ! {
    let mut out = Console::new();
    let mut high_water = HighWater::default();
    let result = (|| -> Result<(), RunError> {
        writeln!(
            out,
            "makemore firmware: {what}, RAM limited to {} KiB",
            ram / 1024
        )?;
        let core = cortex_m::Peripherals::take().ok_or(RunError::Peripherals)?;
        let mut meter = SysTickMeter::start(core.SYST);
        let ticks = calibrate(&mut meter)?;
        writeln!(
            out,
            "cost: calibration {} instructions {ticks} ticks",
            2 * u64::from(CALIBRATION_LOOPS)
        )?;
        body(&mut out, &mut meter, &mut high_water)
    })();
    let m = MemoryLayout::read();
    let _ = write!(
        out,
        "memory: flash {} B; .data {} B, .bss {} B, stack {} B: RAM {} of {} B; stack high-water:",
        m.flash,
        m.data,
        m.bss,
        m.stack,
        m.data + m.bss + m.stack,
        ram,
    );
    if let Some(hw) = high_water.sampling {
        let _ = write!(out, " sampling {hw} B");
    }
    if let Some(hw) = high_water.training {
        let _ = write!(out, ", training {hw} B");
    }
    let _ = writeln!(out);
    let overflow = [high_water.sampling, high_water.training]
        .into_iter()
        .flatten()
        .any(|hw| hw >= m.stack);
    match result {
        Err(e) => {
            let _ = writeln!(out, "error: {e}");
            exit(false)
        }
        Ok(()) if overflow => {
            let _ = writeln!(out, "error: the stack reached its last word");
            exit(false)
        }
        Ok(()) => exit(true),
    }
}

/// Prints the `sample:` header, runs `draw` (the [`SAMPLE_COUNT`] names from `checkpoint`, copied
/// into RAM or read in place as `how` says), then their cost, and keeps the stack's high-water.
fn sample_phase(
    out: &mut Console,
    meter: &mut SysTickMeter,
    high_water: &mut HighWater,
    checkpoint: &[u8],
    how: &str,
    draw: impl FnOnce(&mut Console, &mut SysTickMeter) -> Result<(), DemoError>,
) -> Result<(), RunError> {
    writeln!(
        out,
        "sample: {SAMPLE_COUNT} names, seed {SAMPLE_SEED}, checkpoint of {} bytes in flash{how}",
        checkpoint.len()
    )?;
    draw(out, meter)?;
    writeln!(
        out,
        "cost: sample {SAMPLE_COUNT} names {} ticks",
        meter.take()?
    )?;
    high_water.sampling = Some(stack_high_water());
    Ok(())
}

/// [`sample_phase`] with the names drawn from `checkpoint` read in place (4-byte aligned), its
/// parameters not copied into RAM.
fn sample_read_in_place<
    const V: usize,
    const T: usize,
    const E: usize,
    const TE: usize,
    const H: usize,
>(
    out: &mut Console,
    meter: &mut SysTickMeter,
    high_water: &mut HighWater,
    checkpoint: &[u8],
    scratch: &mut InferScratch<V, H>,
) -> Result<(), RunError> {
    let how = ", read in place";
    sample_phase(out, meter, high_water, checkpoint, how, |out, meter| {
        sample_in_place::<V, T, E, TE, H>(
            checkpoint,
            scratch,
            SAMPLE_COUNT,
            SAMPLE_SEED,
            meter,
            out,
        )
    })
}

/// Trains `state` from the notebook's init ([`train`]), on a freshly painted stack; prints the
/// cost.
fn train_from_init<
    const N: usize,
    const V: usize,
    const T: usize,
    const E: usize,
    const TE: usize,
    const H: usize,
>(
    out: &mut Console,
    meter: &mut SysTickMeter,
    high_water: &mut HighWater,
    state: &mut impl Trainer<N, V, T, E, TE, H>,
) -> Result<(), RunError> {
    repaint_stack();
    train(state, TRAIN_SEED, TRAIN_STEPS, LR, PRINT_EVERY, meter, out)?;
    writeln!(
        out,
        "cost: train {TRAIN_STEPS} steps {} ticks",
        meter.take()?
    )?;
    high_water.training = Some(stack_high_water());
    Ok(())
}

/// The M4F firmware: samples [`SAMPLE_COUNT`] names from `checkpoint` copied into
/// `state.params`, then trains `state` (the in-place step) from the notebook's init; prints the
/// cost of each phase and the memory report, and exits: code 0 on success, 1 on any error or a
/// full stack.
pub fn run<
    const N: usize,
    const V: usize,
    const T: usize,
    const E: usize,
    const TE: usize,
    const H: usize,
>(
    what: &str,
    ram: usize,
    checkpoint: &[u8],
    state: &mut InPlaceTrainState<f32, N, V, T, E, TE, H>,
    scratch: &mut SampleScratch<V, H>,
) -> ! {
    firmware(what, ram, |out, meter, high_water| {
        sample_phase(out, meter, high_water, checkpoint, "", |out, meter| {
            sample_checkpoint(
                checkpoint,
                &mut state.params,
                scratch,
                SAMPLE_COUNT,
                SAMPLE_SEED,
                meter,
                out,
            )
        })?;
        train_from_init(out, meter, high_water, state)
    })
}

/// The lean M4F firmware: samples [`SAMPLE_COUNT`] names from `checkpoint` read in place
/// (4-byte aligned), then trains `state` (the core's lean step, one hidden unit at a time) from
/// the notebook's init; reports and exits as [`run`] does.
pub fn run_lean<
    const N: usize,
    const V: usize,
    const T: usize,
    const E: usize,
    const TE: usize,
    const H: usize,
>(
    what: &str,
    ram: usize,
    checkpoint: &[u8],
    state: &mut LeanTrainState<f32, N, V, T, E, TE, H>,
    scratch: &mut InferScratch<V, H>,
) -> ! {
    firmware(what, ram, |out, meter, high_water| {
        sample_read_in_place::<V, T, E, TE, H>(out, meter, high_water, checkpoint, scratch)?;
        train_from_init(out, meter, high_water, state)
    })
}

/// The sampling-only firmware: [`SAMPLE_COUNT`] names from `checkpoint` (the model of the
/// compile-time dims, 4-byte aligned) read in place, without copying its parameters into RAM;
/// prints the cost and the memory report, and exits as [`run`] does.
pub fn run_in_place<
    const V: usize,
    const T: usize,
    const E: usize,
    const TE: usize,
    const H: usize,
>(
    what: &str,
    ram: usize,
    checkpoint: &[u8],
    scratch: &mut InferScratch<V, H>,
) -> ! {
    firmware(what, ram, |out, meter, high_water| {
        sample_read_in_place::<V, T, E, TE, H>(out, meter, high_water, checkpoint, scratch)
    })
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    let _ = writeln!(Console::new(), "panic: {info}");
    exit(false)
}

// SAFETY (of the `unsafe fn` cortex-m-rt requires for this handler): it only reads the frame
// the hardware stacked and exits.
#[exception]
unsafe fn HardFault(frame: &ExceptionFrame) -> ! {
    let _ = writeln!(
        Console::new(),
        "HardFault: pc {:#010x}, lr {:#010x}",
        frame.pc(),
        frame.lr()
    );
    exit(false)
}

// SAFETY (of the `unsafe fn` cortex-m-rt requires for this handler): it only prints and exits.
#[exception]
unsafe fn DefaultHandler(irqn: i16) {
    let _ = writeln!(Console::new(), "unexpected exception or interrupt {irqn}");
    exit(false)
}

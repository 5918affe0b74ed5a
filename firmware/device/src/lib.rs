//! The firmware's runtime around [`firmware_demo`]: output and exit codes through semihosting, a
//! HardFault handler and a panic handler that exit non-zero (without them a fault hangs QEMU),
//! and the memory report (.data, .bss, and the stack high-water of sampling and of training, from
//! the painted stack).
#![no_std]

use core::fmt::{self, Write};
use core::ptr::addr_of;

use cortex_m_rt::{exception, ExceptionFrame};
use cortex_m_semihosting::debug::{self, EXIT_FAILURE, EXIT_SUCCESS};
use cortex_m_semihosting::hio;
use makemore_core::train::InPlaceTrainState;

use firmware_demo::{
    sample_checkpoint, train, DemoError, NoMeter, SampleScratch, LR, PRINT_EVERY, SAMPLE_COUNT,
    SAMPLE_SEED, TRAIN_SEED, TRAIN_STEPS,
};

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

/// The whole firmware: samples [`SAMPLE_COUNT`] names from `checkpoint` into `state.params`,
/// then trains `state` from the notebook's init, prints the memory report and exits (code 0 on
/// success, 1 on any error or if the stack reached its last word).
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
    let mut out = Console::new();
    let mut high_water = [0usize; 2];
    let result = (|| -> Result<(), DemoError> {
        writeln!(
            out,
            "makemore firmware: {what}, RAM limited to {} KiB",
            ram / 1024
        )?;
        writeln!(
            out,
            "sample: {SAMPLE_COUNT} names, seed {SAMPLE_SEED}, checkpoint of {} bytes in flash",
            checkpoint.len()
        )?;
        sample_checkpoint(
            checkpoint,
            &mut state.params,
            scratch,
            SAMPLE_COUNT,
            SAMPLE_SEED,
            &mut NoMeter,
            &mut out,
        )?;
        high_water[0] = stack_high_water();
        repaint_stack();
        train(
            state,
            TRAIN_SEED,
            TRAIN_STEPS,
            LR,
            PRINT_EVERY,
            &mut NoMeter,
            &mut out,
        )?;
        high_water[1] = stack_high_water();
        Ok(())
    })();
    let m = MemoryLayout::read();
    let _ = writeln!(
        out,
        "memory: flash {} B; .data {} B, .bss {} B, stack {} B: RAM {} of {} B; stack high-water: sampling {} B, training {} B",
        m.flash,
        m.data,
        m.bss,
        m.stack,
        m.data + m.bss + m.stack,
        ram,
        high_water[0],
        high_water[1],
    );
    let overflow = high_water.iter().any(|&hw| hw >= m.stack);
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

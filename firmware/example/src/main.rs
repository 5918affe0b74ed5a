//! The smallest complete makemore firmware: samples 20 names from a `makemore train` checkpoint
//! embedded in flash, reading its parameters where they lie, and prints them over semihosting as
//! `makemore sample --checkpoint C --seed 2147483657 --count 20` does; exits with 0, or prints the
//! error and exits with 1. Any model size up to MAX_H hidden units and MAX_V tokens.
#![no_std]
#![no_main]

use cortex_m_rt::entry;
use cortex_m_semihosting::{debug, heprintln, hprint, hprintln};
use makemore_core::checkpoint::{self, MODEL_TENSOR_NAMES};
use makemore_core::infer::Inference;
use makemore_core::rng::{name_stream, uniform, SAMPLE_SEED};
use makemore_core::safetensors::{SafeTensors, SafetensorsError};
use makemore_core::{Error, ParamsRef};

/// The largest model it samples: the scratch takes 4 * (2 * MAX_H + MAX_V) bytes of RAM, 2 176 B.
const MAX_H: usize = 256;
const MAX_V: usize = 32;

/// The checkpoint, 8-byte aligned so that its f32 tensors can be read in place.
#[repr(C, align(8))]
struct Aligned<T: ?Sized>(T);
static CHECKPOINT: &Aligned<[u8]> = &Aligned(*include_bytes!(env!(
    "MAKEMORE_CHECKPOINT",
    "set MAKEMORE_CHECKPOINT to the absolute path of a checkpoint from `makemore train`"
)));

#[entry]
fn main() -> ! {
    // cortex-m-rt hands these to main as `&'static mut` (zeroed, in .bss)
    static mut BNVAR_INV: [f32; MAX_H] = [0.0; MAX_H];
    static mut H: [f32; MAX_H] = [0.0; MAX_H];
    static mut LOGITS: [f32; MAX_V] = [0.0; MAX_V];
    let status = sample(BNVAR_INV, H, LOGITS).map_err(|e| heprintln!("error: {}", e));
    exit(status) // Ok(()) or Err(())
}

/// Checks the checkpoint and prints its 20 names. The scratch of `Inference`, for any model up to
/// MAX_H and MAX_V: `inv` (bnvar's inverse square roots) and `h`, H floats each; `logits`, V.
fn sample(inv: &mut [f32], h: &mut [f32], logits: &mut [f32]) -> Result<(), SafetensorsError> {
    let st = SafeTensors::parse(&CHECKPOINT.0)?;
    let dims = checkpoint::read_dims(&st, None)?; // every tensor there, with its shape
    hprintln!("sample: 20 names, seed {}, {:?}", SAMPLE_SEED, dims);
    let (v, hidden) = (dims.vocab, dims.hidden);
    if hidden > MAX_H || v > MAX_V {
        return Err(Error::InvalidArgument("H or V larger than MAX_H or MAX_V: raise them").into());
    }
    // the checks checkpoint::load_model makes before it copies
    checkpoint::read_config(&st, dims)?;
    checkpoint::verify_checksum(&st)?;
    checkpoint::check_values(&st)?;
    let mut vocab = [0u8; 4 * MAX_V];
    let vocab = checkpoint::read_vocab(&st, dims, &mut vocab)?
        .ok_or(Error::InvalidArgument("the checkpoint has no vocabulary"))?;
    // each tensor's little-endian f32 bytes viewed where they lie, in flash
    let mut tensors = [&[][..]; 9];
    for (tensor, name) in tensors.iter_mut().zip(MODEL_TENSOR_NAMES) {
        let t = st
            .tensor(name)
            .ok_or(SafetensorsError::MissingTensor { name })?;
        *tensor = bytemuck::try_cast_slice(t.data())
            .map_err(|_| Error::InvalidArgument("a tensor is not 4-byte aligned"))?;
    }
    let [c, w1, b1, w2, b2, bngain, bnbias, bnmean, bnvar] = tensors;
    let params = ParamsRef::new(dims, [c, w1, b1, w2, b2, bngain, bnbias])?;
    let (inv, h, logits) = (&mut inv[..hidden], &mut h[..hidden], &mut logits[..v]);
    let mut inference = Inference::new(params, bnmean, bnvar, inv, h, logits)?;
    let mut name = [0u8; 256];
    for i in 0..20 {
        // name i of `makemore sample`: its own stream, temperature 1, no top-k, no prefix
        let mut rng = name_stream(SAMPLE_SEED, i);
        let len = inference.sample_name(&[], 1.0, 0, || uniform(&mut rng), &mut name)?;
        for &token in &name[..len] {
            hprint!("{}", vocab.chars().nth(token.into()).unwrap_or('?'));
        }
        hprintln!();
    }
    Ok(())
}

/// Ends the run: the debugger or QEMU exits with 0 for `Ok`, 1 for `Err`.
fn exit(status: debug::ExitStatus) -> ! {
    debug::exit(status);
    loop {
        cortex_m::asm::wfi(); // no semihosting host
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    heprintln!("panic: {}", info);
    exit(debug::EXIT_FAILURE)
}

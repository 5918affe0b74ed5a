//! The model's dimensions and parameters: the notebook's C, W1, b1, W2, b2, bngain, bnbias.
//!
//! Storage comes in two forms with one borrowed view over both:
//! - [`Params`]: fixed-size arrays sized by const generics (a `static` on firmware);
//! - any caller-owned slices (a `Vec` in the CLI), checked once by [`ParamsRef::new`] /
//!   [`ParamsMut::new`].
//!
//! The kernels take the views, so they run on any dimensions, and every length they index with is
//! proven by the view's constructor: no public function can index out of range.

use crate::error::Error;
use crate::float::Float;
use crate::rng::Rng;

/// The model's sizes. `vocab` V (27 for names.txt), `context` T (block_size, 3), `embedding` E,
/// `hidden` H. All at least 1, `vocab` at most 256 (tokens are `u8`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Dims {
    pub vocab: usize,
    pub context: usize,
    pub embedding: usize,
    pub hidden: usize,
}

impl Dims {
    /// The notebook's Exercise-1 model: V=27, T=3, E=10, H=64 (4137 parameters).
    pub const EXERCISE1: Dims = Dims {
        vocab: 27,
        context: 3,
        embedding: 10,
        hidden: 64,
    };
    /// The notebook's Exercise-4 model: V=27, T=3, E=10, H=200 (12297 parameters).
    pub const EXERCISE4: Dims = Dims {
        vocab: 27,
        context: 3,
        embedding: 10,
        hidden: 200,
    };

    /// Checks every size is in range and the parameter count fits in `usize`.
    pub const fn validate(&self) -> Result<Dims, Error> {
        if self.vocab < 1
            || self.vocab > 256
            || self.context < 1
            || self.embedding < 1
            || self.hidden < 1
        {
            return Err(Error::InvalidDims);
        }
        // Every length below (and a batch of up to 65536 rows of them) must fit in usize, also
        // on 32-bit targets.
        if self.context > 1 << 16 || self.embedding > 1 << 16 || self.hidden > 1 << 16 {
            return Err(Error::InvalidDims);
        }
        let te = self.context as u128 * self.embedding as u128;
        let params = self.vocab as u128 * self.embedding as u128
            + te * self.hidden as u128
            + self.hidden as u128 * (self.vocab as u128 + 3)
            + self.vocab as u128;
        if params > (usize::MAX >> 17) as u128 {
            return Err(Error::InvalidDims);
        }
        Ok(*self)
    }

    /// T*E: the width of embcat, the input of the first linear layer.
    pub const fn embcat(&self) -> usize {
        self.context * self.embedding
    }

    /// Lengths of C (V,E), W1 (T*E,H), b1 (H), W2 (H,V), b2 (V), bngain (H), bnbias (H), in that
    /// order (the order of [`ParamsRef::tensors`] and of the flat layout).
    pub const fn tensor_lens(&self) -> [usize; 7] {
        [
            self.vocab * self.embedding,
            self.embcat() * self.hidden,
            self.hidden,
            self.hidden * self.vocab,
            self.vocab,
            self.hidden,
            self.hidden,
        ]
    }

    /// Number of parameters: 4137 for Exercise 1, 12297 for Exercise 4.
    pub const fn num_params(&self) -> usize {
        let l = self.tensor_lens();
        l[0] + l[1] + l[2] + l[3] + l[4] + l[5] + l[6]
    }
}

/// The notebook's tensor names, in the order of [`Dims::tensor_lens`].
pub const PARAM_NAMES: [&str; 7] = ["C", "W1", "b1", "W2", "b2", "bngain", "bnbias"];

/// Borrowed parameters (or gradients: same shapes), lengths checked against `dims`.
/// Row-major: `C[v*E + e]`, `W1[i*H + j]`, `W2[j*V + v]`.
#[allow(non_snake_case)]
#[derive(Clone, Copy, Debug)]
pub struct ParamsRef<'a, F> {
    dims: Dims,
    pub(crate) C: &'a [F],
    pub(crate) W1: &'a [F],
    pub(crate) b1: &'a [F],
    pub(crate) W2: &'a [F],
    pub(crate) b2: &'a [F],
    pub(crate) bngain: &'a [F],
    pub(crate) bnbias: &'a [F],
}

/// Mutably borrowed parameters (or gradients), lengths checked against `dims`.
#[allow(non_snake_case)]
#[derive(Debug)]
pub struct ParamsMut<'a, F> {
    dims: Dims,
    pub(crate) C: &'a mut [F],
    pub(crate) W1: &'a mut [F],
    pub(crate) b1: &'a mut [F],
    pub(crate) W2: &'a mut [F],
    pub(crate) b2: &'a mut [F],
    pub(crate) bngain: &'a mut [F],
    pub(crate) bnbias: &'a mut [F],
}

fn check_lens(dims: &Dims, lens: [usize; 7]) -> Result<(), Error> {
    let want = dims.tensor_lens();
    let mut i = 0;
    while i < 7 {
        if lens[i] != want[i] {
            return Err(Error::LengthMismatch {
                what: PARAM_NAMES[i],
                expected: want[i],
                got: lens[i],
            });
        }
        i += 1;
    }
    Ok(())
}

impl<'a, F: Float> ParamsRef<'a, F> {
    /// Views seven slices in the order C, W1, b1, W2, b2, bngain, bnbias.
    pub fn new(dims: Dims, tensors: [&'a [F]; 7]) -> Result<Self, Error> {
        let dims = dims.validate()?;
        check_lens(&dims, tensors.map(|t| t.len()))?;
        let [C, W1, b1, W2, b2, bngain, bnbias] = tensors;
        Ok(ParamsRef {
            dims,
            C,
            W1,
            b1,
            W2,
            b2,
            bngain,
            bnbias,
        })
    }

    /// Views one flat buffer of `dims.num_params()` values laid out C, W1, b1, W2, b2, bngain, bnbias.
    pub fn from_flat(dims: Dims, flat: &'a [F]) -> Result<Self, Error> {
        let dims = dims.validate()?;
        if flat.len() != dims.num_params() {
            return Err(Error::LengthMismatch {
                what: "flat parameters",
                expected: dims.num_params(),
                got: flat.len(),
            });
        }
        let l = dims.tensor_lens();
        let (C, rest) = flat.split_at(l[0]);
        let (W1, rest) = rest.split_at(l[1]);
        let (b1, rest) = rest.split_at(l[2]);
        let (W2, rest) = rest.split_at(l[3]);
        let (b2, rest) = rest.split_at(l[4]);
        let (bngain, bnbias) = rest.split_at(l[5]);
        Self::new(dims, [C, W1, b1, W2, b2, bngain, bnbias])
    }

    pub fn dims(&self) -> Dims {
        self.dims
    }

    /// The seven tensors in the order of [`PARAM_NAMES`].
    pub fn tensors(&self) -> [&'a [F]; 7] {
        [
            self.C,
            self.W1,
            self.b1,
            self.W2,
            self.b2,
            self.bngain,
            self.bnbias,
        ]
    }
}

impl<'a, F: Float> ParamsMut<'a, F> {
    /// Views seven slices in the order C, W1, b1, W2, b2, bngain, bnbias.
    pub fn new(dims: Dims, tensors: [&'a mut [F]; 7]) -> Result<Self, Error> {
        let dims = dims.validate()?;
        check_lens(&dims, tensors.each_ref().map(|t| t.len()))?;
        let [C, W1, b1, W2, b2, bngain, bnbias] = tensors;
        Ok(ParamsMut {
            dims,
            C,
            W1,
            b1,
            W2,
            b2,
            bngain,
            bnbias,
        })
    }

    /// Views one flat buffer of `dims.num_params()` values laid out C, W1, b1, W2, b2, bngain, bnbias.
    pub fn from_flat(dims: Dims, flat: &'a mut [F]) -> Result<Self, Error> {
        let dims = dims.validate()?;
        if flat.len() != dims.num_params() {
            return Err(Error::LengthMismatch {
                what: "flat parameters",
                expected: dims.num_params(),
                got: flat.len(),
            });
        }
        let l = dims.tensor_lens();
        let (C, rest) = flat.split_at_mut(l[0]);
        let (W1, rest) = rest.split_at_mut(l[1]);
        let (b1, rest) = rest.split_at_mut(l[2]);
        let (W2, rest) = rest.split_at_mut(l[3]);
        let (b2, rest) = rest.split_at_mut(l[4]);
        let (bngain, bnbias) = rest.split_at_mut(l[5]);
        Self::new(dims, [C, W1, b1, W2, b2, bngain, bnbias])
    }

    pub fn dims(&self) -> Dims {
        self.dims
    }

    /// A shared view of the same tensors.
    pub fn as_ref(&self) -> ParamsRef<'_, F> {
        ParamsRef {
            dims: self.dims,
            C: self.C,
            W1: self.W1,
            b1: self.b1,
            W2: self.W2,
            b2: self.b2,
            bngain: self.bngain,
            bnbias: self.bnbias,
        }
    }

    /// A shorter-lived mutable view of the same tensors.
    pub fn reborrow(&mut self) -> ParamsMut<'_, F> {
        ParamsMut {
            dims: self.dims,
            C: self.C,
            W1: self.W1,
            b1: self.b1,
            W2: self.W2,
            b2: self.b2,
            bngain: self.bngain,
            bnbias: self.bnbias,
        }
    }

    /// The seven tensors in the order of [`PARAM_NAMES`]; their lengths cannot be changed through
    /// these borrows, so the view stays valid.
    pub fn tensors_mut(&mut self) -> [&mut [F]; 7] {
        [
            &mut *self.C,
            &mut *self.W1,
            &mut *self.b1,
            &mut *self.W2,
            &mut *self.b2,
            &mut *self.bngain,
            &mut *self.bnbias,
        ]
    }

    /// Sets every value to zero (the driver zeroes gradients once per step; backward adds).
    pub fn fill_zero(&mut self) {
        for t in self.tensors_mut() {
            t.fill(F::ZERO);
        }
    }

    /// The notebook's initialisation, drawing standard normals from `rng` in the notebook's order:
    /// C ~ N(0,1); W1 ~ N(0,1)*(5/3)/sqrt(T*E); b1, W2, b2 ~ N(0,1)*0.1;
    /// bngain ~ 1 + 0.1 N(0,1); bnbias ~ 0.1 N(0,1).
    pub fn init_notebook<R: Rng + ?Sized>(&mut self, rng: &mut R) {
        let fan_in = self.dims.embcat() as f64;
        let w1_scale = (5.0 / 3.0) / crate::math::sqrt_f64(fan_in);
        let scales = [
            (1.0, 0.0),
            (w1_scale, 0.0),
            (0.1, 0.0),
            (0.1, 0.0),
            (0.1, 0.0),
            (0.1, 1.0),
            (0.1, 0.0),
        ];
        for (t, (scale, shift)) in self.tensors_mut().into_iter().zip(scales) {
            for x in t.iter_mut() {
                *x = F::from_f64(crate::rng::standard_normal(rng) * scale + shift);
            }
        }
    }
}

/// Parameters in fixed-size arrays: `V` vocab, `T` context, `E` embedding, `TE` = T*E (stable Rust
/// cannot compute it; checked at compile time), `H` hidden. Zeroed by [`Params::ZERO`] so it can be
/// a `static`.
#[allow(non_snake_case)]
#[derive(Clone, Debug)]
pub struct Params<
    F,
    const V: usize,
    const T: usize,
    const E: usize,
    const TE: usize,
    const H: usize,
> {
    /// (V, E)
    pub C: [[F; E]; V],
    /// (T*E, H)
    pub W1: [[F; H]; TE],
    /// (H)
    pub b1: [F; H],
    /// (H, V)
    pub W2: [[F; V]; H],
    /// (V)
    pub b2: [F; V],
    /// (H); the notebook's (1, H)
    pub bngain: [F; H],
    /// (H); the notebook's (1, H)
    pub bnbias: [F; H],
}

impl<F: Float, const V: usize, const T: usize, const E: usize, const TE: usize, const H: usize>
    Params<F, V, T, E, TE, H>
{
    const CHECK: () = {
        assert!(TE == T * E, "TE must equal T * E");
        assert!(V >= 1 && V <= 256 && T >= 1 && E >= 1 && H >= 1);
    };

    /// All parameters zero (initialise with [`ParamsMut::init_notebook`] through [`Params::view_mut`]).
    pub const ZERO: Self = {
        #[allow(clippy::let_unit_value)]
        let _ = Self::CHECK;
        Params {
            C: [[F::ZERO; E]; V],
            W1: [[F::ZERO; H]; TE],
            b1: [F::ZERO; H],
            W2: [[F::ZERO; V]; H],
            b2: [F::ZERO; V],
            bngain: [F::ZERO; H],
            bnbias: [F::ZERO; H],
        }
    };

    pub const DIMS: Dims = Dims {
        vocab: V,
        context: T,
        embedding: E,
        hidden: H,
    };

    /// A checked view; infallible because the const checks above hold.
    pub fn view(&self) -> ParamsRef<'_, F> {
        #[allow(clippy::let_unit_value)]
        let _ = Self::CHECK;
        ParamsRef {
            dims: Self::DIMS,
            C: self.C.as_flattened(),
            W1: self.W1.as_flattened(),
            b1: &self.b1,
            W2: self.W2.as_flattened(),
            b2: &self.b2,
            bngain: &self.bngain,
            bnbias: &self.bnbias,
        }
    }

    /// A checked mutable view; infallible because the const checks above hold.
    pub fn view_mut(&mut self) -> ParamsMut<'_, F> {
        #[allow(clippy::let_unit_value)]
        let _ = Self::CHECK;
        ParamsMut {
            dims: Self::DIMS,
            C: self.C.as_flattened_mut(),
            W1: self.W1.as_flattened_mut(),
            b1: &mut self.b1,
            W2: self.W2.as_flattened_mut(),
            b2: &mut self.b2,
            bngain: &mut self.bngain,
            bnbias: &mut self.bnbias,
        }
    }
}

//! `makemore`: the notebook "makemore part 4: becoming a backprop ninja" end to end on names.txt:
//! train (Exercise 4), calibrate batchnorm, evaluate, sample, and check gradients.

/// `println!` for the whole binary (this macro shadows std's in every module declared below):
/// once stdout is a closed pipe (`makemore eval | head -1`), further output is dropped instead
/// of panicking as std's `println!` does, so every command ends quietly and normally (training
/// still writes its checkpoint); any other write error (a full disk) makes the command end with
/// an error and a non-zero exit. See [`print_line`].
macro_rules! println {
    () => {
        $crate::print_line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::print_line(format_args!($($arg)*))
    };
}

mod evaluate;
mod gradcheck;
mod plot;
mod sample;
mod stats;
mod train;

// The modules that read untrusted bytes live in the library (fuzzed there).
use cli::{batch, checkpoint, data, dataset, eval, isa, parallel};

use std::fmt;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use clap::{Args, Parser, Subcommand, ValueEnum};
use isa::IsaChoice;
use makemore_core::rng::{Generator, SAMPLE_SEED, TRAIN_SEED};

/// `--rng`: the generator of the initialisation, the minibatches and the sampled names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RngChoice {
    /// The project's PCG streams: batch s and name i each from their own stream, so any thread
    /// count and a resume draw the same numbers.
    Pcg,
    /// PyTorch's CPU generator (mt19937) as x86 wheels run it, replaying the notebook's cells:
    /// torch.Generator().manual_seed(seed), the init tensors, then one randint batch per step;
    /// names by torch.multinomial.
    Torch,
    /// As torch, with the randn kernel of ARM and generic builds (other bits than x86's).
    TorchGeneric,
}

impl From<RngChoice> for Generator {
    fn from(c: RngChoice) -> Generator {
        match c {
            RngChoice::Pcg => Generator::Pcg,
            RngChoice::Torch => Generator::Torch,
            RngChoice::TorchGeneric => Generator::TorchGeneric,
        }
    }
}

/// Train, evaluate and sample the MLP of makemore part 4 (backprop ninja).
///
/// With no command, trains the notebook's Exercise 4 model on data/names.txt.
#[derive(Parser, Debug)]
#[command(name = "makemore", version, about, long_about = None, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    train: TrainArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Train a model (the default command).
    Train(TrainArgs),
    /// Sample names from a checkpoint.
    Sample(SampleArgs),
    /// Loss of a checkpoint on the train/val/test splits.
    Eval(EvalArgs),
    /// The notebook's gradient check: hand-written gradients against f64 and finite differences.
    Gradcheck(GradcheckArgs),
}

/// `train`'s flags. Those that define the run are `Option`s: unset, a new run takes the default
/// and `--resume` the checkpoint's value; set, `--resume` refuses a value that contradicts the
/// checkpoint (except `--steps` and `--lr`, which change the run; see `train`).
#[derive(Args, Debug, Clone)]
pub struct TrainArgs {
    /// Word list, one word per line ('-': standard input); at most 64 MiB. With --resume it
    /// must hold the same words as the run's.
    #[arg(long, default_value = "data/names.txt")]
    pub input: PathBuf,
    /// Directory for the checkpoint, metrics and loss curve (locked while a run trains there).
    #[arg(long, default_value = "out")]
    pub out: PathBuf,
    /// Steps of the whole run [default: 200000; with --resume the checkpoint's; a larger value
    /// extends the run].
    #[arg(long)]
    pub steps: Option<u64>,
    /// Examples per minibatch (2..=65536) [default: 32; with --resume the checkpoint's].
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Embedding size per character, n_embd (1..=256) [default: 10; with --resume the
    /// checkpoint's].
    #[arg(long)]
    pub embedding: Option<usize>,
    /// Hidden units, n_hidden (1..=4096) [default: 200; with --resume the checkpoint's].
    #[arg(long)]
    pub hidden: Option<usize>,
    /// Context length in characters, block_size (1..=16) [default: 3; with --resume the
    /// checkpoint's].
    #[arg(long)]
    pub context: Option<usize>,
    /// Peak learning rate [default: 0.1; with --resume the checkpoint's; a new value applies
    /// from the resumed step on and is recorded in the metadata's lr_changes].
    #[arg(long)]
    pub lr: Option<f32>,
    /// Learning-rate schedule: step (the notebook's: lr, then lr / 10 from --lr-decay-step on)
    /// or cosine (linear warm-up over --warmup steps, then cosine down to --min-lr at --steps)
    /// [default: step; with --resume the checkpoint's].
    #[arg(long, value_enum)]
    pub lr_schedule: Option<train::ScheduleChoice>,
    /// Step schedule: from this step on the learning rate is lr / 10 [default: 100000; with
    /// --resume the checkpoint's].
    #[arg(long)]
    pub lr_decay_step: Option<u64>,
    /// Cosine schedule: warm-up steps [default: 0; with --resume the checkpoint's].
    #[arg(long)]
    pub warmup: Option<u64>,
    /// Cosine schedule: the final learning rate [default: lr / 10; with --resume the
    /// checkpoint's].
    #[arg(long)]
    pub min_lr: Option<f32>,
    /// Optimiser: sgd (the notebook's) or adamw (PyTorch's AdamW with makemore.py's betas
    /// (0.9, 0.99) and eps 1e-8; its m and v are saved in the checkpoint) [default: sgd; with
    /// --resume the checkpoint's].
    #[arg(long, value_enum)]
    pub optimizer: Option<train::OptimizerChoice>,
    /// AdamW: decoupled weight decay [default: 0.01, makemore.py's; with --resume the
    /// checkpoint's].
    #[arg(long)]
    pub weight_decay: Option<f32>,
    /// Clip the gradient's global L2 norm to this value before each update (PyTorch's
    /// clip_grad_norm_) [default: no clipping; with --resume the checkpoint's].
    #[arg(long)]
    pub grad_clip: Option<f32>,
    /// Seed of the initialisation and the minibatch stream (the data split is always Python's
    /// random.seed(42) shuffle) [default: 2147483647; with --resume the checkpoint's].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Random generator: pcg (the project's streams), torch (PyTorch's, replaying the
    /// notebook's init and batches bit for bit as x86 wheels draw them) or torch-generic (as
    /// ARM and generic builds draw them) [default: pcg; with --resume the checkpoint's].
    #[arg(long, value_enum)]
    pub rng: Option<RngChoice>,
    /// Continue the run in OUT/model.safetensors: each of --steps to --seed above not given
    /// takes the checkpoint's value; one given that contradicts it is refused, except --steps
    /// and --lr, which change the run.
    #[arg(long)]
    pub resume: bool,
    /// Save OUT/model.safetensors every N steps (0: only at the end, or when interrupted).
    #[arg(long, default_value_t = 0)]
    pub checkpoint_every: u64,
    /// Every N steps, calibrate batchnorm on the train split, print the val loss, record it in
    /// loss.csv and loss.svg, and keep the best as OUT/best.safetensors (0: never).
    #[arg(long, default_value_t = 0)]
    pub eval_every: u64,
    /// Every N steps, measure makemore part 3's statistics on the step (activations, gradients,
    /// grad:data and update:data ratios), print a health line and any warning, and keep them in
    /// OUT/stats.json (0: never).
    #[arg(long, default_value_t = 0)]
    pub stats_every: u64,
    /// Print the training loss every N steps (0: never).
    #[arg(long, default_value_t = 10_000)]
    pub log_every: u64,
    /// Print a few sampled names every N steps (0: never).
    #[arg(long, default_value_t = 0)]
    pub sample_every: u64,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Instruction set (default: $MAKEMORE_ISA, else auto, the fastest this CPU runs).
    #[arg(long, value_enum)]
    pub isa: Option<IsaChoice>,
    /// Names to sample at the end.
    #[arg(long, default_value_t = 20)]
    pub samples: usize,
}

#[derive(Args, Debug)]
pub struct SampleArgs {
    /// Checkpoint to sample from (at most 256 MiB).
    #[arg(long, default_value = "out/model.safetensors")]
    pub checkpoint: PathBuf,
    /// Word list ('-': standard input); gives the vocabulary when the checkpoint has none and
    /// the provenance of names (in train, in val/test, new).
    #[arg(long, default_value = "data/names.txt")]
    pub input: PathBuf,
    /// Names to draw; each is printed as soon as it is drawn.
    #[arg(long, default_value_t = 20)]
    pub count: usize,
    /// Seed: with pcg, name i is drawn from the random stream (seed, i); with torch, the
    /// notebook's sampling generator is seeded with it (its default, 2147483647 + 10, is the
    /// notebook's).
    #[arg(long, default_value_t = SAMPLE_SEED)]
    pub seed: u64,
    /// Random generator: pcg, or torch / torch-generic (the notebook's sampling cell: one
    /// generator, one torch.multinomial draw per character, names in order).
    #[arg(long, value_enum, default_value_t = RngChoice::Pcg)]
    pub rng: RngChoice,
    /// Softmax temperature (> 0).
    #[arg(long, default_value_t = 1.0)]
    pub temperature: f32,
    /// Sample only among the k most likely characters (0: all).
    #[arg(long, default_value_t = 0)]
    pub top_k: usize,
    /// Start every name with these characters (from the vocabulary, not '.', at most 255).
    #[arg(long, default_value = "")]
    pub prefix: String,
    /// Worker threads (default: all cores); the names do not depend on it.
    #[arg(long)]
    pub threads: Option<usize>,
}

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// Checkpoint to evaluate (at most 256 MiB).
    #[arg(long, default_value = "out/model.safetensors")]
    pub checkpoint: PathBuf,
    /// Word list the checkpoint was trained on ('-': standard input); at most 64 MiB.
    #[arg(long, default_value = "data/names.txt")]
    pub input: PathBuf,
    /// The split to evaluate, or all three.
    #[arg(long, value_enum, default_value_t = SplitChoice::All)]
    pub split: SplitChoice,
    /// Worker threads (default: all cores); the losses do not depend on it.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Instruction set (default: $MAKEMORE_ISA, else auto, the fastest this CPU runs).
    #[arg(long, value_enum)]
    pub isa: Option<IsaChoice>,
    /// Print {"train": .., "val": .., "test": ..} only.
    #[arg(long)]
    pub json: bool,
}

/// `eval --split`: one split of the data set, or all three.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SplitChoice {
    Train,
    Val,
    Test,
    All,
}

impl SplitChoice {
    /// The names of the splits evaluated ([`dataset::Dataset::examples`]), in output order.
    pub fn names(self) -> &'static [&'static str] {
        match self {
            SplitChoice::Train => &["train"],
            SplitChoice::Val => &["val"],
            SplitChoice::Test => &["test"],
            SplitChoice::All => &["train", "val", "test"],
        }
    }
}

#[derive(Args, Debug)]
pub struct GradcheckArgs {
    /// Word list ('-': standard input); its vocabulary must have 27 symbols, as names.txt's.
    #[arg(long, default_value = "data/names.txt")]
    pub input: PathBuf,
    /// Seed of the initialisation and the batch.
    #[arg(long, default_value_t = TRAIN_SEED)]
    pub seed: u64,
    /// Random generator of the initialisation and the batch: pcg, or torch / torch-generic (the
    /// notebook's: its 4137 parameters, its first batch, its loss 3.5571 and its table format).
    #[arg(long, value_enum, default_value_t = RngChoice::Pcg)]
    pub rng: RngChoice,
    /// Coordinates per tensor checked by finite differences.
    #[arg(long, default_value_t = 32)]
    pub fd_samples: usize,
    /// Print each row with the notebook's forward line and its lines for the gradient, so the
    /// table reads like the lecture.
    #[arg(long)]
    pub explain: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        None => train::train(&cli.train),
        Some(Command::Train(a)) => train::train(&a),
        Some(Command::Sample(a)) => sample::sample(&a),
        Some(Command::Eval(a)) => evaluate::eval(&a),
        Some(Command::Gradcheck(a)) => gradcheck::gradcheck(&a),
    };
    let stdout_error = finish_stdout();
    let code = match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    };
    match stdout_error {
        Some(e) => {
            eprintln!(
                "error: cannot write to standard output: {e}; the output is incomplete \
                 (check where stdout goes: a full disk, a device that refuses writes)"
            );
            ExitCode::FAILURE
        }
        None => code,
    }
}

/// Set once writing to stdout failed: the rest of the output is dropped.
static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// The first write error on stdout other than a closed pipe; `main` reports it and exits 1.
static STDOUT_ERROR: Mutex<Option<std::io::Error>> = Mutex::new(None);

/// Runs `write` on the locked stdout unless an earlier write failed. A closed pipe ends the
/// output quietly; any other error is recorded for `main`. Returns whether stdout still takes
/// output.
fn write_stdout(write: impl FnOnce(&mut std::io::StdoutLock<'_>) -> std::io::Result<()>) -> bool {
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        return false;
    }
    let mut out = std::io::stdout().lock();
    match write(&mut out) {
        Ok(()) => true,
        Err(e) => {
            STDOUT_CLOSED.store(true, Ordering::Relaxed);
            if e.kind() != std::io::ErrorKind::BrokenPipe {
                let mut first = STDOUT_ERROR.lock().unwrap_or_else(|p| p.into_inner());
                first.get_or_insert(e);
            }
            false
        }
    }
}

/// Writes one line to stdout (see [`write_stdout`]); neither a closed pipe nor an error stops
/// the command.
pub fn print_line(args: fmt::Arguments<'_>) {
    write_stdout(|out| out.write_fmt(args).and_then(|()| out.write_all(b"\n")));
}

/// Writes `text` (whole lines) to stdout in one call (see [`write_stdout`]). Returns false once
/// stdout takes no more output, so a producer can stop.
pub fn print_str(text: &str) -> bool {
    write_stdout(|out| out.write_all(text.as_bytes()))
}

/// False once stdout takes no more output (a closed pipe or a write error).
pub fn stdout_open() -> bool {
    !STDOUT_CLOSED.load(Ordering::Relaxed)
}

/// Flushes stdout; returns the first write error other than a closed pipe, if any.
fn finish_stdout() -> Option<std::io::Error> {
    write_stdout(|out| out.flush());
    STDOUT_ERROR
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()
}

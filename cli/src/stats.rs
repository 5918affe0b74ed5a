//! `makemore train --stats-every N`: makemore part 3's statistics of every Nth step
//! ([`makemore_core::stats`], measured on the step's own buffers before its update), kept in
//! `<out>/stats.json` with each checkpoint and drawn as `stats.svg` and `stats.png` at the end
//! (or when stopped), a health line per record on the console, and a warning when a known
//! failure shows. The run's last record also keeps the histograms of `h` and of each judged
//! weight's gradient.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{bail, Context, Result};
use makemore_core::stats::{Moments, StepStats, SATURATED};
use makemore_core::PARAM_NAMES;
use serde_json::{json, Value};

use crate::plot::{Histogram, Series, StatsPicture, STATS_PNG, STATS_SVG};

/// Bins of the end's histograms.
pub const BINS: usize = 50;

/// The file in `--out`.
pub const STATS_FILE: &str = "stats.json";
/// More of `h` saturated than this is a warning (the lecture's picture of a bad init).
pub const MAX_SATURATED: f64 = 0.30;
/// An update:data ratio (log10) outside this range is a warning: the lecture puts a healthy
/// one near -3.
pub const UPDATE_RANGE: (f64, f64) = (-5.0, -1.0);
/// The tensors whose update:data ratio is judged: the weight matrices, as the lecture plots
/// them. A bias's data can be all zeros (ratio infinite), and b1's gradient is rounding noise
/// (batchnorm removes b1), so theirs say nothing.
pub const JUDGED: [&str; 3] = ["C", "W1", "W2"];

/// One record: the step it was measured on (before that step's update) and its learning rate.
#[derive(Clone, Debug)]
pub struct Record {
    pub step: u64,
    pub lr: f32,
    pub stats: StepStats,
}

/// A finite number as its shortest round-trip text, else null (JSON has no infinities).
fn num_json(s: &mut String, x: f64) {
    if x.is_finite() {
        let _ = write!(s, "{x:?}");
    } else {
        s.push_str("null");
    }
}

fn moments_json(s: &mut String, m: Moments) {
    s.push_str("{\"mean\":");
    num_json(s, m.mean);
    s.push_str(",\"std\":");
    num_json(s, m.std);
    s.push('}');
}

impl Record {
    /// The record as JSON text (written directly: a long run writes thousands of records):
    /// `{"step", "lr", "hprebn", "hpreact", "h": {"mean", "std"}, "saturated", "dead_units",
    /// "tensors": {name: {"grad", "data": {"mean", "std"}, "grad_to_data", "update_to_data"}}}`,
    /// each number its shortest round-trip text, a non-finite one null.
    pub fn write_json(&self, s: &mut String) {
        let a = &self.stats.activations;
        let _ = write!(s, "{{\"step\":{},\"lr\":", self.step);
        if self.lr.is_finite() {
            let _ = write!(s, "{:?}", self.lr);
        } else {
            s.push_str("null");
        }
        for (name, m) in [("hprebn", a.hprebn), ("hpreact", a.hpreact), ("h", a.h)] {
            let _ = write!(s, ",\"{name}\":");
            moments_json(s, m);
        }
        s.push_str(",\"saturated\":");
        num_json(s, a.saturated);
        let _ = write!(s, ",\"dead_units\":{},\"tensors\":{{", a.dead_units);
        for (i, (name, t)) in PARAM_NAMES.iter().zip(&self.stats.tensors).enumerate() {
            let sep = if i == 0 { "" } else { "," };
            let _ = write!(s, "{sep}\"{name}\":{{\"grad\":");
            moments_json(s, t.grad);
            s.push_str(",\"data\":");
            moments_json(s, t.data);
            s.push_str(",\"grad_to_data\":");
            num_json(s, t.grad_to_data);
            s.push_str(",\"update_to_data\":");
            num_json(s, t.update_to_data);
            s.push('}');
        }
        s.push_str("}}");
    }

    /// The judged tensors' update:data ratios, in [`JUDGED`]'s order (the parameters').
    fn judged(&self) -> impl Iterator<Item = (&'static str, f64)> + '_ {
        PARAM_NAMES
            .iter()
            .zip(&self.stats.tensors)
            .filter(|(name, _)| JUDGED.contains(name))
            .map(|(name, t)| (*name, t.update_to_data))
    }

    /// The judged tensor whose update:data ratio is farthest from -3, and the ratio.
    fn worst_update(&self) -> Option<(&'static str, f64)> {
        self.judged()
            .filter(|(_, u)| u.is_finite())
            .max_by(|a, b| (a.1 + 3.0).abs().total_cmp(&(b.1 + 3.0).abs()))
    }

    /// `stats   1000: h saturated 3.1%, 0 dead units; update:data farthest from -3: W1 -2.41`
    pub fn health_line(&self) -> String {
        let a = &self.stats.activations;
        let worst = match self.worst_update() {
            Some((name, u)) => format!("{name} {u:.2}"),
            None => "-".into(),
        };
        format!(
            "stats {:7}: h saturated {:.1}%, {} dead units; update:data (log10) farthest from -3: {worst}",
            self.step,
            100.0 * a.saturated,
            a.dead_units
        )
    }

    /// A line per known failure the record shows.
    pub fn warnings(&self) -> Vec<String> {
        let (a, s) = (&self.stats.activations, self.step);
        let mut w = Vec::new();
        if a.saturated > MAX_SATURATED {
            w.push(format!(
                "warning: step {s}: {:.1}% of h is saturated (|h| > {SATURATED}; over {:.0}%): those units pass almost no gradient; a smaller --lr (or a smaller init) helps",
                100.0 * a.saturated,
                100.0 * MAX_SATURATED
            ));
        }
        if a.dead_units > 0 {
            w.push(format!(
                "warning: step {s}: {} hidden units are saturated on every row of the batch (dead: no gradient passes them)",
                a.dead_units
            ));
        }
        for (name, u) in self.judged().filter(|(_, u)| u.is_finite()) {
            if u > UPDATE_RANGE.1 {
                w.push(format!(
                    "warning: step {s}: {name}'s update:data ratio is 10^{u:.2}, over 10^{}: each step changes it by a large part of itself; a smaller --lr helps",
                    UPDATE_RANGE.1
                ));
            } else if u < UPDATE_RANGE.0 {
                w.push(format!(
                    "warning: step {s}: {name}'s update:data ratio is 10^{u:.2}, under 10^{}: it barely learns; a larger --lr helps",
                    UPDATE_RANGE.0
                ));
            }
        }
        w
    }
}

/// The histograms of the run's last record (step `step`): `h` over [-1, 1], and each judged
/// weight's gradient over +-its largest magnitude.
pub fn end_json(step: u64, h: &[f32], grads: [&[f32]; 7]) -> Value {
    let hist = |x: Histogram| json!({"lo": x.lo, "hi": x.hi, "counts": x.counts});
    let mut g = serde_json::Map::new();
    for (name, grad) in PARAM_NAMES.iter().zip(grads) {
        if JUDGED.contains(name) {
            let m = grad
                .iter()
                .fold(0f32, |m, v| m.max(v.abs()))
                .max(f32::MIN_POSITIVE);
            let m = f64::from(m);
            g.insert(name.to_string(), hist(Histogram::of(grad, -m, m, BINS)));
        }
    }
    json!({"step": step, "h": hist(Histogram::of(h, -1.0, 1.0, BINS)), "grads": g})
}

/// What `stats.json` holds: the records and the last record's histograms.
#[derive(Default)]
pub struct Kept {
    /// The records read back from an earlier session's `stats.json`.
    pub earlier: Vec<Value>,
    /// This session's, kept as measured and made JSON only when written (a record is then a
    /// copy, not dozens of allocations, which keeps `--stats-every`'s cost down).
    pub records: Vec<Record>,
    pub end: Option<Value>,
}

impl Kept {
    pub fn is_empty(&self) -> bool {
        self.earlier.is_empty() && self.records.is_empty()
    }

    /// Per record in step order: its step, saturated share, dead units and the judged
    /// tensors' update:data ratios.
    fn series(&self) -> Vec<(f64, f64, f64, [f64; 3])> {
        let f = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
        let earlier = self.earlier.iter().map(|r| {
            let u = JUDGED.map(|name| f(&r["tensors"][name]["update_to_data"]));
            (f(&r["step"]), f(&r["saturated"]), f(&r["dead_units"]), u)
        });
        let fresh = self.records.iter().map(|r| {
            let a = &r.stats.activations;
            let mut u = [f64::NAN; 3];
            for (slot, (_, v)) in u.iter_mut().zip(r.judged()) {
                *slot = v;
            }
            (r.step as f64, a.saturated, a.dead_units as f64, u)
        });
        earlier.chain(fresh).collect()
    }
}

/// Removes an earlier run's `stats.json` and pictures from `out` (a new run's are its own).
pub fn remove_earlier(out: &Path) -> Result<()> {
    for file in [STATS_FILE, STATS_SVG, STATS_PNG] {
        let old = out.join(file);
        match std::fs::remove_file(&old) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e)
                    .with_context(|| format!("removing the earlier run's {}", old.display()));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Reads the records of `<out>/stats.json` measured before step `before` (a resumed run
/// continues them), and its histograms if they are from before it; none if there is no file.
/// Errors: a file that is not this program's.
pub fn read_before(out: &Path, before: u64) -> Result<Kept> {
    let path = out.join(STATS_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Kept::default()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let bad = || {
        format!(
            "{} is not a stats file of makemore train; move it away to resume with --stats-every",
            path.display()
        )
    };
    let v: Value = serde_json::from_str(&text).with_context(bad)?;
    let Some(records) = v.get("records").and_then(Value::as_array) else {
        bail!("{}", bad());
    };
    let mut kept = Vec::new();
    for r in records {
        let Some(step) = r.get("step").and_then(Value::as_u64) else {
            bail!("{}", bad());
        };
        if step < before {
            kept.push(r.clone());
        }
    }
    let end = v
        .get("end")
        .filter(|e| {
            e.get("step")
                .and_then(Value::as_u64)
                .is_some_and(|s| s < before)
        })
        .cloned();
    Ok(Kept {
        earlier: kept,
        records: Vec::new(),
        end,
    })
}

/// Writes `<out>/stats.json` atomically: the thresholds, every record in step order and the
/// last record's histograms (one line: a long run has thousands of records).
pub fn write(out: &Path, every: u64, kept: &Kept) -> Result<()> {
    let head = json!({
        "every": every,
        "saturated_above": SATURATED,
        "tensors": PARAM_NAMES,
        "update_to_data_judged": JUDGED,
    })
    .to_string();
    // the head's fields, then the records and the histograms
    let mut s = String::from(head.strip_suffix('}').unwrap_or(&head));
    s.push_str(",\"records\":[");
    for (i, r) in kept.earlier.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&r.to_string());
    }
    for (i, r) in kept.records.iter().enumerate() {
        if i > 0 || !kept.earlier.is_empty() {
            s.push(',');
        }
        r.write_json(&mut s);
    }
    s.push_str("],\"end\":");
    match &kept.end {
        Some(e) => s.push_str(&e.to_string()),
        None => s.push_str("null"),
    }
    s.push('}');
    crate::checkpoint::write_atomic(&out.join(STATS_FILE), s.as_bytes())
}

/// Draws `<out>/stats.svg` and `stats.png` from what `stats.json` holds.
pub fn draw(out: &Path, kept: &Kept) -> Result<()> {
    picture(kept).write(out)
}

/// The four panels of `stats.svg` from what `stats.json` holds.
fn picture(kept: &Kept) -> StatsPicture<'static> {
    let series = kept.series();
    let f = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
    let saturation = series.iter().map(|&(s, p, d, _)| (s, p, d)).collect();
    let update_to_data = (JUDGED.iter().enumerate())
        .map(|(i, name)| Series {
            name,
            points: series.iter().map(|&(s, _, _, u)| (s, u[i])).collect(),
        })
        .collect();
    let hist = |v: &Value| Histogram {
        lo: f(&v["lo"]),
        hi: f(&v["hi"]),
        counts: (v["counts"].as_array().into_iter().flatten())
            .map(|c| c.as_u64().unwrap_or(0))
            .collect(),
    };
    let end = kept.end.as_ref().map(|e| {
        let grads = JUDGED
            .iter()
            .filter(|name| e["grads"].get(**name).is_some())
            .map(|name| (*name, hist(&e["grads"][name])))
            .collect();
        (e["step"].as_u64().unwrap_or(0), hist(&e["h"]), grads)
    });
    StatsPicture {
        saturation,
        update_to_data,
        end,
    }
}

//! The training loss curve as data and as a picture: a `step,log10_loss` CSV and a
//! standalone SVG line plot.
//!
//! The SVG is written by hand (no plotting dependency): plain SVG 1.1, 800×450, white
//! background, sans-serif text, no scripts and no external resources, so any browser (or
//! `rsvg-convert`) opens it as is.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

/// One point of the loss curve: the step at the end of a window and log10 of the mean
/// training loss over that window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CurvePoint {
    pub step: u64,
    pub log10_loss: f64,
}

/// Writes `step,log10_loss` CSV: a header line, then one row per point.
///
/// Losses use `{}` formatting of `f64`, which is the shortest text that parses back to the
/// same value (`NaN` and `inf` included).
///
/// With `val` points (the validation loss), a third column `log10_val_loss`: one row per step
/// of either series (both sorted by step), an empty cell where a series has no point.
pub fn write_csv(path: &Path, points: &[CurvePoint], val: &[CurvePoint]) -> io::Result<()> {
    let mut out = BufWriter::new(File::create(path)?);
    if val.is_empty() {
        writeln!(out, "step,log10_loss")?;
        for point in points {
            writeln!(out, "{},{}", point.step, point.log10_loss)?;
        }
        return out.flush();
    }
    writeln!(out, "step,log10_loss,log10_val_loss")?;
    let (mut i, mut j) = (0, 0);
    while i < points.len() || j < val.len() {
        let step = match (points.get(i), val.get(j)) {
            (Some(p), Some(v)) => p.step.min(v.step),
            (Some(p), None) => p.step,
            (None, Some(v)) => v.step,
            (None, None) => break,
        };
        let cell = |series: &[CurvePoint], k: &mut usize| match series.get(*k) {
            Some(p) if p.step == step => {
                *k += 1;
                p.log10_loss.to_string()
            }
            _ => String::new(),
        };
        let (a, b) = (cell(points, &mut i), cell(val, &mut j));
        writeln!(out, "{step},{a},{b}")?;
    }
    out.flush()
}

/// [`render_svg`] written to `path`.
pub fn write_svg(
    path: &Path,
    title: &str,
    points: &[CurvePoint],
    val: &[CurvePoint],
    marker: Option<(u64, &str)>,
) -> io::Result<()> {
    std::fs::write(path, render_svg(title, points, val, marker))
}

const WIDTH: f64 = 800.0;
const HEIGHT: f64 = 450.0;
/// Room left of the plot area for the y tick labels and the y axis label.
const LEFT: f64 = 72.0;
const RIGHT: f64 = 28.0;
/// Room above the plot area for the title.
const TOP: f64 = 48.0;
/// Room below the plot area for the x tick labels and the x axis label.
const BOTTOM: f64 = 58.0;
const PLOT_W: f64 = WIDTH - LEFT - RIGHT;
const PLOT_H: f64 = HEIGHT - TOP - BOTTOM;
/// Upper bound on the number of ticks per axis.
const MAX_TICKS: usize = 8;

const TEXT_COLOR: &str = "#333333";
const GRID_COLOR: &str = "#e3e3e3";
const LINE_COLOR: &str = "#1f77b4";
const MARKER_COLOR: &str = "#d62728";
const VAL_COLOR: &str = "#ff7f0e";

/// The legend of a plot with a validation series: two coloured lines and their names.
fn push_legend(svg: &mut String) {
    let x = LEFT + PLOT_W - 150.0;
    for (i, (color, name)) in [(LINE_COLOR, "train (window mean)"), (VAL_COLOR, "val")]
        .into_iter()
        .enumerate()
    {
        let y = TOP + 16.0 + 18.0 * i as f64;
        svg.push_str(&format!(
            "<line x1=\"{x:.1}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"{color}\" \
             stroke-width=\"2\"/>\n<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\" \
             fill=\"{TEXT_COLOR}\">{name}</text>\n",
            x + 20.0,
            x + 26.0,
            y + 4.0
        ));
    }
}

/// Renders the loss curve as a standalone SVG document.
///
/// The x axis is the step (tick labels with `k`/`M` suffixes) and spans whole ticks; the y
/// axis is log10 of the loss, over the data's range padded by 5%. Both have round ticks from
/// [`nice_ticks`] and light grid lines. Points with a non-finite loss are skipped and split
/// the curve into separate polylines (a gap); a run of a single point is drawn as a dot. `marker` draws a dashed vertical line with a label at that step
/// (e.g. the learning-rate decay) if the step lies on the x axis. With no finite point the
/// plot area just says "no data".
///
/// `val`, if not empty, is a second series (the validation loss) drawn in another colour with a
/// legend; the axes fit both.
pub fn render_svg(
    title: &str,
    points: &[CurvePoint],
    val: &[CurvePoint],
    marker: Option<(u64, &str)>,
) -> String {
    let mut svg = String::new();
    svg.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    svg.push_str(&format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"{WIDTH}\" \
         height=\"{HEIGHT}\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" font-family=\"sans-serif\">\n"
    ));
    let title = escape_xml(title);
    svg.push_str(&format!("<title>{title}</title>\n"));
    svg.push_str(&format!(
        "<rect x=\"0\" y=\"0\" width=\"{WIDTH}\" height=\"{HEIGHT}\" fill=\"white\"/>\n"
    ));
    svg.push_str(&format!(
        "<text x=\"{}\" y=\"30\" text-anchor=\"middle\" font-size=\"17\" fill=\"{TEXT_COLOR}\">\
         {title}</text>\n",
        WIDTH / 2.0
    ));

    let all: Vec<CurvePoint> = points.iter().chain(val).copied().collect();
    match Plot::fit(&all) {
        Some(plot) => {
            plot.push_grid_and_ticks(&mut svg);
            plot.push_curve(&mut svg, points, LINE_COLOR);
            if !val.is_empty() {
                plot.push_curve(&mut svg, val, VAL_COLOR);
                push_legend(&mut svg);
            }
            if let Some((step, label)) = marker {
                plot.push_marker(&mut svg, step, label);
            }
        }
        None => svg.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"16\" \
             fill=\"#888888\">no data</text>\n",
            LEFT + PLOT_W / 2.0,
            TOP + PLOT_H / 2.0
        )),
    }
    push_frame_and_axis_labels(&mut svg);
    svg.push_str("</svg>\n");
    svg
}

/// The axes of a plot of some data, mapping (step, log10 loss) to SVG coordinates.
struct Plot {
    x_axis: Axis,
    y_axis: Axis,
}

impl Plot {
    /// Axes for the points with a finite loss; `None` if there are none.
    ///
    /// x runs from the last round tick at or below the first step to the first one at or above
    /// the last step (0 to 200k for a run of 200000 steps). y runs over the losses padded by 5%
    /// on each side, so the curve does not touch the frame, and shows the round ticks inside.
    fn fit(points: &[CurvePoint]) -> Option<Plot> {
        let mut step_min = f64::INFINITY;
        let mut step_max = f64::NEG_INFINITY;
        let mut loss_min = f64::INFINITY;
        let mut loss_max = f64::NEG_INFINITY;
        for point in points.iter().filter(|p| p.log10_loss.is_finite()) {
            step_min = step_min.min(point.step as f64);
            step_max = step_max.max(point.step as f64);
            loss_min = loss_min.min(point.log10_loss);
            loss_max = loss_max.max(point.log10_loss);
        }
        if step_min > step_max {
            return None;
        }
        let x_axis = Axis::spanning(&nice_ticks(step_min, step_max, MAX_TICKS));
        let y_axis = if loss_max > loss_min {
            let pad = 0.05 * (loss_max - loss_min);
            let ticks = nice_ticks(loss_min - pad, loss_max + pad, MAX_TICKS);
            Axis {
                min: loss_min - pad,
                max: loss_max + pad,
                step: ticks[1] - ticks[0],
            }
        } else {
            Axis::spanning(&nice_ticks(loss_min, loss_max, MAX_TICKS))
        };
        Some(Plot { x_axis, y_axis })
    }

    /// SVG x coordinate of a step.
    fn px(&self, step: f64) -> f64 {
        LEFT + self.x_axis.fraction(step) * PLOT_W
    }

    /// SVG y coordinate of a log10 loss.
    fn py(&self, loss: f64) -> f64 {
        TOP + PLOT_H - self.y_axis.fraction(loss) * PLOT_H
    }

    /// Grid lines, tick marks (outside the frame) and tick labels of both axes.
    fn push_grid_and_ticks(&self, svg: &mut String) {
        let x_ticks = self.x_axis.ticks_inside();
        let y_ticks = self.y_axis.ticks_inside();
        let bottom = TOP + PLOT_H;
        let right = LEFT + PLOT_W;

        svg.push_str(&format!("<g stroke=\"{GRID_COLOR}\" stroke-width=\"1\">\n"));
        for &tick in &x_ticks {
            let x = self.px(tick);
            svg.push_str(&format!(
                "<line x1=\"{x:.1}\" y1=\"{TOP:.1}\" x2=\"{x:.1}\" y2=\"{bottom:.1}\"/>\n"
            ));
        }
        for &tick in &y_ticks {
            let y = self.py(tick);
            svg.push_str(&format!(
                "<line x1=\"{LEFT:.1}\" y1=\"{y:.1}\" x2=\"{right:.1}\" y2=\"{y:.1}\"/>\n"
            ));
        }
        svg.push_str("</g>\n");

        svg.push_str(&format!("<g stroke=\"{TEXT_COLOR}\" stroke-width=\"1\">\n"));
        for &tick in &x_ticks {
            let x = self.px(tick);
            svg.push_str(&format!(
                "<line x1=\"{x:.1}\" y1=\"{bottom:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\"/>\n",
                bottom + 5.0
            ));
        }
        for &tick in &y_ticks {
            let y = self.py(tick);
            svg.push_str(&format!(
                "<line x1=\"{:.1}\" y1=\"{y:.1}\" x2=\"{LEFT:.1}\" y2=\"{y:.1}\"/>\n",
                LEFT - 5.0
            ));
        }
        svg.push_str("</g>\n");

        svg.push_str(&format!("<g font-size=\"12\" fill=\"{TEXT_COLOR}\">\n"));
        for &tick in &x_ticks {
            svg.push_str(&format!(
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\n",
                self.px(tick),
                bottom + 20.0,
                format_step_tick(tick, self.x_axis.step)
            ));
        }
        for &tick in &y_ticks {
            svg.push_str(&format!(
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\n",
                LEFT - 9.0,
                self.py(tick) + 4.0,
                format_fixed(tick, decimals_for(self.y_axis.step))
            ));
        }
        svg.push_str("</g>\n");
    }

    /// The curve: one polyline per run of points with a finite loss, a dot for a run of one.
    fn push_curve(&self, svg: &mut String, points: &[CurvePoint], color: &str) {
        let mut runs: Vec<Vec<(f64, f64)>> = Vec::new();
        let mut run: Vec<(f64, f64)> = Vec::new();
        for point in points {
            if point.log10_loss.is_finite() {
                run.push((self.px(point.step as f64), self.py(point.log10_loss)));
            } else if !run.is_empty() {
                runs.push(std::mem::take(&mut run));
            }
        }
        if !run.is_empty() {
            runs.push(run);
        }

        svg.push_str(&format!(
            "<g fill=\"none\" stroke=\"{color}\" stroke-width=\"1.5\" \
             stroke-linejoin=\"round\" stroke-linecap=\"round\">\n"
        ));
        for run in &runs {
            if let [(x, y)] = run[..] {
                svg.push_str(&format!(
                    "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"2\" fill=\"{color}\" \
                     stroke=\"none\"/>\n"
                ));
            } else {
                let coords: Vec<String> =
                    run.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
                svg.push_str(&format!("<polyline points=\"{}\"/>\n", coords.join(" ")));
            }
        }
        svg.push_str("</g>\n");
    }

    /// A dashed vertical line at `step` labelled at its top, the label on the side with more
    /// room; nothing if `step` is off the x axis.
    fn push_marker(&self, svg: &mut String, step: u64, label: &str) {
        let step = step as f64;
        if step < self.x_axis.min || step > self.x_axis.max {
            return;
        }
        let x = self.px(step);
        svg.push_str(&format!(
            "<line x1=\"{x:.1}\" y1=\"{TOP:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\" \
             stroke=\"{MARKER_COLOR}\" stroke-width=\"1.2\" stroke-dasharray=\"6 4\"/>\n",
            TOP + PLOT_H
        ));
        let (label_x, anchor) = if x > LEFT + 0.75 * PLOT_W {
            (x - 6.0, "end")
        } else {
            (x + 6.0, "start")
        };
        svg.push_str(&format!(
            "<text x=\"{label_x:.1}\" y=\"{:.1}\" text-anchor=\"{anchor}\" font-size=\"12\" \
             fill=\"{MARKER_COLOR}\">{}</text>\n",
            TOP + 16.0,
            escape_xml(label)
        ));
    }
}

/// The plot-area frame and the axis titles "step" and "log10(loss)".
fn push_frame_and_axis_labels(svg: &mut String) {
    svg.push_str(&format!(
        "<rect x=\"{LEFT:.1}\" y=\"{TOP:.1}\" width=\"{PLOT_W:.1}\" height=\"{PLOT_H:.1}\" \
         fill=\"none\" stroke=\"{TEXT_COLOR}\" stroke-width=\"1\"/>\n"
    ));
    svg.push_str(&format!(
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"14\" \
         fill=\"{TEXT_COLOR}\">step</text>\n",
        LEFT + PLOT_W / 2.0,
        HEIGHT - 14.0
    ));
    let (x, y) = (20.0, TOP + PLOT_H / 2.0);
    svg.push_str(&format!(
        "<text x=\"{x:.1}\" y=\"{y:.1}\" transform=\"rotate(-90 {x:.1} {y:.1})\" \
         text-anchor=\"middle\" font-size=\"14\" fill=\"{TEXT_COLOR}\">log10(loss)</text>\n"
    ));
}

/// The value range of one axis and its tick spacing.
struct Axis {
    min: f64,
    max: f64,
    /// Distance between neighbouring ticks.
    step: f64,
}

impl Axis {
    /// The axis from the first to the last of `ticks` (as from [`nice_ticks`]).
    fn spanning(ticks: &[f64]) -> Axis {
        let min = ticks[0];
        let max = ticks[ticks.len() - 1];
        let step = (max - min) / (ticks.len() - 1) as f64;
        Axis { min, max, step }
    }

    /// The multiples of `step` within `min..=max`.
    fn ticks_inside(&self) -> Vec<f64> {
        let slack = 1e-9 * self.step;
        nice_ticks(self.min, self.max, MAX_TICKS)
            .into_iter()
            .filter(|&tick| self.min - slack <= tick && tick <= self.max + slack)
            .collect()
    }

    /// Where `value` lies along the axis: 0 at the first tick, 1 at the last.
    fn fraction(&self, value: f64) -> f64 {
        (value - self.min) / (self.max - self.min)
    }
}

/// Round tick positions for an axis that must show `min..=max`.
///
/// The spacing is 1, 2 or 5 times a power of ten: the smallest such spacing for which the
/// ticks — from the largest multiple of the spacing at or below `min` to the smallest
/// multiple at or above `max` — number at most `max_ticks` (values below 2 count as 2). So the
/// first tick is `<= min`, the last `>= max`, and an axis drawn from the first to the last
/// tick holds the whole range. For example `nice_ticks(1000.0, 200000.0, 8)` is
/// `[0, 50000, 100000, 150000, 200000]` and `nice_ticks(0.31, 0.51, 8)` is
/// `[0.3, 0.35, 0.4, 0.45, 0.5, 0.55]`.
///
/// `min` and `max` may come in either order. An empty range (`min == max`) is first widened
/// by 10% of the value (by 1 around zero); non-finite input gives `[0, 1]`. There are always
/// at least two ticks.
pub fn nice_ticks(min: f64, max: f64, max_ticks: usize) -> Vec<f64> {
    let max_ticks = max_ticks.max(2);
    if !min.is_finite() || !max.is_finite() {
        return vec![0.0, 1.0];
    }
    let (mut lo, mut hi) = if min <= max { (min, max) } else { (max, min) };
    if lo == hi {
        let widen = if lo == 0.0 { 1.0 } else { 0.1 * lo.abs() };
        lo -= widen;
        hi += widen;
    }
    let range = hi - lo;
    if !range.is_finite() {
        return vec![lo, hi];
    }

    // Start one decade below the spacing that would give `max_ticks` ticks and go up until
    // the ticks fit.
    let mut exponent = (range / max_ticks as f64).log10().floor() as i32 - 1;
    loop {
        let power = 10f64.powi(exponent.abs());
        for multiple in [1.0, 2.0, 5.0] {
            let spacing = if exponent >= 0 {
                multiple * power
            } else {
                multiple / power
            };
            // The 1e-9 keeps a bound that is a multiple up to rounding from adding a tick.
            let first = (lo / spacing + 1e-9).floor();
            let last = (hi / spacing - 1e-9).ceil().max(first + 1.0);
            let count = (last - first) as usize + 1;
            if count <= max_ticks {
                // k × multiple is an exact integer, so dividing by the power of ten gives the
                // closest double to the decimal tick (0.35, not 0.35000000000000003).
                return (0..count)
                    .map(|i| {
                        let units = (first + i as f64) * multiple;
                        let tick = if exponent >= 0 {
                            units * power
                        } else {
                            units / power
                        };
                        tick + 0.0 // no -0
                    })
                    .collect();
            }
        }
        exponent += 1;
    }
}

/// Decimal places that show multiples of `spacing` (1, 2 or 5 × 10^k) exactly.
fn decimals_for(spacing: f64) -> usize {
    if spacing >= 1.0 {
        0
    } else {
        (-spacing.log10() - 1e-9).ceil() as usize
    }
}

/// `value` with `decimals` decimal places, never "-0.00".
fn format_fixed(value: f64, decimals: usize) -> String {
    let text = format!("{value:.decimals$}");
    if text.starts_with('-') && text[1..].chars().all(|c| c == '0' || c == '.') {
        text[1..].to_string()
    } else {
        text
    }
}

/// A step tick label: 0, 500, 1.5k, 50k, 1.2M (`spacing` is the distance between ticks).
fn format_step_tick(value: f64, spacing: f64) -> String {
    let (scale, suffix) = if value.abs() >= 1e6 {
        (1e6, "M")
    } else if value.abs() >= 1e3 {
        (1e3, "k")
    } else {
        (1.0, "")
    };
    let mut text = format_fixed(value / scale, decimals_for(spacing / scale));
    if text.contains('.') {
        text = text.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    text + suffix
}

/// Escapes `&`, `<`, `>`, `"` and `'` for XML text and attribute values.
fn escape_xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A loss curve like a real run: `n` points from step 1000 to 200000, log10 loss falling
    /// from 0.5 to 0.32 with deterministic noise.
    fn realistic_curve(n: usize) -> Vec<CurvePoint> {
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        (0..n)
            .map(|i| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                let noise = ((state >> 11) as f64 / (1u64 << 53) as f64 - 0.5) * 0.02;
                let t = i as f64 / (n - 1) as f64;
                let trend = 0.32 + 0.18 * (-5.0 * t).exp();
                CurvePoint {
                    step: 1000 + (i as u64) * 199_000 / (n as u64 - 1),
                    log10_loss: trend + noise,
                }
            })
            .collect()
    }

    /// Checks that every opened tag is closed, in order (a tiny XML well-formedness check:
    /// no comments or CDATA; attribute values never contain `>` since they are escaped).
    fn assert_tags_balanced(svg: &str) {
        let mut stack: Vec<String> = Vec::new();
        let mut rest = svg;
        while let Some(start) = rest.find('<') {
            let end = start + rest[start..].find('>').expect("unterminated tag");
            let tag = &rest[start + 1..end];
            rest = &rest[end + 1..];
            if tag.starts_with('?') {
                assert!(tag.ends_with('?'), "bad declaration <{tag}>");
            } else if let Some(name) = tag.strip_prefix('/') {
                let open = stack
                    .pop()
                    .unwrap_or_else(|| panic!("</{name}> never opened"));
                assert_eq!(open, name.trim(), "</{name}> closes <{open}>");
            } else if !tag.ends_with('/') {
                let name = tag.split_whitespace().next().expect("empty tag");
                stack.push(name.to_string());
            }
        }
        assert!(stack.is_empty(), "unclosed tags: {stack:?}");
        assert!(!rest.contains('>'), "stray '>' after the last tag");
    }

    fn polylines(svg: &str) -> Vec<&str> {
        svg.match_indices("<polyline points=\"")
            .map(|(at, open)| {
                let body = &svg[at + open.len()..];
                &body[..body.find('"').unwrap()]
            })
            .collect()
    }

    fn temp_path(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("makemore-plot-{}-{name}", std::process::id()))
    }

    #[test]
    fn nice_ticks_are_round_and_cover_the_range() {
        let cases = [
            (1000.0, 200000.0),
            (0.3118, 0.5093),
            (-3.7, 12.2),
            (0.0, 1.0),
            (123.0, 124.0),
            (1e-7, 3e-7),
            (-2.0, -1.5),
            (5.0, 5.0),
            (0.0, 0.0),
        ];
        for (min, max) in cases {
            let ticks = nice_ticks(min, max, 8);
            assert!(
                ticks.len() >= 2 && ticks.len() <= 8,
                "{min}..{max}: {ticks:?}"
            );
            assert!(
                ticks[0] <= min && *ticks.last().unwrap() >= max,
                "{min}..{max}: {ticks:?}"
            );
            let spacing = ticks[1] - ticks[0];
            let mantissa = spacing / 10f64.powf(spacing.log10().floor());
            assert!(
                [1.0, 2.0, 5.0, 10.0]
                    .iter()
                    .any(|m| (mantissa - m).abs() < 1e-6),
                "{min}..{max}: spacing {spacing}"
            );
            for pair in ticks.windows(2) {
                assert!(((pair[1] - pair[0]) - spacing).abs() < 1e-9 * spacing);
            }
            for tick in &ticks {
                let units = tick / spacing;
                assert!(
                    (units - units.round()).abs() < 1e-6,
                    "{tick} not a multiple of {spacing}"
                );
            }
        }
        assert_eq!(
            nice_ticks(1000.0, 200000.0, 8),
            [0.0, 50000.0, 100000.0, 150000.0, 200000.0]
        );
        assert_eq!(nice_ticks(0.31, 0.51, 8), [0.3, 0.35, 0.4, 0.45, 0.5, 0.55]);
        assert_eq!(nice_ticks(0.0, 1.0, 6), [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]);
        assert_eq!(nice_ticks(2.0, 1.0, 3), [1.0, 1.5, 2.0]);
        assert_eq!(nice_ticks(f64::NAN, 1.0, 8), [0.0, 1.0]);
    }

    #[test]
    fn tick_labels() {
        assert_eq!(format_step_tick(0.0, 50000.0), "0");
        assert_eq!(format_step_tick(50000.0, 50000.0), "50k");
        assert_eq!(format_step_tick(1500.0, 500.0), "1.5k");
        assert_eq!(format_step_tick(500.0, 500.0), "500");
        assert_eq!(format_step_tick(1_200_000.0, 200_000.0), "1.2M");
        assert_eq!(format_step_tick(2_000_000.0, 500_000.0), "2M");
        assert_eq!(format_fixed(0.35, decimals_for(0.05)), "0.35");
        assert_eq!(format_fixed(0.4, decimals_for(0.05)), "0.40");
        assert_eq!(format_fixed(-0.0001, 2), "0.00");
        assert_eq!(format_fixed(-0.5, decimals_for(0.1)), "-0.5");
    }

    #[test]
    fn svg_has_one_polyline_with_every_point() {
        let points = realistic_curve(200);
        let svg = render_svg("loss", &points, &[], Some((100_000, "lr 0.1 → 0.01")));
        assert!(svg.starts_with("<?xml"));
        assert!(svg.contains("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(!svg.contains("<script") && !svg.contains("href"));
        let lines = polylines(&svg);
        assert_eq!(lines.len(), 1);
        let pairs: Vec<&str> = lines[0].split_whitespace().collect();
        assert_eq!(pairs.len(), 200);
        for pair in pairs {
            let (x, y) = pair.split_once(',').unwrap();
            let (x, y): (f64, f64) = (x.parse().unwrap(), y.parse().unwrap());
            assert!((LEFT..=LEFT + PLOT_W).contains(&x) && (TOP..=TOP + PLOT_H).contains(&y));
        }
        assert!(svg.contains("stroke-dasharray"));
        assert!(svg.contains("lr 0.1 → 0.01"));
        assert!(svg.contains(">50k<") && svg.contains(">200k<"));
        assert!(svg.contains(">step<") && svg.contains(">log10(loss)<"));
        assert_tags_balanced(&svg);
    }

    #[test]
    fn title_is_escaped() {
        let svg = render_svg(
            "a <b> & \"c\"",
            &realistic_curve(10),
            &[],
            Some((5000, "<&>")),
        );
        assert!(svg.contains("a &lt;b&gt; &amp; &quot;c&quot;"));
        assert!(svg.contains("&lt;&amp;&gt;"));
        assert!(!svg.contains("<b>") && !svg.contains(" & "));
        assert_tags_balanced(&svg);
    }

    #[test]
    fn nan_point_is_skipped() {
        let mut points = realistic_curve(20);
        points[7].log10_loss = f64::NAN;
        points[15].log10_loss = f64::INFINITY;
        let svg = render_svg("loss", &points, &[], None);
        let lines = polylines(&svg);
        let counts: Vec<usize> = lines.iter().map(|l| l.split_whitespace().count()).collect();
        assert_eq!(counts, [7, 7, 4]);
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
        assert_tags_balanced(&svg);

        // A lone finite point between gaps becomes a dot.
        points[5].log10_loss = f64::NAN;
        let svg = render_svg("loss", &points, &[], None);
        assert_eq!(polylines(&svg).len(), 3);
        assert_eq!(svg.matches("<circle").count(), 1);
    }

    #[test]
    fn empty_input_says_no_data() {
        for points in [
            vec![],
            vec![CurvePoint {
                step: 10,
                log10_loss: f64::NAN,
            }],
        ] {
            let svg = render_svg("loss", &points, &[], Some((5, "marker")));
            assert!(svg.contains(">no data<"));
            assert!(polylines(&svg).is_empty());
            assert_tags_balanced(&svg);
        }
    }

    #[test]
    fn single_point_is_drawn() {
        let svg = render_svg(
            "loss",
            &[CurvePoint {
                step: 1000,
                log10_loss: 0.5,
            }],
            &[],
            None,
        );
        assert_eq!(svg.matches("<circle").count(), 1);
        assert!(!svg.contains("NaN"));
        assert_tags_balanced(&svg);
    }

    #[test]
    fn degenerate_curves_render() {
        let flat: Vec<CurvePoint> = (0..5)
            .map(|i| CurvePoint {
                step: i * 10,
                log10_loss: 0.4,
            })
            .collect();
        let tiny: Vec<CurvePoint> = (0..5)
            .map(|i| CurvePoint {
                step: 7,
                log10_loss: 0.3 + i as f64 * 1e-17,
            })
            .collect();
        let huge = [
            CurvePoint {
                step: 0,
                log10_loss: -1e300,
            },
            CurvePoint {
                step: u64::MAX,
                log10_loss: 1e300,
            },
        ];
        for points in [&flat[..], &tiny[..], &huge[..]] {
            let svg = render_svg("loss", points, &[], Some((0, "start")));
            assert_eq!(polylines(&svg).len(), 1);
            assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");
            assert_tags_balanced(&svg);
        }
        assert!(nice_ticks(0.3, 0.3 + 1e-17, 8).len() >= 2);
    }

    #[test]
    fn csv_round_trips() {
        let mut points = realistic_curve(50);
        points.push(CurvePoint {
            step: u64::MAX,
            log10_loss: f64::NAN,
        });
        points.push(CurvePoint {
            step: 0,
            log10_loss: -1e-300,
        });
        let path = temp_path("curve.csv");
        write_csv(&path, &points, &[]).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("step,log10_loss"));
        let parsed: Vec<CurvePoint> = lines
            .map(|line| {
                let (step, loss) = line.split_once(',').unwrap();
                CurvePoint {
                    step: step.parse().unwrap(),
                    log10_loss: loss.parse().unwrap(),
                }
            })
            .collect();
        assert_eq!(parsed.len(), points.len());
        for (a, b) in parsed.iter().zip(&points) {
            assert_eq!(a.step, b.step);
            assert!(
                a.log10_loss.to_bits() == b.log10_loss.to_bits()
                    || (a.log10_loss.is_nan() && b.log10_loss.is_nan())
            );
        }
    }

    #[test]
    fn csv_and_svg_carry_the_val_series() {
        let train = realistic_curve(4);
        let val = [
            CurvePoint {
                step: 1500,
                log10_loss: 0.25,
            },
            CurvePoint {
                step: 200_000,
                log10_loss: 0.125,
            },
        ];
        let path = temp_path("val.csv");
        write_csv(&path, &train, &val).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "step,log10_loss,log10_val_loss");
        assert_eq!(lines.len(), 1 + 5, "{text}");
        assert!(lines.contains(&"1500,,0.25"), "{text}");
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("200000,") && l.ends_with(",0.125")),
            "{text}"
        );
        let svg = render_svg("loss", &train, &val, None);
        assert_eq!(polylines(&svg).len(), 2, "{svg}");
        assert!(svg.contains(">val</text>"), "{svg}");
    }

    #[test]
    fn write_svg_writes_render_svg() {
        let points = realistic_curve(30);
        let path = temp_path("curve.svg");
        write_svg(&path, "loss", &points, &[], Some((100_000, "decay"))).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(
            text,
            render_svg("loss", &points, &[], Some((100_000, "decay")))
        );
    }
}

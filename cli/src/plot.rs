//! The run's pictures and the loss curve's data: `loss.csv`, and `loss.svg`, `stats.svg` and
//! `stats.png` drawn with plotters. Text is DejaVu Sans, embedded (the `dejavu` crate), so the
//! PNG needs no font on the machine; the SVGs name it and any browser opens them as they are.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::ops::Range;
use std::path::Path;
use std::sync::Once;

use anyhow::{anyhow, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

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

/// The font plotters draws text with, registered once.
fn font() -> &'static str {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        // DejaVu Sans parses: the crate ships it
        let _ = register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular());
    });
    "sans-serif"
}

const TRAIN_COLOR: RGBColor = RGBColor(0x1f, 0x77, 0xb4);
const VAL_COLOR: RGBColor = RGBColor(0xff, 0x7f, 0x0e);
const MARKER_COLOR: RGBColor = RGBColor(0xd6, 0x27, 0x28);
/// One colour per series of a panel, in order.
const COLORS: [RGBColor; 7] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
    RGBColor(0xe3, 0x77, 0xc2),
];

/// Any plotters error as an anyhow one.
fn err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing: {e:?}")
}

/// `lo..hi` padded by 5% on each side (a flat range by 1 around it; `0..1` if empty).
fn padded(values: impl Iterator<Item = f64>) -> Range<f64> {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
    if lo > hi {
        0.0..1.0
    } else if hi > lo {
        let pad = 0.05 * (hi - lo);
        lo - pad..hi + pad
    } else {
        lo - 1.0..hi + 1.0
    }
}

/// The finite points of a series, cut into runs at the non-finite ones (a gap in the line).
fn runs(points: &[(f64, f64)]) -> Vec<Vec<(f64, f64)>> {
    let mut out: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
    for &(x, y) in points {
        if y.is_finite() {
            out.last_mut().unwrap().push((x, y));
        } else if !out.last().unwrap().is_empty() {
            out.push(Vec::new());
        }
    }
    out.retain(|r| !r.is_empty());
    out
}

/// One named series of a line panel.
pub struct Series<'a> {
    pub name: &'a str,
    pub points: Vec<(f64, f64)>,
}

/// A panel of lines: `series` over `x` (their range if `None`), a dashed horizontal line at
/// `hline`, a dashed vertical one with a label at `marker`; "no data" when nothing is finite.
struct LinePanel<'a> {
    title: &'a str,
    x_desc: &'a str,
    y_desc: &'a str,
    x: Option<Range<f64>>,
    /// The x axis is steps (ticks as 200k).
    steps: bool,
    series: &'a [Series<'a>],
    colors: &'a [RGBColor],
    hline: Option<(f64, &'a str)>,
    marker: Option<(f64, &'a str)>,
}

impl LinePanel<'_> {
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        let f = font();
        let all = || self.series.iter().flat_map(|s| s.points.iter());
        let x = self.x.clone().unwrap_or_else(|| padded(all().map(|p| p.0)));
        let mut ys: Vec<f64> = all().map(|p| p.1).collect();
        if all().any(|p| p.1.is_finite()) {
            ys.extend(self.hline.map(|h| h.0));
        }
        let y = padded(ys.into_iter());
        let mut chart = ChartBuilder::on(area)
            .caption(self.title, (f, 17))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d(x.clone(), y.clone())
            .map_err(err)?;
        let mut mesh = chart.configure_mesh();
        mesh.x_desc(self.x_desc)
            .y_desc(self.y_desc)
            .light_line_style(RGBColor(0xee, 0xee, 0xee))
            .label_style((f, 12))
            .y_label_formatter(&|v| short(*v));
        if self.steps {
            mesh.x_label_formatter(&|v| step_label(*v));
        } else {
            mesh.x_label_formatter(&|v| short(*v));
        }
        mesh.draw().map_err(err)?;
        if !all().any(|p| p.1.is_finite()) {
            let at = ((x.start + x.end) / 2.0, (y.start + y.end) / 2.0);
            let style = TextStyle::from((f, 16)).color(&RGBColor(0x88, 0x88, 0x88));
            chart
                .draw_series([Text::new("no data", at, style)])
                .map_err(err)?;
            return Ok(());
        }
        if let Some((level, label)) = self.hline {
            let style = ShapeStyle::from(BLACK.mix(0.6)).stroke_width(1);
            chart
                .draw_series(DashedLineSeries::new(
                    [(x.start, level), (x.end, level)],
                    6,
                    4,
                    style,
                ))
                .map_err(err)?
                .label(label)
                .legend(move |(a, b)| PathElement::new([(a, b), (a + 16, b)], style));
        }
        if let Some((step, label)) = self.marker {
            if x.contains(&step) {
                let style = ShapeStyle::from(MARKER_COLOR).stroke_width(1);
                chart
                    .draw_series(DashedLineSeries::new(
                        [(step, y.start), (step, y.end)],
                        6,
                        4,
                        style,
                    ))
                    .map_err(err)?;
                let text = TextStyle::from((f, 12)).color(&MARKER_COLOR);
                let at = (
                    step + 0.01 * (x.end - x.start),
                    y.end - 0.06 * (y.end - y.start),
                );
                chart
                    .draw_series([Text::new(label.to_string(), at, text)])
                    .map_err(err)?;
            }
        }
        for (s, &color) in self.series.iter().zip(self.colors.iter().cycle()) {
            // a dense series in a thin line: thick ones overshoot at their steep steps
            let width = if s.points.len() > 300 { 1 } else { 2 };
            let style = ShapeStyle::from(color).stroke_width(width);
            let mut first = true;
            for run in runs(&s.points) {
                let drawn = if run.len() == 1 {
                    chart.draw_series([Circle::new(run[0], 3, style.filled())])
                } else {
                    chart.draw_series(LineSeries::new(run, style))
                }
                .map_err(err)?;
                if first {
                    drawn
                        .label(s.name)
                        .legend(move |(a, b)| PathElement::new([(a, b), (a + 16, b)], style));
                    first = false;
                }
            }
        }
        if self.series.len() > 1 || self.hline.is_some() {
            chart
                .configure_series_labels()
                .label_font((f, 12))
                .background_style(WHITE.mix(0.85))
                .border_style(RGBColor(0xbb, 0xbb, 0xbb))
                .position(SeriesLabelPosition::UpperRight)
                .draw()
                .map_err(err)?;
        }
        Ok(())
    }
}

/// A tick label of a value: at most 3 significant digits, in scientific notation when small.
fn short(v: f64) -> String {
    // a tick at 0 can come out as rounding noise (1.4e-17)
    if v.abs() < 1e-12 {
        "0".into()
    } else if v.abs() < 1e-2 {
        format!("{v:.1e}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// A step as a tick label: 200000 as 200k, 1500000 as 1.5M.
fn step_label(v: f64) -> String {
    let a = v.abs();
    let trim =
        |x: f64, suffix: &str| format!("{}{suffix}", format!("{x:.1}").trim_end_matches(".0"));
    if a >= 1e6 {
        trim(v / 1e6, "M")
    } else if a >= 1e4 {
        trim(v / 1e3, "k")
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// `loss.svg`: log10 of the mean training loss per window over the step, the val loss as a
/// second series, and `marker` (e.g. the learning-rate decay) as a dashed vertical line.
pub fn write_loss_svg(
    path: &Path,
    title: &str,
    points: &[CurvePoint],
    val: &[CurvePoint],
    marker: Option<(u64, &str)>,
) -> Result<()> {
    let to_xy = |c: &[CurvePoint]| c.iter().map(|p| (p.step as f64, p.log10_loss)).collect();
    let mut series = vec![Series {
        name: if val.is_empty() {
            "train"
        } else {
            "train (window mean)"
        },
        points: to_xy(points),
    }];
    if !val.is_empty() {
        series.push(Series {
            name: "val",
            points: to_xy(val),
        });
    }
    let x_max = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .fold(0.0, f64::max)
        .max(marker.map_or(0.0, |m| m.0 as f64));
    let panel = LinePanel {
        title,
        x_desc: "step",
        y_desc: "log10 loss",
        x: Some(0.0..x_max.max(1.0)),
        steps: true,
        series: &series,
        colors: &[TRAIN_COLOR, VAL_COLOR],
        hline: None,
        marker: marker.map(|(s, l)| (s as f64, l)),
    };
    let root = SVGBackend::new(path, (800, 450)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    panel.draw(&root)?;
    root.present().map_err(err)
}

/// A histogram: `counts` of equal bins over `lo..hi`.
pub struct Histogram {
    pub lo: f64,
    pub hi: f64,
    pub counts: Vec<u64>,
}

impl Histogram {
    /// `bins` equal bins over `lo..hi` (values outside in the end bins) of `values`.
    pub fn of(values: &[f32], lo: f64, hi: f64, bins: usize) -> Histogram {
        let mut counts = vec![0u64; bins];
        let width = (hi - lo) / bins as f64;
        for &v in values.iter().filter(|v| v.is_finite()) {
            let b = ((f64::from(v) - lo) / width).floor();
            counts[(b.max(0.0) as usize).min(bins - 1)] += 1;
        }
        Histogram { lo, hi, counts }
    }

    /// (bin centre, share of the values) per bin, as part 3 plots them.
    fn density(&self) -> Vec<(f64, f64)> {
        let total = self.counts.iter().sum::<u64>().max(1) as f64;
        let width = (self.hi - self.lo) / self.counts.len() as f64;
        (self.counts.iter().enumerate())
            .map(|(i, &c)| (self.lo + (i as f64 + 0.5) * width, c as f64 / total))
            .collect()
    }
}

/// The files [`StatsPicture::write`] writes.
pub const STATS_SVG: &str = "stats.svg";
pub const STATS_PNG: &str = "stats.png";

/// What `stats.svg` and `stats.png` show.
pub struct StatsPicture<'a> {
    /// (step, share of h saturated, dead units) per record.
    pub saturation: Vec<(f64, f64, f64)>,
    /// Per judged tensor, (step, log10 update:data) per record.
    pub update_to_data: Vec<Series<'a>>,
    pub end: Option<EndHistograms<'a>>,
}

/// The last record's step, its h histogram, and its gradient histograms per judged tensor.
pub type EndHistograms<'a> = (u64, Histogram, Vec<(&'a str, Histogram)>);

impl StatsPicture<'_> {
    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        root.fill(&WHITE).map_err(err)?;
        let panels = root.split_evenly((2, 2));
        let (h_title, h_series, g_title, g_series);
        match &self.end {
            Some((step, h, grads)) => {
                h_title = format!("distribution of h at step {step}");
                h_series = vec![Series {
                    name: "h",
                    points: h.density(),
                }];
                g_title = format!("gradients at step {step}, per weight");
                g_series = grads
                    .iter()
                    .map(|(name, g)| Series {
                        name,
                        points: g.density(),
                    })
                    .collect();
            }
            None => {
                h_title = "h at the run's last record (not reached yet)".into();
                h_series = Vec::new();
                g_title = "gradients at the run's last record (not reached yet)".into();
                g_series = Vec::new();
            }
        }
        LinePanel {
            title: &h_title,
            x_desc: "h",
            y_desc: "share of values",
            x: Some(-1.0..1.0),
            steps: false,
            series: &h_series,
            colors: &COLORS,
            hline: None,
            marker: None,
        }
        .draw(&panels[0])?;
        LinePanel {
            title: &g_title,
            x_desc: "gradient",
            y_desc: "share of values",
            x: None,
            steps: false,
            series: &g_series,
            colors: &COLORS,
            hline: None,
            marker: None,
        }
        .draw(&panels[1])?;
        LinePanel {
            title: "update:data ratio, log10(std(lr * grad) / std(data))",
            x_desc: "step",
            y_desc: "log10 ratio",
            x: None,
            steps: true,
            series: &self.update_to_data,
            colors: &COLORS,
            hline: Some((-3.0, "-3, the lecture's reference")),
            marker: None,
        }
        .draw(&panels[2])?;
        let saturation = [
            Series {
                name: "% of h saturated (|h| > 0.97)",
                points: self
                    .saturation
                    .iter()
                    .map(|&(s, p, _)| (s, 100.0 * p))
                    .collect(),
            },
            Series {
                name: "dead units",
                points: self.saturation.iter().map(|&(s, _, d)| (s, d)).collect(),
            },
        ];
        LinePanel {
            title: "saturation of the tanh layer",
            x_desc: "step",
            y_desc: "% of h, units",
            x: None,
            steps: true,
            series: &saturation,
            colors: &[COLORS[3], COLORS[4]],
            hline: None,
            marker: None,
        }
        .draw(&panels[3])?;
        root.present().map_err(err)
    }

    /// `stats.svg` and `stats.png` (the same four panels) in `out`.
    pub fn write(&self, out: &Path) -> Result<()> {
        const SIZE: (u32, u32) = (1200, 900);
        self.draw(SVGBackend::new(&out.join(STATS_SVG), SIZE).into_drawing_area())?;
        self.draw(BitMapBackend::new(&out.join(STATS_PNG), SIZE).into_drawing_area())
    }
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

    /// The text of each `<text>` element, trimmed (plotters puts it on a line of its own).
    fn texts(svg: &str) -> Vec<&str> {
        svg.split("<text")
            .skip(1)
            .map(|t| t[t.find('>').unwrap() + 1..t.find("</text>").unwrap()].trim())
            .collect()
    }

    fn temp_dir() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
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
        let dir = temp_dir();
        let path = dir.path().join("curve.csv");
        write_csv(&path, &points, &[]).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
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
        let dir = temp_dir();
        let path = dir.path().join("val.csv");
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
        let svg_path = dir.path().join("loss.svg");
        write_loss_svg(
            &svg_path,
            "the loss",
            &train,
            &val,
            Some((100_000, "lr / 10")),
        )
        .unwrap();
        let svg = std::fs::read_to_string(&svg_path).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"),
            "{svg}"
        );
        let t = texts(&svg);
        for text in [
            "the loss",
            "val",
            "train (window mean)",
            "lr / 10",
            "step",
            "log10 loss",
            "200k",
        ] {
            assert!(t.contains(&text), "no text {text:?} in loss.svg: {t:?}");
        }
        // both series drawn (and their legend's lines), in their colours
        for color in ["#1F77B4", "#FF7F0E"] {
            assert!(
                svg.matches(&format!("stroke=\"{color}\"")).count() >= 2,
                "{color}"
            );
        }
    }

    #[test]
    fn a_curve_without_a_finite_point_says_no_data() {
        let dir = temp_dir();
        let path = dir.path().join("loss.svg");
        let nan = [CurvePoint {
            step: 1000,
            log10_loss: f64::NAN,
        }];
        write_loss_svg(&path, "loss", &nan, &[], None).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.contains("no data") && !svg.contains("NaN"), "{svg}");
    }

    #[test]
    fn stats_pictures_have_the_four_panels_in_svg_and_png() {
        let dir = temp_dir();
        let steps = [0.0, 100.0, 200.0];
        let picture = StatsPicture {
            saturation: steps.iter().map(|&s| (s, 0.05 + s / 1e4, 0.0)).collect(),
            update_to_data: ["C", "W1", "W2"]
                .iter()
                .enumerate()
                .map(|(i, name)| Series {
                    name,
                    points: steps
                        .iter()
                        .map(|&s| (s, -3.0 + 0.2 * i as f64 - s / 1e3))
                        .collect(),
                })
                .collect(),
            end: Some((
                200,
                Histogram::of(&[-0.99, -0.5, 0.0, 0.2, 0.98], -1.0, 1.0, 20),
                vec![("W1", Histogram::of(&[-1e-3, 0.0, 2e-3], -2e-3, 2e-3, 20))],
            )),
        };
        picture.write(dir.path()).unwrap();
        let svg = std::fs::read_to_string(dir.path().join("stats.svg")).unwrap();
        let t = texts(&svg);
        for text in [
            "distribution of h at step 200",
            "gradients at step 200, per weight",
            "update:data ratio, log10(std(lr * grad) / std(data))",
            "-3, the lecture&apos;s reference",
            "saturation of the tanh layer",
            "dead units",
            "W1",
            "W2",
            "-2.0e-3",
            "200",
        ] {
            assert!(t.contains(&text), "no text {text:?} in stats.svg: {t:?}");
        }
        let png = std::fs::read(dir.path().join("stats.png")).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        // the IHDR's width and height
        assert_eq!(&png[16..24], &[0, 0, 4, 176, 0, 0, 3, 132]);
    }

    #[test]
    fn histograms_put_outliers_in_the_end_bins() {
        let h = Histogram::of(&[-5.0, -1.0, 0.0, 0.99, 1.0, 7.0, f32::NAN], -1.0, 1.0, 4);
        assert_eq!(h.counts, [2, 0, 1, 3]);
    }
}

//! Latency by percentile as an SVG drawing, HdrHistogram style: the percentile
//! axis is logarithmic in 1/(1 - percentile), so 90 %, 99 %, 99.9 %, .. are
//! evenly spaced and the tail gets as much room as the median.

use std::fmt::Write;

use hdrhistogram::Histogram;

const WIDTH: f64 = 900.0;
const HEIGHT: f64 = 520.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 220.0; // room for the legend
const TOP: f64 = 40.0;
const BOTTOM: f64 = 50.0;
/// The percentile axis ends at 99.9999 % (six nines) at most.
const MAX_NINES: f64 = 6.0;
/// The labels of the percentile axis at 0, 1, 2, .. nines.
const PERCENTILE_TICKS: [&str; 7] = ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%", "99.9999%"];
const COLOURS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];

/// One line of the plot.
pub struct Series<'a> {
    pub name: String,
    /// Latencies in µs.
    pub histogram: &'a Histogram<u64>,
}

/// The position of quantile `q` on the percentile axis, in "nines".
fn nines(q: f64) -> f64 {
    if q >= 1.0 {
        MAX_NINES
    } else {
        (1.0 / (1.0 - q)).log10().min(MAX_NINES)
    }
}

/// (nines, ms) points of a histogram, in percentile order.
fn points(histogram: &Histogram<u64>) -> Vec<(f64, f64)> {
    histogram
        .iter_quantiles(5)
        .map(|step| {
            (
                nines(step.quantile_iterated_to()),
                step.value_iterated_to() as f64 / 1000.0,
            )
        })
        .collect()
}

/// A round step for an axis from 0 to `max` with about five ticks.
fn tick_step(max: f64) -> f64 {
    let rough = max / 5.0;
    let magnitude = 10f64.powf(rough.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|step| *step >= rough)
        .unwrap_or(10.0 * magnitude)
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The drawing: latency (ms, linear) against percentile (log scale).
pub fn svg(title: &str, series: &[Series<'_>]) -> String {
    let lines: Vec<Vec<(f64, f64)>> = series.iter().map(|s| points(s.histogram)).collect();
    let all = lines.iter().flatten();
    let max_ms = all.clone().map(|p| p.1).fold(0.0, f64::max).max(0.001);
    // The axis ends at the last percentile below 100 % (rounded up to whole
    // nines); the maximum is drawn at its end.
    let max_x = all
        .map(|p| p.0)
        .filter(|n| *n < MAX_NINES)
        .fold(2.0, f64::max)
        .ceil();
    let step = tick_step(max_ms);
    let top_ms = (max_ms / step).ceil() * step;
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let x = |n: f64| LEFT + n.min(max_x) / max_x * plot_w;
    let y = |v: f64| TOP + plot_h - v / top_ms * plot_h;

    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" \
         font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">{}</text>\n",
        LEFT + plot_w / 2.0,
        escape(title)
    );
    for (n, label) in PERCENTILE_TICKS.iter().enumerate() {
        let n = n as f64;
        if n > max_x {
            break;
        }
        let _ = writeln!(
            out,
            "<line x1=\"{0:.1}\" y1=\"{TOP}\" x2=\"{0:.1}\" y2=\"{1:.1}\" stroke=\"#ddd\"/>\
             <text x=\"{0:.1}\" y=\"{2:.1}\" text-anchor=\"middle\">{label}</text>",
            x(n),
            TOP + plot_h,
            TOP + plot_h + 18.0
        );
    }
    let mut v = 0.0;
    while v <= top_ms + step / 2.0 {
        let _ = writeln!(
            out,
            "<line x1=\"{LEFT}\" y1=\"{0:.1}\" x2=\"{1:.1}\" y2=\"{0:.1}\" stroke=\"#ddd\"/>\
             <text x=\"{2:.1}\" y=\"{3:.1}\" text-anchor=\"end\">{v}</text>",
            y(v),
            LEFT + plot_w,
            LEFT - 6.0,
            y(v) + 4.0
        );
        v += step;
    }
    let _ = writeln!(
        out,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">percentile</text>\n\
         <text transform=\"translate(18 {:.1}) rotate(-90)\" text-anchor=\"middle\">latency (ms)</text>",
        LEFT + plot_w / 2.0,
        HEIGHT - 8.0,
        TOP + plot_h / 2.0
    );
    for (i, (series, line)) in series.iter().zip(&lines).enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let points: Vec<String> = line
            .iter()
            .map(|&(n, v)| format!("{:.1},{:.1}", x(n), y(v)))
            .collect();
        let _ = writeln!(
            out,
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"/>",
            points.join(" ")
        );
        let legend_y = TOP + 10.0 + 20.0 * i as f64;
        let _ = writeln!(
            out,
            "<line x1=\"{0:.1}\" y1=\"{1:.1}\" x2=\"{2:.1}\" y2=\"{1:.1}\" stroke=\"{colour}\" stroke-width=\"3\"/>\
             <text x=\"{3:.1}\" y=\"{4:.1}\">{5}</text>",
            WIDTH - RIGHT + 15.0,
            legend_y,
            WIDTH - RIGHT + 40.0,
            WIDTH - RIGHT + 46.0,
            legend_y + 4.0,
            escape(&series.name)
        );
    }
    out += "</svg>\n";
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::new_histogram;

    #[test]
    fn percentiles_sit_on_a_log_axis() {
        assert_eq!(nines(0.0), 0.0);
        assert!((nines(0.9) - 1.0).abs() < 1e-9);
        assert!((nines(0.999) - 3.0).abs() < 1e-9);
        assert_eq!(nines(1.0), MAX_NINES);
    }

    #[test]
    fn ticks_are_round() {
        assert_eq!(tick_step(10.0), 2.0);
        assert_eq!(tick_step(0.7), 0.2);
        assert_eq!(tick_step(120.0), 50.0);
    }

    #[test]
    fn one_polyline_per_series_with_a_legend() {
        let mut fast = new_histogram();
        let mut slow = new_histogram();
        for us in 1..=1000 {
            fast.record(us).unwrap();
            slow.record(us * 3).unwrap();
        }
        let drawing = svg(
            "a <title>",
            &[
                Series {
                    name: "A publish".into(),
                    histogram: &fast,
                },
                Series {
                    name: "B publish".into(),
                    histogram: &slow,
                },
            ],
        );
        assert!(drawing.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(drawing.trim_end().ends_with("</svg>"));
        assert_eq!(drawing.matches("<polyline").count(), 2);
        assert!(drawing.contains(">A publish</text>") && drawing.contains(">B publish</text>"));
        assert!(drawing.contains("a &lt;title&gt;"));
        for tick in [">0%<", ">90%<", ">99%<", ">99.9%<"] {
            assert!(drawing.contains(tick), "{tick} missing");
        }
        // 1,000 values say nothing about the 99.9999th percentile.
        assert!(!drawing.contains(">99.9999%<"));
        // Every point lies inside the drawing.
        for polyline in drawing.split("points=\"").skip(1) {
            for point in polyline.split('"').next().unwrap().split(' ') {
                let (px, py) = point.split_once(',').unwrap();
                let (px, py): (f64, f64) = (px.parse().unwrap(), py.parse().unwrap());
                assert!((LEFT..=WIDTH - RIGHT).contains(&px), "x {px}");
                assert!((TOP..=HEIGHT - BOTTOM).contains(&py), "y {py}");
            }
        }
    }
}

//! Every figure greenbench draws, in one place (plotters, SVG): the Markdown report's plots,
//! the HTML report's and nothing else draws its own. Colours come from the Okabe–Ito palette
//! (distinguishable with the common colour-vision deficiencies), series beyond its eight
//! change marker too, and every SVG carries its title and a text alternative (`<title>`,
//! `<desc>`, `role="img"`), so a screen reader and a search engine read what the eye sees.

use plotters::coord::{CoordTranslate, Shift};
use plotters::prelude::*;
use std::collections::BTreeMap;

/// Okabe & Ito (2008), "Color Universal Design": eight colours told apart by readers with
/// protanopia, deuteranopia and tritanopia; ordered so the first few contrast most on white
/// (the palette's yellow last).
pub const PALETTE: [RGBColor; 8] = [
    RGBColor(0, 114, 178),   // blue
    RGBColor(230, 159, 0),   // orange
    RGBColor(0, 158, 115),   // bluish green
    RGBColor(213, 94, 0),    // vermillion
    RGBColor(204, 121, 167), // reddish purple
    RGBColor(86, 180, 233),  // sky blue
    RGBColor(0, 0, 0),       // black
    RGBColor(240, 228, 66),  // yellow
];

/// The colour of series `i`.
pub fn colour(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// Escape text for XML and HTML (element content and attribute values).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `svg` with its title and text alternative: `role="img"`, `<title>` and `<desc>` right
/// after the opening tag (what assistive technology reads for an image).
pub fn accessible(svg: &str, title: &str, desc: &str) -> String {
    match svg
        .find("<svg")
        .and_then(|i| svg[i..].find('>').map(|j| i + j))
    {
        Some(end) => format!(
            "{} role=\"img\"><title>{}</title><desc>{}</desc>{}",
            &svg[..end],
            escape(title),
            escape(desc),
            &svg[end + 1..]
        ),
        None => svg.to_string(),
    }
}

/// The smallest and largest of `f` over `pts`.
fn extent(pts: &[(f64, f64)], f: impl Fn(&(f64, f64)) -> f64) -> (f64, f64) {
    pts.iter()
        .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(f(p)), b.max(f(p))))
}

/// A `w` x `h` SVG drawn by `draw` on a white area; `None` if plotters fails.
fn svg(
    (w, h): (u32, u32),
    draw: impl FnOnce(&DrawingArea<SVGBackend, Shift>) -> Option<()>,
) -> Option<String> {
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).ok()?;
        draw(&root)?;
        root.present().ok()?;
    }
    Some(buf)
}

/// The chart builder every plot starts from: caption, margins, axis label areas.
fn chart_on<'a, 'b>(
    root: &'a DrawingArea<SVGBackend<'b>, Shift>,
    title: &str,
    y_label_area: u32,
) -> ChartBuilder<'a, 'b, SVGBackend<'b>> {
    let mut b = ChartBuilder::on(root);
    b.caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(y_label_area);
    b
}

/// The legend box every plot ends with.
fn legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
) -> Option<()> {
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .ok()
}

/// A number on a log axis: `1e6`, `2.5e-3`, or plainly between 0.01 and 10,000.
fn log_tick(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if (0.01..10_000.0).contains(&v.abs()) {
        if v >= 10.0 {
            format!("{v:.0}")
        } else {
            format!("{v:.2}")
        }
    } else {
        format!("{v:.0e}")
    }
}

/// The data's series, named, for the text alternative: `a: 3 points; b: 2 points`.
fn describe_series(series: &BTreeMap<String, Vec<(f64, f64)>>) -> String {
    series
        .iter()
        .map(|(k, v)| format!("{k}: {} point(s)", v.len()))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Test accuracy (linear, %) against training FPO (log), one colour per series.
pub fn accuracy(series: &BTreeMap<String, Vec<(f64, f64)>>) -> Option<String> {
    let pts = points(series)?;
    let title = "test accuracy against training FPO";
    let (xmin, xmax) = extent(&pts, |p| p.0);
    let ymin = pts.iter().fold(100f64, |a, p| a.min(p.1));
    let s = svg((720, 420), |root| {
        let mut chart = chart_on(root, title, 60)
            .build_cartesian_2d(
                (xmin / 3.0..xmax * 3.0).log_scale(),
                (ymin - 5.0).floor().max(0.0)..100.0,
            )
            .ok()?;
        chart
            .configure_mesh()
            .max_light_lines(1)
            .x_label_formatter(&|x| format!("{x:.0e}"))
            .x_desc("training FPO of the run (counted)")
            .y_desc("test accuracy (%)")
            .draw()
            .ok()?;
        for (i, (label, s)) in series.iter().enumerate() {
            let color = colour(i).to_rgba();
            chart
                .draw_series(s.iter().map(|p| Circle::new(*p, 5, color.filled())))
                .ok()?
                .label(label.clone())
                .legend(move |(x, y)| Circle::new((x + 9, y), 5, color.filled()));
        }
        legend(&mut chart)
    })?;
    Some(accessible(
        &s,
        title,
        &format!(
            "Scatter plot: test accuracy in percent (linear axis) against the training run's counted FPO (log axis). {}.",
            describe_series(series)
        ),
    ))
}

/// Every point of `series`; `None` when there is none (no figure is drawn empty).
fn points(series: &BTreeMap<String, Vec<(f64, f64)>>) -> Option<Vec<(f64, f64)>> {
    let pts: Vec<(f64, f64)> = series.values().flatten().copied().collect();
    (!pts.is_empty()).then_some(pts)
}

/// One line per series against batch size, both axes logarithmic.
pub fn against_batch(
    title: &str,
    y_label: &str,
    series: &BTreeMap<String, Vec<(f64, f64)>>,
) -> Option<String> {
    let pts = points(series)?;
    let (xmin, xmax) = extent(&pts, |p| p.0);
    let (ymin, ymax) = extent(&pts, |p| p.1);
    let s = svg((720, 420), |root| {
        let mut chart = chart_on(root, title, 70)
            .build_cartesian_2d(
                ((xmin / 1.5).max(0.5)..xmax * 1.5).log_scale(),
                (ymin / 2.0..ymax * 2.0).log_scale(),
            )
            .ok()?;
        chart
            .configure_mesh()
            .max_light_lines(1)
            .x_labels(8)
            .y_labels(8)
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| {
                if *y >= 10.0 {
                    format!("{y:.0}")
                } else {
                    format!("{y:.2}")
                }
            })
            .x_desc("batch size")
            .y_desc(y_label)
            .draw()
            .ok()?;
        for (i, (label, s)) in series.iter().enumerate() {
            let color = colour(i).to_rgba();
            let mut s = s.clone();
            s.sort_by(|a, b| a.0.partial_cmp(&b.0).expect("finite"));
            // Past the palette's eight colours, a dashed-looking thinner line and a triangle
            // marker keep series apart.
            let width = if i < PALETTE.len() { 2 } else { 1 };
            chart
                .draw_series(LineSeries::new(s.clone(), color.stroke_width(width)))
                .ok()?
                .label(label.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color));
            if i < PALETTE.len() {
                chart
                    .draw_series(s.iter().map(|p| Circle::new(*p, 4, color.filled())))
                    .ok()?;
            } else {
                chart
                    .draw_series(s.iter().map(|p| TriangleMarker::new(*p, 5, color.filled())))
                    .ok()?;
            }
        }
        legend(&mut chart)
    })?;
    Some(accessible(
        &s,
        title,
        &format!(
            "Line plot, both axes logarithmic: {y_label} against batch size. {}.",
            describe_series(series)
        ),
    ))
}

/// One line per series, both axes linear (a time series: epochs, seconds).
pub fn lines(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &BTreeMap<String, Vec<(f64, f64)>>,
) -> Option<String> {
    let pts = points(series)?;
    let (xmin, xmax) = extent(&pts, |p| p.0);
    let (_, ymax) = extent(&pts, |p| p.1);
    let s = svg((720, 380), |root| {
        let mut chart = chart_on(root, title, 70)
            .build_cartesian_2d(xmin.min(0.0)..xmax * 1.05, 0.0..ymax * 1.15)
            .ok()?;
        chart
            .configure_mesh()
            .max_light_lines(1)
            .x_desc(x_label)
            .y_desc(y_label)
            .draw()
            .ok()?;
        for (i, (label, s)) in series.iter().enumerate() {
            let color = colour(i).to_rgba();
            chart
                .draw_series(LineSeries::new(s.clone(), color.stroke_width(2)))
                .ok()?
                .label(label.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color));
        }
        legend(&mut chart)
    })?;
    Some(accessible(
        &s,
        title,
        &format!(
            "Line plot: {y_label} against {x_label}. {}.",
            describe_series(series)
        ),
    ))
}

/// One point of a Pareto figure.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    /// The series (legend entry) it belongs to.
    pub series: String,
    /// Cost: lower is better (FPO, joules).
    pub x: f64,
    /// Quality: higher is better (accuracy, %).
    pub y: f64,
    /// On the Pareto front: no other point is at most as costly and more accurate.
    pub front: bool,
}

/// Mark the Pareto front of `pts` (lower x and higher y both better): a point is on it when
/// no other point has x ≤ its x and y > its y, or x < its x and y ≥ its y.
pub fn mark_front(pts: &mut [Point]) {
    let snapshot: Vec<(f64, f64)> = pts.iter().map(|p| (p.x, p.y)).collect();
    for p in pts.iter_mut() {
        p.front = !snapshot
            .iter()
            .any(|&(x, y)| (x <= p.x && y > p.y) || (x < p.x && y >= p.y));
    }
}

/// Accuracy (%, linear) against a cost (log axis), one colour per series, the Pareto front
/// drawn as a dashed staircase through ringed points.
pub fn pareto(title: &str, x_label: &str, pts: &[Point]) -> Option<String> {
    if pts.is_empty() {
        return None;
    }
    let xy: Vec<(f64, f64)> = pts.iter().map(|p| (p.x, p.y)).collect();
    let (xmin, xmax) = extent(&xy, |p| p.0);
    let (ymin, ymax) = extent(&xy, |p| p.1);
    let mut series: BTreeMap<&str, Vec<(f64, f64)>> = BTreeMap::new();
    for p in pts {
        series.entry(&p.series).or_default().push((p.x, p.y));
    }
    let mut front: Vec<(f64, f64)> = pts.iter().filter(|p| p.front).map(|p| (p.x, p.y)).collect();
    front.sort_by(|a, b| a.0.partial_cmp(&b.0).expect("finite"));
    let s = svg((720, 440), |root| {
        let mut chart = chart_on(root, title, 60)
            .build_cartesian_2d(
                (xmin / 3.0..xmax * 3.0).log_scale(),
                (ymin - 5.0).floor().max(0.0)..(ymax + 2.0).min(100.0).max(ymin + 1.0),
            )
            .ok()?;
        chart
            .configure_mesh()
            .max_light_lines(1)
            .x_label_formatter(&|x| log_tick(*x))
            .x_desc(x_label)
            .y_desc("test accuracy (%)")
            .draw()
            .ok()?;
        // The front: a staircase (each step holds its accuracy until the next costlier,
        // better point), dashed grey, under the points.
        let mut stair = Vec::new();
        for (i, p) in front.iter().enumerate() {
            if i > 0 {
                stair.push((p.0, front[i - 1].1));
            }
            stair.push(*p);
        }
        if stair.len() > 1 {
            chart
                .draw_series(DashedLineSeries::new(
                    stair,
                    6,
                    4,
                    RGBColor(90, 90, 90).stroke_width(2),
                ))
                .ok()?
                .label("Pareto front")
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], RGBColor(90, 90, 90)));
        }
        for (i, (label, s)) in series.iter().enumerate() {
            let color = colour(i).to_rgba();
            chart
                .draw_series(s.iter().map(|p| Circle::new(*p, 5, color.filled())))
                .ok()?
                .label(label.to_string())
                .legend(move |(x, y)| Circle::new((x + 9, y), 5, color.filled()));
        }
        chart
            .draw_series(
                front
                    .iter()
                    .map(|p| Circle::new(*p, 9, BLACK.stroke_width(2))),
            )
            .ok()?;
        legend(&mut chart)
    })?;
    let on: Vec<String> = pts
        .iter()
        .filter(|p| p.front)
        .map(|p| format!("{} ({:.3e}, {:.2} %)", p.series, p.x, p.y))
        .collect();
    Some(accessible(
        &s,
        title,
        &format!(
            "Scatter plot: test accuracy in percent against {x_label} (log axis), {} point(s); on the Pareto front (ringed, joined by a dashed staircase): {}.",
            pts.len(),
            on.join("; ")
        ),
    ))
}

/// Horizontal bars, one per row (`name`, value), largest scale on x; each bar labelled with
/// its name and share of the total at its end.
pub fn bars(title: &str, x_label: &str, rows: &[(String, f64)]) -> Option<String> {
    if rows.is_empty() {
        return None;
    }
    let total: f64 = rows.iter().map(|r| r.1).sum();
    let max = rows.iter().fold(0f64, |a, r| a.max(r.1)).max(1.0);
    let n = rows.len();
    let height = (110 + 22 * n) as u32;
    let s = svg((760, height), |root| {
        let mut chart = chart_on(root, title, 10)
            .build_cartesian_2d(0f64..max * 1.6, 0f64..n as f64)
            .ok()?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .disable_y_axis()
            .max_light_lines(1)
            .x_label_formatter(&|x| log_tick(*x))
            .x_desc(x_label)
            .draw()
            .ok()?;
        let color = colour(0).to_rgba();
        chart
            .draw_series(rows.iter().enumerate().map(|(i, (_, v))| {
                // The first row on top.
                let y = (n - 1 - i) as f64;
                Rectangle::new([(0.0, y + 0.15), (*v, y + 0.85)], color.filled())
            }))
            .ok()?;
        chart
            .draw_series(rows.iter().enumerate().map(|(i, (name, v))| {
                let y = (n - 1 - i) as f64 + 0.75;
                let share = if total > 0.0 { 100.0 * v / total } else { 0.0 };
                Text::new(
                    format!("{name}  {share:.1} %"),
                    (*v + max * 0.01, y),
                    ("sans-serif", 13),
                )
            }))
            .ok()?;
        Some(())
    })?;
    let top: Vec<String> = {
        let mut r: Vec<&(String, f64)> = rows.iter().collect();
        r.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap_or(std::cmp::Ordering::Equal));
        r.iter()
            .take(3)
            .map(|(k, v)| {
                format!(
                    "{k} {:.1} %",
                    if total > 0.0 { 100.0 * v / total } else { 0.0 }
                )
            })
            .collect()
    };
    Some(accessible(
        &s,
        title,
        &format!(
            "Bar chart of {x_label} over {n} rows; the largest: {}.",
            top.join(", ")
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pt(x: f64, y: f64) -> Point {
        Point {
            series: "s".into(),
            x,
            y,
            front: false,
        }
    }

    #[test]
    fn pareto_front_is_the_undominated_points() {
        let mut pts = vec![
            pt(1.0, 90.0),
            pt(2.0, 95.0),
            pt(3.0, 93.0), // dominated by (2, 95)
            pt(4.0, 97.0),
            pt(1.0, 80.0), // dominated by (1, 90)
            pt(4.0, 97.0), // a tie with its twin: both on the front
        ];
        mark_front(&mut pts);
        let front: Vec<bool> = pts.iter().map(|p| p.front).collect();
        assert_eq!(front, vec![true, true, false, true, false, true]);
    }

    #[test]
    fn figures_carry_title_and_text_alternative() {
        let mut pts = vec![pt(1e6, 90.0), pt(1e7, 97.0), pt(2e7, 96.0)];
        mark_front(&mut pts);
        let s = pareto("acc <vs> FPO", "FPO per example", &pts).unwrap();
        assert!(s.contains("role=\"img\"><title>acc &lt;vs&gt; FPO</title><desc>"));
        assert!(s.contains("3 point(s)"), "{s}");
        // Three points, their legend entry, two rings for the two front points.
        let filled = s.matches("<circle").count();
        assert_eq!(filled, 3 + 1 + 2, "{s}");
        let b = bars("work", "FPO", &[("a".into(), 3.0), ("b".into(), 1.0)]).unwrap();
        assert!(b.contains("a  75.0 %") && b.contains("b  25.0 %"));
    }

    #[test]
    fn palette_is_okabe_ito() {
        assert_eq!(colour(0), RGBColor(0, 114, 178));
        assert_eq!(colour(8), colour(0));
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}

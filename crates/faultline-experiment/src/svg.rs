//! A small SVG builder and the experiment's plots: bar charts and a timeline.

use std::fmt::Write;

/// Escapes text for XML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// An SVG document being drawn.
#[derive(Clone, Debug)]
pub struct Svg {
    width: f64,
    height: f64,
    body: String,
}

impl Svg {
    /// An empty white canvas.
    pub fn new(width: f64, height: f64) -> Self {
        let mut svg = Svg {
            width,
            height,
            body: String::new(),
        };
        svg.rect(0.0, 0.0, width, height, "#ffffff", None);
        svg
    }

    /// A filled rectangle, with a tooltip when `title` is given.
    pub fn rect(&mut self, x: f64, y: f64, w: f64, h: f64, fill: &str, title: Option<&str>) {
        let _ = write!(
            self.body,
            r#"<rect x="{x:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{}""#,
            w.max(0.0),
            h.max(0.0),
            escape(fill)
        );
        match title {
            Some(t) => {
                let _ = writeln!(self.body, "><title>{}</title></rect>", escape(t));
            }
            None => self.body.push_str("/>\n"),
        }
    }

    /// A line.
    pub fn line(&mut self, x1: f64, y1: f64, x2: f64, y2: f64, stroke: &str, dashed: bool) {
        let dash = if dashed {
            r#" stroke-dasharray="4 3""#
        } else {
            ""
        };
        let _ = writeln!(
            self.body,
            r#"<line x1="{x1:.1}" y1="{y1:.1}" x2="{x2:.1}" y2="{y2:.1}" stroke="{}" stroke-width="1"{dash}/>"#,
            escape(stroke)
        );
    }

    /// Text; `anchor` is `start`, `middle` or `end`; `rotate` turns it about its anchor point.
    pub fn text(&mut self, x: f64, y: f64, size: f64, anchor: &str, rotate: f64, text: &str) {
        let transform = if rotate == 0.0 {
            String::new()
        } else {
            format!(r#" transform="rotate({rotate:.0} {x:.1} {y:.1})""#)
        };
        let _ = writeln!(
            self.body,
            r#"<text x="{x:.1}" y="{y:.1}" font-size="{size:.0}" text-anchor="{}"{transform}>{}</text>"#,
            escape(anchor),
            escape(text)
        );
    }

    /// The document.
    pub fn finish(self) -> String {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" \
             width=\"{w:.0}\" height=\"{h:.0}\" viewBox=\"0 0 {w:.0} {h:.0}\" \
             font-family=\"sans-serif\">\n{}</svg>\n",
            self.body,
            w = self.width,
            h = self.height
        )
    }
}

/// One series of a grouped bar chart.
#[derive(Clone, Debug)]
pub struct Series {
    /// Legend name.
    pub name: String,
    /// Fill colour.
    pub color: String,
    /// One value per category; `None` draws a "miss" mark.
    pub values: Vec<Option<f64>>,
}

/// A grouped bar chart: one group per category, one bar per series, with an optional dashed
/// target line.
pub fn bar_chart(
    title: &str,
    y_label: &str,
    categories: &[String],
    series: &[Series],
    target: Option<(f64, &str)>,
    y_max: Option<f64>,
) -> String {
    let (left, right, top, bottom) = (60.0, 20.0, 50.0, 110.0);
    let group_w = (600.0 / categories.len().max(1) as f64).clamp(28.0, 90.0);
    let plot_w = group_w * categories.len().max(1) as f64;
    let plot_h = 260.0;
    let width = left + plot_w + right;
    let height = top + plot_h + bottom;
    let data_max = series
        .iter()
        .flat_map(|s| s.values.iter().flatten().copied())
        .chain(target.map(|t| t.0))
        .fold(0.0_f64, f64::max);
    let max = y_max.unwrap_or_else(|| nice_ceiling(data_max));
    let y = |v: f64| top + plot_h - (v / max).clamp(0.0, 1.0) * plot_h;

    let mut svg = Svg::new(width.max(360.0), height);
    svg.text(left, 22.0, 15.0, "start", 0.0, title);
    // Legend.
    let mut lx = left;
    for s in series {
        svg.rect(lx, 30.0, 10.0, 10.0, &s.color, None);
        svg.text(lx + 14.0, 39.0, 11.0, "start", 0.0, &s.name);
        lx += 24.0 + 7.0 * s.name.len() as f64;
    }
    // Axes and grid.
    for i in 0..=4 {
        let v = max * f64::from(i) / 4.0;
        svg.line(left, y(v), left + plot_w, y(v), "#dddddd", false);
        svg.text(left - 6.0, y(v) + 4.0, 10.0, "end", 0.0, &format_tick(v));
    }
    svg.line(left, top, left, top + plot_h, "#333333", false);
    svg.line(
        left,
        top + plot_h,
        left + plot_w,
        top + plot_h,
        "#333333",
        false,
    );
    svg.text(16.0, top + plot_h / 2.0, 11.0, "middle", -90.0, y_label);
    if let Some((value, label)) = target {
        svg.line(left, y(value), left + plot_w, y(value), "#cc0000", true);
        svg.text(left + plot_w, y(value) - 4.0, 10.0, "end", 0.0, label);
    }
    let bars = series.len().max(1) as f64;
    let bar_w = (group_w - 8.0) / bars;
    for (ci, category) in categories.iter().enumerate() {
        let gx = left + ci as f64 * group_w + 4.0;
        for (si, s) in series.iter().enumerate() {
            let x = gx + si as f64 * bar_w;
            match s.values.get(ci).copied().flatten() {
                Some(v) => {
                    let tip = format!("{category}: {} {}", s.name, format_tick(v));
                    svg.rect(
                        x,
                        y(v),
                        bar_w - 1.0,
                        top + plot_h - y(v),
                        &s.color,
                        Some(&tip),
                    );
                }
                None => svg.text(
                    x + bar_w / 2.0,
                    top + plot_h - 4.0,
                    9.0,
                    "middle",
                    -90.0,
                    "miss",
                ),
            }
        }
        svg.text(
            gx + group_w / 2.0,
            top + plot_h + 12.0,
            10.0,
            "end",
            -45.0,
            category,
        );
    }
    svg.finish()
}

/// One lane of a timeline with its intervals (seconds from the start, label, colour).
#[derive(Clone, Debug)]
pub struct Lane {
    /// Lane name.
    pub name: String,
    /// `(start_s, end_s, label, colour)`.
    pub intervals: Vec<(f64, f64, String, String)>,
}

/// A timeline: one row per lane, time on the x axis.
pub fn timeline(title: &str, total_s: f64, lanes: &[Lane]) -> String {
    let (left, right, top) = (110.0, 20.0, 40.0);
    let plot_w = 900.0;
    let lane_h = 34.0;
    let height = top + lane_h * lanes.len() as f64 + 40.0;
    let total = total_s.max(1.0);
    let x = |s: f64| left + (s / total).clamp(0.0, 1.0) * plot_w;
    let mut svg = Svg::new(left + plot_w + right, height);
    svg.text(left, 22.0, 15.0, "start", 0.0, title);
    for (i, lane) in lanes.iter().enumerate() {
        let ly = top + i as f64 * lane_h;
        svg.text(
            left - 8.0,
            ly + lane_h / 2.0 + 4.0,
            11.0,
            "end",
            0.0,
            &lane.name,
        );
        svg.line(
            left,
            ly + lane_h - 2.0,
            left + plot_w,
            ly + lane_h - 2.0,
            "#eeeeee",
            false,
        );
        for (start, end, label, color) in &lane.intervals {
            let w = (x(*end) - x(*start)).max(2.0);
            svg.rect(x(*start), ly + 4.0, w, lane_h - 10.0, color, Some(label));
        }
    }
    let axis_y = top + lane_h * lanes.len() as f64 + 4.0;
    svg.line(left, axis_y, left + plot_w, axis_y, "#333333", false);
    let step = nice_ceiling(total / 10.0);
    let mut t = 0.0;
    while t <= total {
        svg.line(x(t), axis_y, x(t), axis_y + 4.0, "#333333", false);
        svg.text(
            x(t),
            axis_y + 16.0,
            10.0,
            "middle",
            0.0,
            &format!("{t:.0}s"),
        );
        t += step;
    }
    svg.finish()
}

/// 1, 2 or 5 times a power of ten, at least `v` (and at least 1).
fn nice_ceiling(v: f64) -> f64 {
    if !(v.is_finite() && v > 1.0) {
        return 1.0;
    }
    let magnitude = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|c| *c >= v)
        .unwrap_or(10.0 * magnitude)
}

fn format_tick(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Checks that `doc` is well-formed XML as far as SVG output goes: one root, balanced and
    /// properly nested tags, quoted attributes, only known entities; returns the element names
    /// in document order.
    pub(crate) fn well_formed(doc: &str) -> Result<Vec<String>, String> {
        let mut rest = doc.trim_start();
        if let Some(after) = rest.strip_prefix("<?xml") {
            let end = after.find("?>").ok_or("unterminated declaration")?;
            rest = &after[end + 2..];
        }
        let mut stack: Vec<String> = Vec::new();
        let mut names = Vec::new();
        let mut roots = 0;
        while !rest.is_empty() {
            let Some(lt) = rest.find('<') else {
                check_text(rest)?;
                if !rest.trim().is_empty() {
                    return Err("text after the root".into());
                }
                break;
            };
            check_text(&rest[..lt])?;
            if stack.is_empty() && !rest[..lt].trim().is_empty() {
                return Err("text outside the root".into());
            }
            let gt = rest[lt..].find('>').ok_or("unterminated tag")? + lt;
            let tag = &rest[lt + 1..gt];
            rest = &rest[gt + 1..];
            if let Some(name) = tag.strip_prefix('/') {
                match stack.pop() {
                    Some(open) if open == name.trim() => {}
                    other => return Err(format!("</{name}> closes {other:?}")),
                }
                continue;
            }
            let self_closing = tag.ends_with('/');
            let tag = tag.trim_end_matches('/');
            let name: String = tag.chars().take_while(|c| !c.is_whitespace()).collect();
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                return Err(format!("bad element name in <{tag}>"));
            }
            let attrs = &tag[name.len()..];
            if !attrs.matches('"').count().is_multiple_of(2) {
                return Err(format!("unbalanced quotes in <{tag}>"));
            }
            for part in attrs.split('"').step_by(2) {
                if part.contains('<') || part.contains('&') {
                    return Err(format!("bad attribute syntax in <{tag}>"));
                }
            }
            for value in attrs.split('"').skip(1).step_by(2) {
                check_text(value)?;
            }
            if stack.is_empty() {
                roots += 1;
            }
            names.push(name.clone());
            if !self_closing {
                stack.push(name);
            }
        }
        if !stack.is_empty() {
            return Err(format!("unclosed {stack:?}"));
        }
        if roots != 1 {
            return Err(format!("{roots} root elements"));
        }
        Ok(names)
    }

    fn check_text(text: &str) -> Result<(), String> {
        if text.contains('<') {
            return Err("raw < in text".into());
        }
        let mut rest = text;
        while let Some(amp) = rest.find('&') {
            let after = &rest[amp..];
            let ok = ["&amp;", "&lt;", "&gt;", "&quot;", "&apos;"]
                .iter()
                .any(|e| after.starts_with(e));
            if !ok {
                return Err(format!("bad entity at {:?}", &after[..after.len().min(8)]));
            }
            rest = &after[1..];
        }
        Ok(())
    }

    #[test]
    fn the_checker_refuses_broken_documents() {
        assert!(well_formed("<svg><g></svg></g>").is_err());
        assert!(well_formed("<svg><text>a < b</text></svg>").is_err());
        assert!(well_formed("<svg><text>a & b</text></svg>").is_err());
        assert!(well_formed("<svg x=\"1></svg>").is_err());
        assert!(well_formed("<svg/><svg/>").is_err());
        assert!(well_formed("<svg><rect/></svg>").is_ok());
    }

    #[test]
    fn bar_chart_has_one_bar_per_value_and_marks_misses() {
        let categories = vec![
            "#1 inventory errors".to_owned(),
            "#2 a<b & \"c\"".to_owned(),
        ];
        let series = vec![
            Series {
                name: "detect".into(),
                color: "#4477aa".into(),
                values: vec![Some(12.0), None],
            },
            Series {
                name: "localize".into(),
                color: "#ee6677".into(),
                values: vec![Some(20.5), Some(44.0)],
            },
        ];
        let doc = bar_chart(
            "Time to detect and localize",
            "seconds",
            &categories,
            &series,
            Some((30.0, "target 30 s")),
            None,
        );
        let names = well_formed(&doc).unwrap_or_else(|e| panic!("{e}\n{doc}"));
        // Background, two legend swatches, three bars.
        assert_eq!(names.iter().filter(|n| *n == "rect").count(), 6);
        assert_eq!(doc.matches("<title>").count(), 3);
        assert!(doc.contains("<title>#1 inventory errors: localize 20.5</title>"));
        assert!(doc.contains(">miss</text>"));
        assert!(doc.contains("a&lt;b &amp; &quot;c&quot;"));
        assert!(doc.contains("target 30 s"));
        assert!(doc.contains("stroke-dasharray"));
    }

    #[test]
    fn timeline_draws_every_interval() {
        let lanes = vec![
            Lane {
                name: "faults".into(),
                intervals: vec![
                    (60.0, 120.0, "#1 inventory errors".into(), "#ee6677".into()),
                    (200.0, 260.0, "#2 payment latency".into(), "#ee6677".into()),
                ],
            },
            Lane {
                name: "incidents".into(),
                intervals: vec![(70.0, 140.0, "incident 1".into(), "#4477aa".into())],
            },
        ];
        let doc = timeline("Faults and incidents", 300.0, &lanes);
        well_formed(&doc).unwrap_or_else(|e| panic!("{e}\n{doc}"));
        assert_eq!(doc.matches("<title>").count(), 3);
        assert!(doc.contains(">faults</text>") && doc.contains(">incidents</text>"));
        assert!(doc.contains(">300s</text>") || doc.contains(">250s</text>"));
    }

    #[test]
    fn ticks_are_round() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(7.0), 10.0);
        assert_eq!(nice_ceiling(31.0), 50.0);
        assert_eq!(nice_ceiling(120.0), 200.0);
    }
}

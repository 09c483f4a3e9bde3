//! The series charts' axis labels: every magnitude fits the left margin.

use super::{axis_label, chart, Series, CHART_PAD};

#[test]
fn axis_labels_are_short_and_round_to_three_digits() {
    for (v, want) in [
        (0, "0"),
        (9_999, "9999"),
        (10_000, "10k"),
        (12_345, "12.3k"),
        (99_949, "99.9k"),
        (99_950, "100k"),
        (266_809, "267k"),
        (999_499, "999k"),
        (999_500, "1M"),
        (1_234_567, "1.23M"),
        (41_352_330, "41.4M"),
        (u64::MAX, "18.4E"),
    ] {
        assert_eq!(axis_label(v), want, "{v}");
    }
    let mut v = 1u64;
    while let Some(n) = v.checked_mul(3) {
        assert!(axis_label(v).len() <= 5, "{v} -> {}", axis_label(v));
        v = n;
    }
}

/// The y-axis label of a chart whose maximum is 266,809 (the 100 M-record capture's, drawn
/// as "66809" with its first digit cut off) lies inside the SVG's viewBox. The label is
/// right-aligned at `x`; its width is bounded by the widest glyph of the 10 px font (a digit
/// or suffix of a sans-serif face is at most 0.62 em; 0.7 em is kept as margin).
#[test]
fn y_axis_label_of_a_six_digit_maximum_is_inside_the_view_box() {
    for max in [266_809u64, 9_999, 1_234_567_890, u64::MAX] {
        let s = Series {
            counter: "evictions".into(),
            title: "Evictions".into(),
            points: vec![vec![(0, 0), (10, max)], vec![(0, 0), (10, max / 2)]],
        };
        let svg = chart(&s, &["reference".into(), "lookaround".into()], 10);
        let label = axis_label(max);
        let needle = format!("\">{label}<title>{max}</title></text>");
        let end = svg
            .find(&needle)
            .unwrap_or_else(|| panic!("{needle} in {svg}"));
        let x: f64 = svg[..end]
            .rsplit("<text x=\"")
            .next()
            .and_then(|t| t.split('"').next())
            .and_then(|x| x.parse().ok())
            .expect("the label's x");
        let width = label.chars().count() as f64 * 0.7 * 10.0;
        assert!(
            x - width >= 0.0,
            "label {label:?} at x={x} is {width} px wide"
        );
        assert!(x < CHART_PAD, "right of the axis");
    }
}

//! The M4 promise, checked against brute force: in every pixel column of every view,
//! the downsampled rows have the same first and last row, the same minimum and maximum,
//! and the same "holds a NaN" as the full data.

use plotwire_lod::{downsample, Pyramid, Slices, Span, XIndex, BASE_ROWS};
use proptest::prelude::*;

/// What one pixel column of one series looks like.
#[derive(Debug, PartialEq)]
struct Column {
    first: u64,
    last: u64,
    min: Option<f64>,
    max: Option<f64>,
    nan: bool,
}

fn columns(x: &[f64], y: &[f64], first: u64, rows: &[u64], span: Span) -> Vec<Option<Column>> {
    let w = (span.x1 - span.x0) / f64::from(span.columns);
    let mut out: Vec<Option<Column>> = (0..span.columns).map(|_| None).collect();
    for &r in rows {
        let at = (r - first) as usize;
        let xv = x[at];
        if xv < span.x0 || xv > span.x1 {
            continue;
        }
        // The same edges as the downsampler: the first column whose next edge is past x.
        let mut c = ((xv - span.x0) / w) as usize;
        c = c.min(span.columns as usize - 1);
        let edge = |c: usize| span.x0 + (span.x1 - span.x0) * c as f64 / f64::from(span.columns);
        while c + 1 < span.columns as usize && xv >= edge(c + 1) {
            c += 1;
        }
        while c > 0 && xv < edge(c) {
            c -= 1;
        }
        let yv = y[at];
        let col = out[c].get_or_insert(Column {
            first: r,
            last: r,
            min: None,
            max: None,
            nan: false,
        });
        col.last = r;
        if yv.is_nan() {
            col.nan = true;
        } else {
            col.min = Some(col.min.map_or(yv, |m: f64| m.min(yv)));
            col.max = Some(col.max.map_or(yv, |m: f64| m.max(yv)));
        }
    }
    out
}

#[derive(Debug, Clone)]
struct Case {
    steps: Vec<f64>,
    ys: Vec<f64>,
    appends: Vec<usize>,
    dropped: usize,
    spans: Vec<(f64, f64, u32)>,
}

fn value() -> impl Strategy<Value = f64> {
    prop_oneof![
        8 => -1e3..1e3f64,
        1 => Just(f64::NAN),
        1 => Just(7.0),
        1 => prop_oneof![Just(f64::INFINITY), Just(f64::NEG_INFINITY)],
    ]
}

fn case() -> impl Strategy<Value = Case> {
    (1usize..3000).prop_flat_map(|n| {
        (
            proptest::collection::vec(prop_oneof![3 => 0.0..2.0f64, 1 => Just(0.0)], n),
            proptest::collection::vec(value(), n),
            proptest::collection::vec(1usize..700, 1..6),
            0..n,
            proptest::collection::vec((-200.0..3200.0f64, 0.0..2000.0f64, 1u32..300), 1..4),
        )
            .prop_map(|(steps, ys, appends, dropped, spans)| Case {
                steps,
                ys,
                appends,
                dropped,
                spans,
            })
    })
}

fn check(case: &Case) -> Result<(), TestCaseError> {
    let n = case.ys.len();
    let mut x = Vec::with_capacity(n);
    let mut at = 0.0;
    for s in &case.steps {
        at += s;
        x.push(at);
    }
    let ys = &case.ys;
    let mut p = Pyramid::new(0, 0);
    let mut index = XIndex::new(0);
    let mut end = 0;
    for a in case.appends.iter().cycle() {
        end = (end + a).min(n);
        let raw = Slices {
            x: &x,
            ys: &[ys],
            first: 0,
        };
        p.append(&raw, end as u64);
        index.append(&raw, end as u64);
        if end == n {
            break;
        }
    }
    let first = case.dropped as u64;
    p.drop_front(first);
    index.drop_front(first);
    let kept_x = &x[case.dropped..];
    let kept_y = &ys[case.dropped..];
    let raw = Slices {
        x: kept_x,
        ys: &[kept_y],
        first,
    };
    let all: Vec<u64> = (first..n as u64).collect();
    let mut spans: Vec<Span> = case
        .spans
        .iter()
        .map(|&(x0, len, columns)| Span {
            x0,
            x1: x0 + len,
            columns,
        })
        .collect();
    spans.sort_by(|a, b| a.x0.total_cmp(&b.x0));
    let mut rows = Vec::new();
    downsample(&raw, &index, &[&p], &spans, &mut rows);
    prop_assert!(rows.windows(2).all(|w| w[0] < w[1]), "rows increase");
    prop_assert!(
        rows.iter().all(|r| (first..n as u64).contains(r)),
        "rows are kept rows"
    );
    for span in &spans {
        let full = columns(kept_x, kept_y, first, &all, *span);
        let down = columns(kept_x, kept_y, first, &rows, *span);
        for (c, (f, d)) in full.iter().zip(&down).enumerate() {
            prop_assert_eq!(f, d, "column {} of {:?}", c, span);
        }
        let in_span = full.iter().flatten().count() as u64;
        prop_assert!(
            in_span == 0 || rows.len() as u64 <= all.len() as u64,
            "never more rows than the data"
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn every_pixel_column_keeps_its_first_last_min_max_and_nan(case in case()) {
        check(&case)?;
    }
}

fn one_span(x: Vec<f64>, ys: Vec<f64>, span: Span) -> Result<(), TestCaseError> {
    let n = ys.len();
    check(&Case {
        steps: std::iter::once(x[0])
            .chain(x.windows(2).map(|w| w[1] - w[0]))
            .collect(),
        ys,
        appends: vec![n.max(1)],
        dropped: 0,
        spans: vec![(span.x0, span.x1 - span.x0, span.columns)],
    })
}

#[test]
fn edge_cases() {
    let span = Span {
        x0: 0.0,
        x1: 100.0,
        columns: 10,
    };
    // A single point.
    one_span(vec![5.0], vec![1.0], span).unwrap();
    // All equal, many per column.
    let n = 20 * BASE_ROWS as usize;
    let x: Vec<f64> = (0..n).map(|i| i as f64 * 100.0 / n as f64).collect();
    one_span(x.clone(), vec![3.0; n], span).unwrap();
    // A run of NaN across many buckets.
    let ys: Vec<f64> = (0..n)
        .map(|i| {
            if (1000..3000).contains(&i) {
                f64::NAN
            } else {
                i as f64
            }
        })
        .collect();
    one_span(x.clone(), ys, span).unwrap();
    // Ranges past either end, and one that misses the data.
    let ys: Vec<f64> = (0..n).map(|i| ((i * 31) % 97) as f64).collect();
    for (x0, x1) in [(-50.0, 50.0), (50.0, 500.0), (-1e6, 1e6), (200.0, 300.0)] {
        one_span(
            x.clone(),
            ys.clone(),
            Span {
                x0,
                x1,
                columns: 37,
            },
        )
        .unwrap();
    }
}

#[test]
fn a_wide_view_of_many_rows_sends_about_four_rows_per_column() {
    let n = 1_000_000usize;
    let x: Vec<f64> = (0..n).map(|i| i as f64).collect();
    let mut y = Vec::with_capacity(n);
    let mut v = 0.0f64;
    for i in 0..n {
        v += (((i * 2654435761) % 1000) as f64 - 499.5) / 100.0;
        y.push(v);
    }
    let mut p = Pyramid::new(0, 0);
    let raw = Slices {
        x: &x,
        ys: &[&y],
        first: 0,
    };
    p.append(&raw, n as u64);
    let mut index = XIndex::new(0);
    index.append(&raw, n as u64);
    let mut rows = Vec::new();
    let columns = 2000;
    downsample(
        &raw,
        &index,
        &[&p],
        &[Span {
            x0: 0.0,
            x1: n as f64,
            columns,
        }],
        &mut rows,
    );
    assert!(rows.len() <= 4 * columns as usize, "{} rows", rows.len());
    assert!(rows.len() >= 2 * columns as usize, "{} rows", rows.len());
    // Zoomed in far enough: the raw rows.
    rows.clear();
    downsample(
        &raw,
        &index,
        &[&p],
        &[Span {
            x0: 1000.0,
            x1: 2000.0,
            columns,
        }],
        &mut rows,
    );
    assert_eq!(rows, (1000..=2000).collect::<Vec<u64>>());
}

//! Colours: checking colour strings, and the built-in palettes.

use crate::error::SpecError;
use crate::spec::Palette;

/// The most colours a palette may have.
pub const MAX_PALETTE: usize = 256;

/// The series colours used when a spec gives none (the d3 "category10" set).
const CATEGORY10: [&str; 10] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf",
];

/// Colour maps as evenly spaced anchors, interpolated linearly to the size asked for
/// (the anchors are samples of the matplotlib colour maps of the same names).
const MAPS: [(&str, &[u32]); 5] = [
    (
        "viridis",
        &[
            0x440154, 0x472d7b, 0x3b528b, 0x2c728e, 0x21918c, 0x28ae80, 0x5ec962, 0xaddc30,
            0xfde725,
        ],
    ),
    (
        "magma",
        &[
            0x000004, 0x1c1044, 0x4f127b, 0x812581, 0xb5367a, 0xe55064, 0xfb8761, 0xfec287,
            0xfcfdbf,
        ],
    ),
    (
        "inferno",
        &[
            0x000004, 0x1f0c48, 0x550f6d, 0x88226a, 0xba3655, 0xe35933, 0xf98e09, 0xf9cb35,
            0xfcffa4,
        ],
    ),
    (
        "plasma",
        &[
            0x0d0887, 0x46039f, 0x7201a8, 0x9c179e, 0xbd3786, 0xd8576b, 0xed7953, 0xfb9f3a,
            0xfdca26, 0xf0f921,
        ],
    ),
    ("greys", &[0x000000, 0xffffff]),
];

/// CSS colour names accepted besides `#rgb`, `#rrggbb` and `#rrggbbaa`.
const NAMED: [&str; 24] = [
    "black",
    "white",
    "red",
    "green",
    "blue",
    "orange",
    "purple",
    "gray",
    "grey",
    "yellow",
    "cyan",
    "magenta",
    "brown",
    "pink",
    "navy",
    "teal",
    "olive",
    "maroon",
    "lime",
    "silver",
    "gold",
    "indigo",
    "crimson",
    "steelblue",
];

/// Checks a colour string; `path` names the field in the error.
pub fn check_color(path: &str, color: &str) -> Result<(), SpecError> {
    let hex_ok = color
        .strip_prefix('#')
        .is_some_and(|h| matches!(h.len(), 3 | 6 | 8) && h.chars().all(|c| c.is_ascii_hexdigit()));
    if hex_ok || NAMED.contains(&color) {
        Ok(())
    } else {
        Err(SpecError::invalid(
            path,
            format!(
                "\"{color}\" is not a colour (#rrggbb, #rgb, #rrggbbaa or one of {})",
                NAMED.join(", ")
            ),
        ))
    }
}

/// The colours of `palette` (`path` names the field in errors). A named colour map gives
/// `default_size` colours unless the name says `name:N`; `category10` gives its ten.
pub fn resolve(
    path: &str,
    palette: &Palette,
    default_size: usize,
) -> Result<Vec<String>, SpecError> {
    match palette {
        Palette::Colors(colors) => {
            if colors.is_empty() || colors.len() > MAX_PALETTE {
                return Err(SpecError::invalid(
                    path,
                    format!(
                        "a palette has 1 to {MAX_PALETTE} colours, not {}",
                        colors.len()
                    ),
                ));
            }
            for (i, c) in colors.iter().enumerate() {
                check_color(&format!("{path}.{i}"), c)?;
            }
            Ok(colors.clone())
        }
        Palette::Named(spec) => {
            let (name, size) = match spec.split_once(':') {
                Some((name, n)) => match n.parse::<usize>() {
                    Ok(n) if (2..=MAX_PALETTE).contains(&n) => (name, n),
                    _ => {
                        return Err(SpecError::invalid(
                            path,
                            format!("palette size \"{n}\" is not a number from 2 to {MAX_PALETTE}"),
                        ))
                    }
                },
                None => (spec.as_str(), default_size),
            };
            if name == "category10" {
                return Ok(CATEGORY10.iter().map(|c| (*c).to_owned()).collect());
            }
            match MAPS.iter().find(|(n, _)| *n == name) {
                Some((_, anchors)) => Ok(interpolate(anchors, size)),
                None => Err(SpecError::invalid(
                    path,
                    format!(
                        "unknown palette \"{name}\" (one of category10, {})",
                        MAPS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
                    ),
                )),
            }
        }
    }
}

/// The default colour of series `i`.
pub fn series_color(i: usize) -> &'static str {
    CATEGORY10[i % CATEGORY10.len()]
}

/// `size` colours evenly spaced along the anchors.
fn interpolate(anchors: &[u32], size: usize) -> Vec<String> {
    let last = anchors.len().saturating_sub(1);
    (0..size)
        .map(|i| {
            let t = if size > 1 {
                i as f64 / (size - 1) as f64
            } else {
                0.0
            } * last as f64;
            let lo = (t.floor() as usize).min(last);
            let hi = (lo + 1).min(last);
            let f = t - lo as f64;
            let channel = |shift: u32| {
                let a = f64::from((anchors[lo] >> shift) & 0xff);
                let b = f64::from((anchors[hi] >> shift) & 0xff);
                (a + (b - a) * f).round() as u32
            };
            format!("#{:02x}{:02x}{:02x}", channel(16), channel(8), channel(0))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_maps_interpolate_between_their_ends() {
        let v = resolve("p", &Palette::Named("viridis:3".into()), 256).unwrap();
        assert_eq!(v, ["#440154", "#21918c", "#fde725"]);
        let g = resolve("p", &Palette::Named("greys".into()), 256).unwrap();
        assert_eq!(
            (g.len(), g[0].as_str(), g[255].as_str()),
            (256, "#000000", "#ffffff")
        );
    }

    #[test]
    fn bad_palettes_and_colours_are_named() {
        let e = resolve("plots.a.palette", &Palette::Named("jet".into()), 8).unwrap_err();
        assert_eq!(e.path(), "plots.a.palette");
        assert!(e.message().contains("\"jet\""), "{e}");
        let e = resolve(
            "p",
            &Palette::Colors(vec!["#fff".into(), "blurple".into()]),
            8,
        )
        .unwrap_err();
        assert_eq!(e.path(), "p.1");
        assert!(check_color("c", "#12345").is_err());
        assert!(check_color("c", "#a0b0c0").is_ok());
    }
}

//! Which BokehJS bundles a page loads for a document.
//!
//! What each BokehJS 3.9.2 bundle brings (read from the embedded bundles: the model names each
//! one registers, and what BokehJS does when an optional one is absent):
//!
//! | bundle | size (gzipped) | models | when it is absent |
//! |---|---|---|---|
//! | `bokeh` | 1.27 MB (351 kB) | every other model (plots, glyphs, `TeX`, ...) | nothing works |
//! | `bokeh-gl` | 194 kB (56 kB) | none: the WebGL glyph code | `output_backend="webgl"` plots fall back to canvas |
//! | `bokeh-widgets` | 382 kB (101 kB) | [`WIDGET_MODELS`] | a document holding one fails: "Model 'Slider' does not exist" |
//! | `bokeh-tables` | 302 kB (87 kB) | [`TABLE_MODELS`] | the same, for `DataTable` and its columns |
//! | `bokeh-mathjax` | 1.79 MB (616 kB) | none: MathJax itself | math text is drawn as its source text, shortened |
//!
//! The rule ([`for_page`]):
//! - A document without roots (a Bokeh session page loaded before its producer pushed) gets
//!   every bundle, as Bokeh's own server page does: nothing is known of what will come.
//! - Otherwise `bokeh` and what the document needs now load before the document renders.
//!   `bokeh-widgets` and `bokeh-tables`, when not needed yet, load *after* it has rendered
//!   ([`PageBundles::later`]): a widget or a table can be added later by a PATCH-DOC (or a
//!   producer's replace), and a page without its bundle would then fail, but the two cost
//!   about 180 ms of script time in Chromium, which the first render no longer waits for.
//!   The page preloads them alongside the others, so they run from the memory cache right
//!   after the first frame; a widget that arrives in that gap of a few milliseconds is the
//!   one case that still fails (a reload shows it).
//! - `bokeh-gl` only when a model has `output_backend == "webgl"`, and `bokeh-mathjax` only when
//!   the document holds math text (see [`needed_by`]). Leaving them out is safe: a WebGL plot or
//!   a TeX label added later still renders, on canvas or as plain text, and a reload gives the
//!   full rendering. `bokeh-mathjax` alone costs about 300 ms of script time and 616 kB.
//! - A model from an extension (a qualified type name outside `bokeh.`) gets every bundle: its
//!   classes may derive from any of them.
//!
//! `autoload.js` follows the same rule. When another embed on the host page has already loaded
//! BokehJS, it loads no more bundles, so its math text or WebGL plot degrades as above.

use plotwire_document::Document;
use plotwire_protocol::value::Value;

/// The models `bokeh-widgets` 3.9.2 registers.
pub const WIDGET_MODELS: [&str; 44] = [
    "AbstractButton",
    "AutocompleteInput",
    "Button",
    "CategoricalSlider",
    "Checkbox",
    "CheckboxButtonGroup",
    "CheckboxGroup",
    "ColorPicker",
    "DatePicker",
    "DateRangePicker",
    "DateRangeSlider",
    "DateSlider",
    "DatetimePicker",
    "DatetimeRangePicker",
    "DatetimeRangeSlider",
    "Div",
    "Dropdown",
    "FileInput",
    "HelpButton",
    "InputWidget",
    "Markdown",
    "Markup",
    "MultiChoice",
    "MultiSelect",
    "MultipleDatePicker",
    "MultipleDatetimePicker",
    "NumericInput",
    "PaletteSelect",
    "Paragraph",
    "PasswordInput",
    "PreText",
    "Progress",
    "RadioButtonGroup",
    "RadioGroup",
    "RangeSlider",
    "Select",
    "Slider",
    "Spinner",
    "Switch",
    "TextAreaInput",
    "TextInput",
    "TimePicker",
    "Toggle",
    "Widget",
];

/// The models `bokeh-tables` 3.9.2 registers.
pub const TABLE_MODELS: [&str; 26] = [
    "AvgAggregator",
    "BooleanFormatter",
    "CellEditor",
    "CellFormatter",
    "CheckboxEditor",
    "DataCube",
    "DataTable",
    "DateEditor",
    "DateFormatter",
    "GroupingInfo",
    "HTMLTemplateFormatter",
    "IntEditor",
    "MaxAggregator",
    "MinAggregator",
    "NumberEditor",
    "NumberFormatter",
    "PercentEditor",
    "ScientificFormatter",
    "SelectEditor",
    "StringEditor",
    "StringFormatter",
    "SumAggregator",
    "TableColumn",
    "TableWidget",
    "TextEditor",
    "TimeEditor",
];

/// The core models whose rendering needs MathJax (`MathText` and `MathTextGlyph` and their
/// subclasses).
pub const MATH_MODELS: [&str; 6] = [
    "MathText",
    "TeX",
    "MathML",
    "Ascii",
    "TeXGlyph",
    "MathMLGlyph",
];

/// The optional bundles a page loads; `bokeh` itself is always loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BundleSet {
    /// `bokeh-gl`.
    pub gl: bool,
    /// `bokeh-widgets`.
    pub widgets: bool,
    /// `bokeh-tables`.
    pub tables: bool,
    /// `bokeh-mathjax`.
    pub mathjax: bool,
}

impl BundleSet {
    /// Every bundle, as Bokeh's server page lists them.
    pub const ALL: BundleSet = BundleSet {
        gl: true,
        widgets: true,
        tables: true,
        mathjax: true,
    };

    /// No optional bundle (`bokeh` alone).
    pub const NONE: BundleSet = BundleSet {
        gl: false,
        widgets: false,
        tables: false,
        mathjax: false,
    };

    /// Whether the bundle called `name` (e.g. `"bokeh-widgets"`) is in the set; `"bokeh"` always
    /// is, an unknown name never.
    pub fn contains(&self, name: &str) -> bool {
        match name {
            "bokeh" => true,
            "bokeh-gl" => self.gl,
            "bokeh-widgets" => self.widgets,
            "bokeh-tables" => self.tables,
            "bokeh-mathjax" => self.mathjax,
            _ => false,
        }
    }

    /// Both sets' bundles.
    pub fn union(self, other: BundleSet) -> BundleSet {
        BundleSet {
            gl: self.gl || other.gl,
            widgets: self.widgets || other.widgets,
            tables: self.tables || other.tables,
            mathjax: self.mathjax || other.mathjax,
        }
    }
}

/// The bundles of a page: those it loads before it renders, and those after.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PageBundles {
    /// Loaded before the document renders.
    pub now: BundleSet,
    /// Loaded once it has rendered (never one of `now`'s).
    pub later: BundleSet,
}

impl PageBundles {
    /// Every bundle, all before the render, as Bokeh's server page lists them.
    pub const ALL: PageBundles = PageBundles {
        now: BundleSet::ALL,
        later: BundleSet::NONE,
    };

    /// Both groups together.
    pub fn all(&self) -> BundleSet {
        self.now.union(self.later)
    }
}

/// The bundles a page of `doc` loads, by the rule in the module documentation.
pub fn for_page(doc: &Document) -> PageBundles {
    if doc.roots().is_empty() {
        return PageBundles::ALL;
    }
    let now = needed_by(doc);
    PageBundles {
        now,
        later: BundleSet {
            widgets: !now.widgets,
            tables: !now.tables,
            ..BundleSet::NONE
        },
    }
}

/// The bundles the models of `doc` need now:
/// - widgets and tables by type name;
/// - gl when a model's `output_backend` is `"webgl"`;
/// - mathjax for the math models, or for a string property (outside a source's `data`) holding
///   a pair of TeX delimiters: `$$...$$`, `\[...\]` or `\(...\)`. BokehJS typesets such strings
///   in axis labels, titles, slider titles and markup.
/// - everything for a model of an extension.
pub fn needed_by(doc: &Document) -> BundleSet {
    let mut set = BundleSet::default();
    for (_, model) in doc.models() {
        let name = model.name.as_str();
        if name.contains('.') && !name.starts_with("bokeh.") {
            return BundleSet::ALL;
        }
        set.widgets |= WIDGET_MODELS.contains(&name);
        set.tables |= TABLE_MODELS.contains(&name);
        set.mathjax |= MATH_MODELS.contains(&name);
        for (attr, value) in &model.attributes {
            match attr.as_str() {
                "data" => {}
                "output_backend" => set.gl |= matches!(value, Value::Str(s) if s == "webgl"),
                _ => set.mathjax = set.mathjax || has_tex(value),
            }
        }
        if set == BundleSet::ALL {
            break;
        }
    }
    set
}

/// Whether any string in `value` (nested lists and dicts included) holds a pair of TeX
/// delimiters.
fn has_tex(value: &Value) -> bool {
    match value {
        Value::Str(s) => contains_tex(s),
        Value::List(items) | Value::Set(items) => items.iter().any(has_tex),
        Value::Dict(fields) => fields.iter().any(|(_, v)| has_tex(v)),
        Value::Map(pairs) => pairs.iter().any(|(_, v)| has_tex(v)),
        _ => false,
    }
}

/// Whether `text` has `$$...$$`, `\[...\]` or `\(...\)` (the closing mark after the opening).
fn contains_tex(text: &str) -> bool {
    [("$$", "$$"), ("\\[", "\\]"), ("\\(", "\\)")]
        .iter()
        .any(|(open, close)| {
            text.find(open)
                .is_some_and(|at| text[at + open.len()..].contains(close))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use plotwire_protocol::codec::Buffers;
    use plotwire_protocol::event::decode_doc;

    /// A document from `(id, type name, attributes JSON)` triples; the first model is the root.
    fn doc(models: &[(&str, &str, serde_json::Value)]) -> Document {
        let roots: Vec<serde_json::Value> = models
            .iter()
            .take(1)
            .map(|(id, name, attrs)| {
                let mut refs: Vec<serde_json::Value> = Vec::new();
                for (other, other_name, other_attrs) in &models[1..] {
                    refs.push(serde_json::json!({
                        "type": "object", "name": other_name, "id": other, "attributes": other_attrs
                    }));
                }
                let mut attrs = attrs.clone();
                if let Some(map) = attrs.as_object_mut() {
                    map.insert("children".to_owned(), serde_json::Value::Array(refs));
                }
                serde_json::json!({"type": "object", "name": name, "id": id, "attributes": attrs})
            })
            .collect();
        let json = serde_json::json!({"version": "3.9.2", "title": "t", "roots": roots});
        match decode_doc(&json, &Buffers::new()).map(Document::from_doc_json) {
            Ok(Ok(d)) => d,
            other => panic!("test document does not load: {other:?}"),
        }
    }

    fn plot(attrs: serde_json::Value) -> (&'static str, &'static str, serde_json::Value) {
        ("p1", "Plot", attrs)
    }

    #[test]
    fn an_empty_document_gets_every_bundle() {
        assert_eq!(for_page(&Document::new()), PageBundles::ALL);
    }

    #[test]
    fn a_plot_gets_widgets_and_tables_after_it_renders_and_not_gl_or_mathjax() {
        let d = doc(&[
            plot(serde_json::json!({"output_backend": "canvas"})),
            (
                "a",
                "LinearAxis",
                serde_json::json!({"axis_label": "price in $"}),
            ),
            (
                "s",
                "ColumnDataSource",
                serde_json::json!({"data": {"x": ["$$a$$"]}}),
            ),
        ]);
        assert_eq!(needed_by(&d), BundleSet::default());
        let page = for_page(&d);
        assert_eq!(page.now, BundleSet::NONE);
        assert_eq!(
            page.later,
            BundleSet {
                widgets: true,
                tables: true,
                ..BundleSet::default()
            }
        );
        assert!(page.all().contains("bokeh") && !page.all().contains("bokeh-mathjax"));
    }

    #[test]
    fn webgl_plots_get_gl() {
        let d = doc(&[plot(serde_json::json!({"output_backend": "webgl"}))]);
        assert!(needed_by(&d).gl && !needed_by(&d).mathjax);
    }

    #[test]
    fn widgets_and_tables_are_found_by_name() {
        let d = doc(&[
            ("c", "Column", serde_json::json!({})),
            ("w", "Slider", serde_json::json!({"title": "x"})),
            ("t", "DataTable", serde_json::json!({})),
        ]);
        let needed = needed_by(&d);
        assert!(needed.widgets && needed.tables && !needed.gl && !needed.mathjax);
        let page = for_page(&d);
        assert_eq!(
            page.now, needed,
            "what the document needs loads before it renders"
        );
        assert_eq!(page.later, BundleSet::NONE);
    }

    #[test]
    fn math_models_and_tex_strings_get_mathjax() {
        let tex_model = doc(&[
            plot(serde_json::json!({})),
            ("m", "TeX", serde_json::json!({"text": "x"})),
        ]);
        assert!(for_page(&tex_model).now.mathjax);
        for label in ["$$x^2$$", "a \\[x\\] b", "\\(y\\)"] {
            let d = doc(&[
                plot(serde_json::json!({})),
                ("a", "LinearAxis", serde_json::json!({"axis_label": label})),
            ]);
            assert!(for_page(&d).now.mathjax, "{label}");
        }
        let overrides = doc(&[
            plot(serde_json::json!({})),
            (
                "a",
                "LinearAxis",
                serde_json::json!({"major_label_overrides": {"1": "$$\\pi$$"}}),
            ),
        ]);
        assert!(needed_by(&overrides).mathjax);
    }

    #[test]
    fn extension_models_get_every_bundle() {
        let d = doc(&[
            plot(serde_json::json!({})),
            ("e", "my_ext.Gauge", serde_json::json!({})),
        ]);
        assert_eq!(for_page(&d), PageBundles::ALL);
        let core = doc(&[
            plot(serde_json::json!({})),
            ("h", "bokeh.models.dom.HTML", serde_json::json!({})),
        ]);
        assert!(!for_page(&core).all().mathjax);
    }

    #[test]
    fn tex_delimiters_need_both_ends() {
        assert!(contains_tex("$$x$$"));
        assert!(contains_tex("a\n$$x\ny$$"));
        assert!(!contains_tex("$$x"));
        assert!(!contains_tex("$$$"));
        assert!(!contains_tex("costs $5 or $6"));
        assert!(!contains_tex("\\]x\\["));
        assert!(contains_tex("\\(\\)"));
    }
}

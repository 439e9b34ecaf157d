//! Builds one widget of the spec as its Bokeh model.

use serde_json::{json, Value};

use crate::error::SpecError;
use crate::model::{set_of, ModelRef, Models, Val};
use crate::spec::{ButtonType, WidgetKind, WidgetSpec};
use crate::validate::ResolvedColumns;

/// The event a button or toggle sends to the server.
pub const BUTTON_EVENTS: [&str; 1] = ["button_click"];

/// Adds widget `name` to `g`. `table_source` is the source model and columns of a data
/// table (`None` for other kinds).
pub fn build_widget(
    g: &mut Models,
    name: &str,
    w: &WidgetSpec,
    table_source: Option<(ModelRef, &ResolvedColumns)>,
) -> Result<ModelRef, SpecError> {
    let id = format!("widget:{name}");
    let mut attrs: Vec<(&'static str, Val)> = vec![("name", json!(name).into())];
    if let Some(width) = w.width {
        put(&mut attrs, "width", json!(width));
    }
    let start = w.start.unwrap_or(0.0);
    let end = w.end.unwrap_or(1.0);
    let title = w.title.clone().unwrap_or_default();
    let button_type = w.button_type.unwrap_or(ButtonType::Default);
    let kind = match w.kind {
        WidgetKind::Slider | WidgetKind::RangeSlider => {
            put(&mut attrs, "title", json!(title));
            put(&mut attrs, "start", json!(start));
            put(&mut attrs, "end", json!(end));
            put(
                &mut attrs,
                "step",
                json!(w.step.unwrap_or((end - start) / 100.0)),
            );
            if w.kind == WidgetKind::Slider {
                put(&mut attrs, "value", w.value.clone().unwrap_or(json!(start)));
                "Slider"
            } else {
                put(
                    &mut attrs,
                    "value",
                    w.value.clone().unwrap_or(json!([start, end])),
                );
                "RangeSlider"
            }
        }
        WidgetKind::Button | WidgetKind::Toggle => {
            put(
                &mut attrs,
                "label",
                json!(w.label.as_deref().unwrap_or(name)),
            );
            put(&mut attrs, "button_type", json!(button_type));
            if w.kind == WidgetKind::Toggle {
                put(
                    &mut attrs,
                    "active",
                    w.active.clone().unwrap_or(json!(false)),
                );
            }
            attrs.push(("subscribed_events", set_of(&BUTTON_EVENTS)));
            if w.kind == WidgetKind::Button {
                "Button"
            } else {
                "Toggle"
            }
        }
        WidgetKind::Select => {
            let options = w.options.clone().unwrap_or_default();
            let first = options.first().cloned().unwrap_or_default();
            put(&mut attrs, "title", json!(title));
            put(&mut attrs, "value", w.value.clone().unwrap_or(json!(first)));
            put(&mut attrs, "options", json!(options));
            "Select"
        }
        WidgetKind::TextInput => {
            put(&mut attrs, "title", json!(title));
            put(&mut attrs, "value", w.value.clone().unwrap_or(json!("")));
            put(
                &mut attrs,
                "placeholder",
                json!(w.placeholder.as_deref().unwrap_or("")),
            );
            "TextInput"
        }
        WidgetKind::CheckboxGroup => {
            put(
                &mut attrs,
                "labels",
                json!(w.labels.clone().unwrap_or_default()),
            );
            put(&mut attrs, "active", w.active.clone().unwrap_or(json!([])));
            "CheckboxGroup"
        }
        WidgetKind::DataTable => {
            let Some((source, resolved)) = table_source else {
                return Err(SpecError::invalid(
                    format!("widgets.{name}.source"),
                    "a data table needs a source",
                ));
            };
            if let Some(height) = w.height {
                put(&mut attrs, "height", json!(height));
            }
            let names: Vec<String> = match &w.columns {
                Some(cols) => cols.clone(),
                None => resolved.iter().map(|(c, _)| c.clone()).collect(),
            };
            let mut columns = Vec::with_capacity(names.len());
            for (i, col) in names.iter().enumerate() {
                let formatter =
                    g.add(format!("{id}:col{i}:formatter"), "StringFormatter", vec![])?;
                let editor = g.add(format!("{id}:col{i}:editor"), "StringEditor", vec![])?;
                columns.push(Val::from(g.add(
                    format!("{id}:col{i}"),
                    "TableColumn",
                    vec![
                        ("field", json!(col).into()),
                        ("title", json!(col).into()),
                        ("formatter", formatter.into()),
                        ("editor", editor.into()),
                    ],
                )?));
            }
            let filter = g.add(format!("{id}:filter"), "AllIndices", vec![])?;
            let view = g.add(
                format!("{id}:view"),
                "CDSView",
                vec![("filter", filter.into())],
            )?;
            // Column reordering needs jquery-ui, which BokehJS does not ship.
            put(&mut attrs, "reorderable", json!(false));
            attrs.push(("source", source.into()));
            attrs.push(("view", view.into()));
            attrs.push(("columns", Val::List(columns)));
            "DataTable"
        }
    };
    g.add(id, kind, attrs)
}

fn put(attrs: &mut Vec<(&'static str, Val)>, key: &'static str, v: Value) {
    attrs.push((key, Val::Json(v)));
}

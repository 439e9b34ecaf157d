//! The standalone HTML file of an export: the BokehJS bundles the document needs, inlined
//! (no CDN, no server: it opens offline and from `file://`), the live DocJson, and the call
//! that renders it, as `bokeh.embed.file_html` writes them.

use std::fmt::Write as _;

use serde_json::{Map, Value};

use crate::assets::BokehJs;
use crate::bundles::BundleSet;
use crate::pages::{escape_html, new_element_id, root_divs, script_json};

/// Why a page could not be written.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    /// An embedded bundle could not be decompressed.
    #[error("the embedded BokehJS bundle {0} is corrupt")]
    Bundle(&'static str),
    /// A bundle holds text that would end its inline `<script>` element early.
    #[error("the BokehJS bundle {0} cannot be inlined: it holds \"</script\" or \"<!--\" with \"<script\"")]
    Unsafe(&'static str),
}

/// Whether `js` can be the content of an inline `<script>` element as it is: it must not
/// close the element, nor open the HTML comment state that `<!--` ... `<script` starts.
pub fn inline_safe(js: &[u8]) -> bool {
    let lower = js.to_ascii_lowercase();
    let has = |needle: &[u8]| lower.windows(needle.len()).any(|w| w == needle);
    let closes = has(b"</script");
    let escapes = has(b"<!--") && has(b"<script");
    !closes && !escapes
}

/// Makes a JSON text safe inside a `<script type="application/json">` element: `<`, `>`
/// and `&` can only occur inside JSON strings, where `\u003c` means the same.
fn script_safe_json(json: &str) -> String {
    let mut out = String::with_capacity(json.len() + json.len() / 64);
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            _ => out.push(c),
        }
    }
    out
}

/// After the document is rendered, runs each live source's adapter once without an
/// answer: it installs the gentle retry at once, so that a page opened while the server is
/// away does not log an error on every tick until its first answer.
const LOOK_AFTER: &str = "  rendered.then(function() {
    for (const doc of Bokeh.documents) {
      for (const model of doc.all_models) {
        const tags = model.tags;
        if (Array.isArray(tags) && tags.includes(TAG) && model.adapter != null && model.get_data != null) {
          model.adapter.execute(model, {});
        }
      }
    }
  });
";

/// The page: `title`, the DocJson text `doc_json` whose roots are `root_ids`, and the
/// bundles in `bundles` of the server's BokehJS inlined.
pub fn standalone_html(
    title: &str,
    doc_json: &str,
    root_ids: &[String],
    bundles: BundleSet,
    bokehjs: &BokehJs,
) -> Result<String, PageError> {
    let scripts: Vec<(&'static str, &[u8])> = bokehjs
        .bundles()
        .iter()
        .filter(|b| bundles.contains(b.name))
        .map(|b| {
            b.decompressed()
                .map(|js| (b.name, js))
                .ok_or(PageError::Bundle(b.name))
        })
        .collect::<Result<_, _>>()?;
    let mut page = String::with_capacity(
        doc_json.len() + scripts.iter().map(|(_, js)| js.len()).sum::<usize>() + 4096,
    );
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\">\n  <head>\n    <meta charset=\"utf-8\">\n    \
         <link rel=\"icon\" href=\"data:,\">\n    \
         <title>{}</title>\n    <style>\n      html, body {{\n        box-sizing: border-box;\n        \
         display: flow-root;\n        height: 100%;\n        margin: 0;\n        padding: 0;\n      \
         }}\n    </style>\n",
        escape_html(title)
    );
    for (name, js) in scripts {
        if !inline_safe(js) {
            return Err(PageError::Unsafe(name));
        }
        let _ = writeln!(page, "    <script data-bundle=\"{name}\">");
        page.push_str(&String::from_utf8_lossy(js));
        page.push_str("\n    </script>\n");
    }
    page.push_str("  </head>\n  <body>\n");
    let roots = root_divs(&mut page, root_ids);
    let doc_id = new_element_id();
    let mut item = Map::new();
    item.insert("docid".to_owned(), Value::String(doc_id.clone()));
    item.insert("roots".to_owned(), Value::Object(roots));
    item.insert(
        "root_ids".to_owned(),
        Value::Array(root_ids.iter().cloned().map(Value::String).collect()),
    );
    let render_items = script_json(&Value::Array(vec![Value::Object(item)]));
    let json_id = new_element_id();
    let _ = write!(
        page,
        "    <script type=\"application/json\" id=\"{json_id}\">{{{doc_key}:{doc}}}</script>\n    \
         <script>\n(function() {{\n  const docs_json = JSON.parse(document.getElementById({json_id_js}).textContent);\n  \
         const render_items = {render_items};\n  \
         const rendered = Bokeh.embed.embed_items(docs_json, render_items);\n{look_after}}})();\n    \
         </script>\n  </body>\n</html>\n",
        doc_key = script_json(&Value::String(doc_id)),
        doc = script_safe_json(doc_json),
        json_id_js = script_json(&Value::String(json_id.clone())),
        look_after = LOOK_AFTER.replace("TAG", &script_json(&Value::String(super::LIVE_TAG.to_owned()))),
    );
    Ok(page)
}

#[cfg(all(test, feature = "embedded-bokehjs"))]
mod tests {
    use super::*;

    #[test]
    fn every_embedded_bundle_can_be_inlined() {
        for b in BokehJs::embedded().bundles() {
            let js = b.decompressed().expect("bundle");
            assert!(inline_safe(js), "{}", b.name);
        }
        assert!(!inline_safe(b"a = '</SCRIPT>'"));
        assert!(!inline_safe(b"/<!--/; x = '<script'"));
        assert!(inline_safe(b"/<!--/; x = '<(script'"));
    }

    #[test]
    fn the_page_inlines_bokehjs_and_cannot_be_broken_out_of() {
        let doc = r#"{"title":"</script><script>alert(1)</script>","roots":[]}"#;
        let page = standalone_html(
            "a <b> & c",
            doc,
            &["p1".to_owned()],
            BundleSet::NONE,
            BokehJs::embedded(),
        )
        .expect("page");
        assert!(page.contains("<title>a &lt;b&gt; &amp; c</title>"));
        assert!(page.contains("<script data-bundle=\"bokeh\">"));
        assert!(!page.contains("<script data-bundle=\"bokeh-widgets\">"));
        assert!(!page.contains("alert(1)</script>"));
        assert!(page.contains("data-root-id=\"p1\""));
        assert!(
            !page.contains("<script src") && !page.contains("rel=\"stylesheet\""),
            "nothing is loaded from elsewhere"
        );
    }
}

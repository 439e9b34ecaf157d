//! HTML and JavaScript the server hands to browsers: the app page (spec §1.2), `autoload.js`
//! (spec §1.4) and the root index (spec §1.6).
//!
//! Everything here is pure string building, so it is tested without a server. Text that ends up
//! in HTML is escaped with [`escape_html`]; JSON that ends up inside a `<script>` is made safe with
//! [`script_json`], so no value (a title, a token, an app path) can close the script element.

use std::fmt::Write as _;

use rand::RngCore as _;
use serde_json::{Map, Value};

use crate::assets::Scripts;
use crate::bundles::{BundleSet, PageBundles};
use crate::config::normalize_prefix;

/// Escapes text for HTML content and attribute values (`&`, `<`, `>`, `"`, `'`).
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Serializes `value` as JSON that is safe inside an HTML `<script>` element and as a JavaScript
/// expression: `<`, `>` and `&` become `\u003c`, `\u003e` and `\u0026`, and U+2028/U+2029 are
/// escaped too. These characters can occur only inside JSON strings, so the result is still
/// valid JSON with the same meaning.
pub fn script_json(value: &Value) -> String {
    // Serializing a `Value` cannot fail (its map keys are strings).
    let json = serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned());
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            _ => out.push(c),
        }
    }
    out
}

/// A JavaScript string literal for `text` (a JSON string, escaped as by [`script_json`]).
fn js_string(text: &str) -> String {
    script_json(&Value::String(text.to_owned()))
}

/// A fresh random element id in UUID4 form (`xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx`) whose first
/// character is a letter, so that it is also a valid CSS identifier (as Bokeh's
/// `make_globally_unique_css_safe_id`).
pub fn new_element_id() -> String {
    let mut rng = rand::rng();
    loop {
        let mut b = [0u8; 16];
        rng.fill_bytes(&mut b);
        b[6] = (b[6] & 0x0f) | 0x40; // version 4
        b[8] = (b[8] & 0x3f) | 0x80; // RFC 4122 variant
        if b[0] >> 4 < 10 {
            continue; // starts with a digit: draw again
        }
        let mut id = String::with_capacity(36);
        for (i, byte) in b.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                id.push('-');
            }
            // Writing to a String cannot fail.
            let _ = write!(id, "{byte:02x}");
        }
        return id;
    }
}

/// The root that static URLs hang off, ending in `/`.
///
/// Without `absolute_url`: `"/"` or `"/{prefix}/"`. With an absolute URL such as
/// `http://host:5006/app` (autoload's `bokeh-absolute-url`): `"{scheme}://{netloc}{prefix}/"`,
/// e.g. `"http://host:5006/"`. A scheme-relative `//host/app` gives `"//host{prefix}/"`. A value
/// that is not an absolute URL is ignored (the root-relative form is returned).
pub fn static_root(prefix: &str, absolute_url: Option<&str>) -> String {
    let prefix = normalize_prefix(prefix);
    if let Some(origin) = absolute_url.and_then(url_origin) {
        return format!("{origin}{prefix}/");
    }
    format!("{prefix}/")
}

/// `{scheme}://{netloc}` (or `//{netloc}`) of an absolute URL; `None` if it has no netloc.
fn url_origin(url: &str) -> Option<String> {
    let url = url.trim();
    let (scheme, rest) = match url.split_once("//") {
        Some(("", rest)) => ("", rest),
        Some((scheme, rest)) => {
            let scheme = scheme.strip_suffix(':')?;
            let valid = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
            if !valid {
                return None;
            }
            (scheme, rest)
        }
        None => return None,
    };
    let netloc = rest.split(['/', '?', '#']).next().unwrap_or("");
    if netloc.is_empty() {
        return None;
    }
    Some(if scheme.is_empty() {
        format!("//{netloc}")
    } else {
        format!("{scheme}://{netloc}")
    })
}

/// The JS that waits (every 10 ms, at most 100 tries) until `window.Bokeh` exists and then
/// runs `embed_document(root)`. `indent` is prepended to every line.
fn wait_for_bokeh_js(indent: &str) -> String {
    [
        "if (root.Bokeh !== undefined) {",
        "  embed_document(root);",
        "} else {",
        "  let attempts = 0;",
        "  const timer = setInterval(function(root) {",
        "    if (root.Bokeh !== undefined) {",
        "      clearInterval(timer);",
        "      embed_document(root);",
        "    } else if (++attempts > 100) {",
        "      clearInterval(timer);",
        "      console.log(\"Bokeh: ERROR: Unable to run BokehJS code because BokehJS library is missing\");",
        "    }",
        "  }, 10, root);",
        "}",
    ]
    .iter()
    .fold(String::new(), |mut s, line| {
        s.push_str(indent);
        s.push_str(line);
        s.push('\n');
        s
    })
}

/// Writes one `<div data-root-id>` per root into `page`, each with a fresh element id;
/// returns the map from root id to element id that a render item's `roots` holds.
pub fn root_divs(page: &mut String, root_ids: &[String]) -> Map<String, Value> {
    let mut roots = Map::new();
    for root_id in root_ids {
        let element_id = new_element_id();
        let _ = writeln!(
            page,
            "    <div id=\"{element_id}\" data-root-id=\"{}\" style=\"display: contents;\"></div>",
            escape_html(root_id)
        );
        roots.insert(root_id.clone(), Value::String(element_id));
    }
    roots
}

/// The app page (`GET P/<app>/`, spec §1.2).
///
/// - `title`: the document title (HTML-escaped here);
/// - `root_ids`: the document's root model ids in order; one `<div data-root-id>` each;
/// - `token`: the session token for the render item (the token that created the session);
/// - `scripts`: the bundles served and where `static/js/...` lives, e.g. `"/"` or `"/prefix/"`
///   (see [`static_root`]);
/// - `bundles`: the BokehJS bundles to load (see [`crate::bundles::for_page`]).
///
/// The page loads the BokehJS bundles in `bundles.now`, preloads those in `bundles.later`
/// and adds them (in order) after the first frame once the document has rendered. It sets
/// the log level to `info`, and calls
/// `Bokeh.embed.embed_items(docs_json, render_items)` with `docs_json` = `{}` (the document
/// comes over the websocket) and one render item
/// `{"token", "roots": {root id: element id}, "root_ids", "use_for_title": true}`; `roots` and
/// `root_ids` are left out when there are no roots, so BokehJS renders into `<body>`.
pub fn app_page(
    title: &str,
    root_ids: &[String],
    token: &str,
    scripts: &Scripts<'_>,
    bundles: PageBundles,
) -> String {
    let mut page = String::with_capacity(4096);
    page.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n  <head>\n    <meta charset=\"utf-8\">\n");
    let _ = writeln!(page, "    <title>{}</title>", escape_html(title));
    page.push_str(
        "    <style>\n      html, body {\n        box-sizing: border-box;\n        display: flow-root;\n        \
         height: 100%;\n        margin: 0;\n        padding: 0;\n      }\n    </style>\n",
    );
    let now = scripts.urls(bundles.now);
    for url in &now {
        let _ = writeln!(page, "<script src=\"{}\"></script>", escape_html(url));
    }
    // (`bokeh` itself is in every set.)
    let later: Vec<String> = scripts
        .urls(bundles.later)
        .into_iter()
        .filter(|url| !now.contains(url))
        .collect();
    for url in &later {
        let _ = writeln!(
            page,
            "<link rel=\"preload\" as=\"script\" href=\"{}\">",
            escape_html(url)
        );
    }
    page.push_str("<script>\nBokeh.set_log_level(\"info\");\n</script>\n  </head>\n  <body>\n");

    let roots = root_divs(&mut page, root_ids);

    let mut item = Map::new();
    item.insert("token".to_owned(), Value::String(token.to_owned()));
    if !root_ids.is_empty() {
        item.insert("roots".to_owned(), Value::Object(roots));
        item.insert(
            "root_ids".to_owned(),
            Value::Array(root_ids.iter().cloned().map(Value::String).collect()),
        );
    }
    item.insert("use_for_title".to_owned(), Value::Bool(true));
    let render_items = script_json(&Value::Array(vec![Value::Object(item)]));

    let docs_id = new_element_id();
    let _ = write!(
        page,
        "  \n    <script type=\"application/json\" id=\"{docs_id}\">\n      {{}}\n    </script>\n    \
         <script>\n      (function() {{\n        const fn = function() {{\n          \
         Bokeh.safely(function() {{\n            (function(root) {{\n              \
         function embed_document(root) {{\n              \
         const docs_json = document.getElementById({docs_id_js}).textContent;\n              \
         const render_items = {render_items};\n              \
         {embed};\n              }}\n",
        docs_id_js = js_string(&docs_id),
        embed = if later.is_empty() {
            "root.Bokeh.embed.embed_items(docs_json, render_items)".to_owned()
        } else {
            format!(
                "load_later(root.Bokeh.embed.embed_items(docs_json, render_items), {})",
                script_json(&Value::Array(later.into_iter().map(Value::String).collect()))
            )
        },
    );
    page.push_str(&wait_for_bokeh_js("              "));
    page.push_str(LOAD_LATER);
    page.push_str(
        "            })(window);\n          });\n        };\n        \
         if (document.readyState != \"loading\") fn();\n        \
         else document.addEventListener(\"DOMContentLoaded\", fn);\n      })();\n    \
         </script>\n  </body>\n</html>",
    );
    page
}

/// The page's loader of the bundles it needs only later: once `rendered` (the promise of
/// `embed_items`) settles and every document is idle (its first render painted; checked
/// once per frame, for at most 600 frames), it adds their scripts in order.
const LOAD_LATER: &str = "              function load_later(rendered, urls) {
                const load = function() {
                  for (const url of urls) {
                    const s = document.createElement(\"script\");
                    s.src = url;
                    s.async = false;
                    document.head.appendChild(s);
                  }
                };
                let frames = 0;
                const when_idle = function() {
                  const docs = (window.Bokeh && Bokeh.documents) || [];
                  if (docs.every(function(d) { return d.is_idle; }) || ++frames > 600) {
                    setTimeout(load, 0);
                  } else {
                    requestAnimationFrame(when_idle);
                  }
                };
                Promise.resolve(rendered).then(when_idle, load);
              }
";

/// The body of `GET P/<app>/autoload.js` (spec §1.4), served as `application/javascript`.
///
/// - `element_id`: the `bokeh-autoload-element` argument: id of the `<script>` tag to render in;
/// - `token`: the session token;
/// - `app_path`: the `bokeh-app-path` argument (Bokeh defaults it to `"/"`), passed as given;
/// - `absolute_url`: the `bokeh-absolute-url` argument, passed on when present;
/// - `include_js`: `false` for `resources=none` (the page loads BokehJS itself);
/// - `scripts`: the bundles served and the root of their URLs: absolute
///   (`static_root(prefix, Some(url))`) when `bokeh-absolute-url` was given, otherwise
///   root-relative;
/// - `bundles`: the BokehJS bundles to load (see [`crate::bundles::for_page`]).
///
/// The script loads the bundles in `bundles` in order (`async = false`) unless BokehJS is already
/// loaded or being loaded by another autoload script on the page (it shares Bokeh's
/// `_bokeh_is_loading` / `_bokeh_onload_callbacks` globals), then runs
/// `Bokeh.set_log_level("info")`, replaces the `<script id=element_id>` tag by a `<div>` and calls
/// `Bokeh.embed.embed_items('{}', [{"token", "elementid", "use_for_title": false}], app_path[,
/// absolute_url])`.
pub fn autoload_js(
    element_id: &str,
    token: &str,
    app_path: &str,
    absolute_url: Option<&str>,
    include_js: bool,
    scripts: &Scripts<'_>,
    bundles: BundleSet,
) -> String {
    let js_urls: Vec<Value> = if include_js {
        scripts
            .urls(bundles)
            .into_iter()
            .map(Value::String)
            .collect()
    } else {
        Vec::new()
    };
    let mut item = Map::new();
    item.insert("token".to_owned(), Value::String(token.to_owned()));
    item.insert("elementid".to_owned(), Value::String(element_id.to_owned()));
    item.insert("use_for_title".to_owned(), Value::Bool(false));
    let render_items = script_json(&Value::Array(vec![Value::Object(item)]));
    let mut embed_args = format!("'{{}}', render_items, {}", js_string(app_path));
    if let Some(url) = absolute_url {
        let _ = write!(embed_args, ", {}", js_string(url));
    }

    let mut js = String::with_capacity(4096);
    js.push_str("// plotwire autoload.js: loads BokehJS 3.9.2 and embeds a server session.\n");
    js.push_str("'use strict';\n(function(root) {\n");
    let _ = writeln!(js, "  const element_id = {};", js_string(element_id));
    let _ = writeln!(
        js,
        "  const js_urls = {};",
        script_json(&Value::Array(js_urls))
    );
    let _ = writeln!(js, "  const render_items = {render_items};");
    js.push_str(
        r#"
  if (document.getElementById(element_id) == null) {
    console.warn("Bokeh: autoload.js configured with elementid '" + element_id + "' but no matching script tag was found.");
  }

  // Replace the <script> tag that requested this file by a <div> to render into.
  function target_div() {
    const el = document.getElementById(element_id);
    if (el != null && el.tagName == "SCRIPT") {
      const div = document.createElement("div");
      div.id = element_id;
      el.replaceWith(div);
    }
  }

  function embed(Bokeh) {
    Bokeh.set_log_level("info");
    Bokeh.safely(function() {
      target_div();
"#,
    );
    let _ = writeln!(js, "      Bokeh.embed.embed_items({embed_args});");
    js.push_str(
        r#"    });
  }

  function embed_document(root) {
    embed(root.Bokeh);
  }

  function when_bokeh_defined() {
"#,
    );
    js.push_str(&wait_for_bokeh_js("    "));
    js.push_str(
        r#"  }

  // Callbacks waiting for BokehJS, shared with any other Bokeh loader on the page.
  function run_callbacks() {
    const callbacks = root._bokeh_onload_callbacks || [];
    delete root._bokeh_onload_callbacks;
    for (const callback of callbacks) {
      if (callback != null) {
        try {
          callback();
        } catch (error) {
          console.error("Bokeh: onload callback failed:", error);
        }
      }
    }
  }

  if (root.Bokeh !== undefined && !(root._bokeh_is_loading > 0)) {
    // BokehJS is already there.
    when_bokeh_defined();
  } else if (root._bokeh_is_loading > 0 && Array.isArray(root._bokeh_onload_callbacks)) {
    // Another script on the page is loading BokehJS: run once it is done.
    root._bokeh_onload_callbacks.push(when_bokeh_defined);
  } else if (js_urls.length === 0) {
    // resources=none: the page loads BokehJS itself.
    when_bokeh_defined();
  } else {
    root._bokeh_onload_callbacks = [when_bokeh_defined];
    root._bokeh_is_loading = js_urls.length;
    const on_done = function() {
      root._bokeh_is_loading--;
      if (root._bokeh_is_loading === 0) {
        run_callbacks();
      }
    };
    for (const url of js_urls) {
      const script = document.createElement("script");
      script.onload = on_done;
      script.onerror = function() {
        console.error("Bokeh: failed to load " + url);
        on_done();
      };
      script.async = false;
      script.src = url;
      document.head.appendChild(script);
    }
  }
})(window);
"#,
    );
    js
}

/// One live session (or app) listed on the index page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    /// Where the link goes, e.g. `/myapp?bokeh-session-id=abc` (HTML-escaped when rendered).
    pub href: String,
    /// The link text, e.g. the document title (HTML-escaped when rendered).
    pub label: String,
    /// A short line under the link, e.g. `session abc · 2 connections` (may be empty).
    pub detail: String,
}

/// The root index page (`GET P/`): a self-contained HTML page titled "plotwire" that lists the
/// published documents and the live sessions, one link each, or says that there are none
/// yet and how to make one.
pub fn index_page(documents: &[IndexEntry], entries: &[IndexEntry]) -> String {
    let mut page = String::with_capacity(2048 + (documents.len() + entries.len()) * 200);
    page.push_str(
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>plotwire</title>
<style>
  :root { color-scheme: light dark; }
  body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; max-width: 48rem; margin: 3rem auto; padding: 0 1.25rem; line-height: 1.5; }
  h1 { font-size: 1.6rem; margin-bottom: 0.25rem; }
  .sub { color: #777; margin-top: 0; }
  ul.sessions { list-style: none; padding: 0; }
  ul.sessions li { padding: 0.6rem 0.8rem; border: 1px solid rgba(127,127,127,0.3); border-radius: 6px; margin-bottom: 0.5rem; }
  ul.sessions a { font-weight: 600; text-decoration: none; }
  ul.sessions a:hover { text-decoration: underline; }
  .detail { display: block; color: #777; font-size: 0.9rem; }
  .empty { padding: 1.5rem; border: 1px dashed rgba(127,127,127,0.5); border-radius: 6px; }
  code { font-size: 0.9em; background: rgba(127,127,127,0.15); padding: 0.1em 0.3em; border-radius: 3px; }
</style>
</head>
<body>
<h1>plotwire</h1>
<p class="sub">A Bokeh-compatible document server.</p>
"#,
    );
    if entries.is_empty() && documents.is_empty() {
        page.push_str(
            "<div class=\"empty\">\n<p><strong>No documents or live sessions yet.</strong></p>\n\
             <p>Publish one with <code>curl -X PUT http://HOST:PORT/api/v1/documents/NAME -d @doc.json</code>, \
             or push one from Python with <code>bokeh.client.push_session(doc, \
             url=&quot;http://HOST:PORT/myapp&quot;)</code>, then reload this page.</p>\n</div>\n",
        );
    }
    if !documents.is_empty() {
        write_list(&mut page, "Published documents", documents);
    }
    if !entries.is_empty() {
        write_list(&mut page, "Live sessions", entries);
    }
    page.push_str("</body>\n</html>\n");
    page
}

/// One titled list of links on the index page.
fn write_list(page: &mut String, title: &str, entries: &[IndexEntry]) {
    let _ = writeln!(
        page,
        "<h2>{title} ({})</h2>\n<ul class=\"sessions\">",
        entries.len()
    );
    for entry in entries {
        let _ = write!(
            page,
            "<li><a href=\"{}\">{}</a>",
            escape_html(&entry.href),
            escape_html(&entry.label)
        );
        if !entry.detail.is_empty() {
            let _ = write!(
                page,
                "<span class=\"detail\">{}</span>",
                escape_html(&entry.detail)
            );
        }
        page.push_str("</li>\n");
    }
    page.push_str("</ul>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn element_ids_are_uuid4_starting_with_a_letter() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            let id = new_element_id();
            assert_eq!(id.len(), 36, "{id}");
            let parts: Vec<_> = id.split('-').map(str::len).collect();
            assert_eq!(parts, [8, 4, 4, 4, 12], "{id}");
            assert!(id.starts_with(|c: char| ('a'..='f').contains(&c)), "{id}");
            assert_eq!(&id[14..15], "4", "{id}");
            assert!("89ab".contains(&id[19..20]), "{id}");
            assert!(id
                .chars()
                .all(|c| c == '-' || c.is_ascii_digit() || ('a'..='f').contains(&c)));
            assert!(seen.insert(id));
        }
    }

    #[test]
    fn static_roots() {
        assert_eq!(static_root("", None), "/");
        assert_eq!(static_root("/foo/", None), "/foo/");
        assert_eq!(
            static_root("", Some("http://127.0.0.1:5106/demo")),
            "http://127.0.0.1:5106/"
        );
        assert_eq!(
            static_root("/p", Some("https://example.com:8443/p/demo?x=1")),
            "https://example.com:8443/p/"
        );
        assert_eq!(static_root("", Some("//h:1/app")), "//h:1/");
        assert_eq!(static_root("/p", Some("not a url")), "/p/");
        assert_eq!(static_root("", Some("http:///nohost")), "/");
    }

    #[test]
    fn script_json_escapes_markup() {
        let v = Value::String("</script><!-- & \u{2028}".to_owned());
        let s = script_json(&v);
        assert!(!s.contains('<') && !s.contains('>') && !s.contains('&'));
        assert_eq!(serde_json::from_str::<Value>(&s).ok(), Some(v));
    }

    #[test]
    fn html_escaping() {
        assert_eq!(
            escape_html(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}

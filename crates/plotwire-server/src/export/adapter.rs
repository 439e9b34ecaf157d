//! The `CustomJS` adapter of a live source: the JavaScript that BokehJS 3.9.2 runs on every
//! answer of the read-back endpoint (`docs/bokehjs-views-lod-ajax.md` §1.5, §1.9).
//!
//! Both kinds of source receive the read-back envelope `{"since","next","reset","rows","data"}`:
//! - `reset` (the source was replaced, patched or cleared, or the cursor was too old) sets
//!   the whole data, cut to `max_size`; otherwise the rows are returned to be appended;
//! - `null` (how the endpoint writes NaN) becomes `NaN` in numeric columns.
//!
//! An `AjaxDataSource` also keeps its cursor: an answer whose `since` is not the cursor in
//! `data_url` is stale and appends nothing; otherwise `data_url` moves on to `next`. On its
//! first run the adapter makes the source gentle with an absent server:
//! - one request at a time (BokehJS's timer does not wait for the previous one);
//! - after a failed request (no answer, or a status other than 200), no request for `retry`
//!   milliseconds: one console error per retry, not one per tick, and one warning that
//!   says what happens;
//! - the first answer after that logs that the server is back, and the cursor resumes
//!   where it stopped, so nothing is missed or repeated.
//!
//! A `ServerSentDataSource` needs none of this: the browser resumes the stream itself, with
//! `Last-Event-ID`, after the `retry:` delay the server set.

use plotwire_api::live::Live;

/// How long a request may stay unanswered before the next one is sent anyway (BokehJS
/// sets no timeout), in milliseconds.
const STUCK_MS: u64 = 30_000;

/// Installs the gentle retry on an `AjaxDataSource` (`s`), once.
const KEEPER: &str = r#"if (s.__plotwire === undefined) {
  const k = s.__plotwire = {sent: 0, until: 0, down: false};
  const get_data = s.get_data.bind(s), do_load = s.do_load.bind(s);
  const fail = (why) => {
    k.sent = 0;
    k.until = Date.now() + RETRY_MS;
    if (!k.down) {
      k.down = true;
      console.warn(`plotwire: ${why} from ${s.data_url}; the plot keeps its data and asks again every ${RETRY_MS / 1000} s`);
    }
  };
  s.get_data = (...args) => {
    const now = Date.now();
    if (now < k.until || now - k.sent < STUCK_MS) return;
    k.sent = now;
    get_data(...args);
  };
  s.do_error = () => fail("no answer");
  s.do_load = async (xhr, ...args) => {
    if (xhr.status !== 200) return fail(`HTTP ${xhr.status}`);
    k.sent = 0;
    if (k.down) {
      k.down = false;
      console.info(`plotwire: ${s.data_url} answers again`);
    }
    await do_load(xhr, ...args);
  };
}
"#;

/// Moves an `AjaxDataSource`'s cursor, or drops a stale answer.
const CURSOR: &str = r#"const u = new URL(s.data_url, document.baseURI);
if (String(r.since) !== u.searchParams.get("since")) return {};
u.searchParams.set("since", String(r.next));
s.data_url = u.toString();
"#;

/// Turns the envelope's columns into the source's data.
const ROWS: &str = r#"const data = {};
for (const [name, col] of Object.entries(r.data)) {
  let c = col;
  if (Array.isArray(c) && c.includes(null) && c.some((v) => typeof v === "number")) {
    c = c.map((v) => v === null ? NaN : v);
  }
  if (r.reset && s.max_size != null && c.length > s.max_size) c = c.slice(-s.max_size);
  data[name] = c;
}
if (r.reset) {
  s.data = data;
  return {};
}
return data;
"#;

/// The adapter's code for sources of kind `live`, retrying after `retry_ms`.
pub(super) fn code(live: Live, retry_ms: u64) -> String {
    let mut code = String::from("const s = cb_obj, r = cb_data.response;\n");
    if live == Live::Ajax {
        code.push_str(
            &KEEPER
                .replace("RETRY_MS", &retry_ms.to_string())
                .replace("STUCK_MS", &STUCK_MS.to_string()),
        );
    }
    code.push_str("if (r == null || typeof r !== \"object\" || r.data == null) return {};\n");
    if live == Live::Ajax {
        code.push_str(CURSOR);
    }
    code.push_str(ROWS);
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ajax_sources_keep_a_cursor_and_retry() {
        let ajax = code(Live::Ajax, 60_000);
        assert!(ajax.contains("k.until = Date.now() + 60000;"));
        assert!(ajax.contains("now - k.sent < 30000"));
        assert!(ajax.contains("searchParams.set(\"since\""));
        assert!(!ajax.contains("RETRY_MS") && !ajax.contains("STUCK_MS"));
        let sse = code(Live::Sse, 60_000);
        assert!(!sse.contains("__plotwire") && !sse.contains("searchParams"));
        assert!(sse.contains("if (r.reset)"));
    }
}

//! The wire types of plotwire's REST API (`docs/rest-api.md`), in one crate that both the
//! server and the clients use, so that the two cannot drift apart:
//! - [`raw`]: the `application/x-plotwire-columns` body (raw little-endian typed arrays);
//! - [`names`]: what a document name may be;
//! - [`answers`]: the JSON answers and the error body;
//! - [`events`]: the viewer events producers receive;
//! - [`paths`]: where each endpoint is;
//! - [`live`]: the options of a standalone copy that stays live (exports, `json_item`).
//!
//! It depends on serde (and percent-encoding) alone, so a client that uses it pulls in nothing of the server.

pub mod answers;
pub mod events;
pub mod live;
pub mod names;
pub mod paths;
pub mod raw;

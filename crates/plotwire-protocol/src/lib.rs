//! The Bokeh 3.9 wire protocol, as spoken by BokehJS 3.9.2 and `bokeh.client` 3.9.2.
//!
//! Pure: no sockets, no async runtime, no clocks (the current time is passed in).
//! See `shared/docs/bokeh-protocol.md` for the specification this crate follows.

pub mod codec;
pub mod event;
pub mod frame;
pub mod message;
pub mod token;
pub mod value;

pub use value::{ArrayData, ArrayForm, ArrayValue, DType, Id, ModelRep, Slice, Value};

/// The Bokeh version plotwire speaks and reports in SERVER-INFO-REPLY and DocJson.
pub const BOKEH_VERSION: &str = "3.9.2";

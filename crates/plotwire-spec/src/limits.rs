//! The documented limits on a spec (docs/dashboard-spec.md, "Limits").

/// The largest spec body, in bytes.
pub const MAX_SPEC_BYTES: usize = 1 << 20;
/// The most sources.
pub const MAX_SOURCES: usize = 256;
/// The most plots.
pub const MAX_PLOTS: usize = 256;
/// The most widgets.
pub const MAX_WIDGETS: usize = 256;
/// The most columns of one source.
pub const MAX_COLUMNS: usize = 256;
/// The most series (y columns) of one plot.
pub const MAX_SERIES: usize = 64;
/// The most tools of one plot.
pub const MAX_TOOLS: usize = 16;
/// The longest name of a source, plot, widget or column, in bytes.
pub const MAX_NAME: usize = 64;
/// The longest text (title, label, option, value, placeholder), in characters.
pub const MAX_TEXT: usize = 1024;
/// The most options of a select, boxes of a checkbox group or columns of a table.
pub const MAX_CHOICES: usize = 1024;
/// The most grid rows and columns (`top + height` and `left + width` at most this).
pub const MAX_GRID: u32 = 64;
/// The smallest width or height in pixels (plots, widgets, grid cells).
pub const MIN_PIXELS: u32 = 20;
/// The largest width or height in pixels (plots, widgets, grid cells).
pub const MAX_PIXELS: u32 = 8192;

//! Decoded Bokeh values (spec §6.3): the in-memory form of everything that travels
//! inside message content, with binary buffers already resolved.

use bytes::Bytes;

/// A model id. Opaque: never parsed.
pub type Id = String;

/// One decoded Bokeh value.
///
/// Numbers keep the integer/float distinction of the JSON they came from, so that a
/// value is re-encoded the way its sender wrote it. Binary data (`bytes`, `typed_array`,
/// `ndarray`) is held as [`Bytes`] in little-endian order, whichever transport carried it.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// JSON `null`.
    Null,
    /// JSON `true` / `false`.
    Bool(bool),
    /// A JSON number written without a fraction or exponent that fits in an `i64`.
    Int(i64),
    /// Any other number, including NaN and ±infinity (`{"type":"number"}`).
    Float(f64),
    /// A JSON string.
    Str(String),
    /// A JSON array (or the rarely used `{"type":"array"}`).
    List(Vec<Value>),
    /// A plain JSON object without a `type` key, in the sender's key order.
    Dict(Vec<(String, Value)>),
    /// `{"type":"map"}`: a dict whose keys may be any value.
    Map(Vec<(Value, Value)>),
    /// `{"type":"set"}`.
    Set(Vec<Value>),
    /// `{"type":"bytes"}`: raw bytes (already gunzipped or taken from a buffer).
    Bytes(Bytes),
    /// `{"type":"typed_array"}` or `{"type":"ndarray"}`.
    Array(Box<ArrayValue>),
    /// `{"type":"slice"}`, used as a patch index.
    Slice(Slice),
    /// A bare `{"id": ...}` reference to a model.
    Ref(Id),
    /// A full model representation `{"type":"object","name","id","attributes"}`.
    Model(Box<ModelRep>),
    /// Any other tagged object (`value`, `field`, `expr`, `event`, `date`, `symbol`, and
    /// `object` without an id). `fields` holds every key except `type`, in order.
    Tagged {
        /// The `type` tag.
        tag: String,
        /// The other keys, decoded.
        fields: Vec<(String, Value)>,
    },
}

/// A full model representation (spec §6.2).
#[derive(Debug, Clone, PartialEq)]
pub struct ModelRep {
    /// The qualified type name, e.g. `ColumnDataSource`.
    pub name: String,
    /// The model id.
    pub id: Id,
    /// The attributes that were sent, in the sender's order.
    pub attributes: Vec<(String, Value)>,
}

/// `{"type":"slice","start","stop","step"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Slice {
    /// Inclusive start, `None` for the beginning.
    pub start: Option<i64>,
    /// Exclusive stop, `None` for the end.
    pub stop: Option<i64>,
    /// Step, `None` for 1.
    pub step: Option<i64>,
}

/// Whether an array arrived as a `typed_array` (1-D, BokehJS) or an `ndarray` (numpy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArrayForm {
    /// `{"type":"typed_array"}`.
    Typed,
    /// `{"type":"ndarray"}`.
    Nd,
}

/// The element types Bokeh sends as binary (spec §6.3), plus `object` for ndarrays
/// whose body is a JSON list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    /// `bool`, one byte per element.
    Bool,
    /// `uint8`.
    U8,
    /// `int8`.
    I8,
    /// `uint16`.
    U16,
    /// `int16`.
    I16,
    /// `uint32`.
    U32,
    /// `int32`.
    I32,
    /// `float32`.
    F32,
    /// `float64`.
    F64,
    /// `object`: the body is a JSON list, not bytes.
    Object,
}

impl DType {
    /// The Bokeh name of this dtype.
    pub fn name(self) -> &'static str {
        match self {
            DType::Bool => "bool",
            DType::U8 => "uint8",
            DType::I8 => "int8",
            DType::U16 => "uint16",
            DType::I16 => "int16",
            DType::U32 => "uint32",
            DType::I32 => "int32",
            DType::F32 => "float32",
            DType::F64 => "float64",
            DType::Object => "object",
        }
    }

    /// Parses a Bokeh dtype name.
    pub fn from_name(name: &str) -> Option<DType> {
        Some(match name {
            "bool" => DType::Bool,
            "uint8" => DType::U8,
            "int8" => DType::I8,
            "uint16" => DType::U16,
            "int16" => DType::I16,
            "uint32" => DType::U32,
            "int32" => DType::I32,
            "float32" => DType::F32,
            "float64" => DType::F64,
            "object" => DType::Object,
            _ => return None,
        })
    }

    /// Bytes per element; 0 for `object`.
    pub fn size(self) -> usize {
        match self {
            DType::Bool | DType::U8 | DType::I8 => 1,
            DType::U16 | DType::I16 => 2,
            DType::U32 | DType::I32 | DType::F32 => 4,
            DType::F64 => 8,
            DType::Object => 0,
        }
    }

    /// Reads element `i` of little-endian `bytes` as an `f64` (bool as 0/1).
    /// Returns `None` for `object` or when `i` is out of range.
    pub fn read_f64(self, bytes: &[u8], i: usize) -> Option<f64> {
        let s = self.size();
        let b = bytes.get(i.checked_mul(s)?..i.checked_mul(s)?.checked_add(s)?)?;
        Some(match self {
            DType::Bool => f64::from(u8::from(b[0] != 0)),
            DType::U8 => f64::from(b[0]),
            DType::I8 => f64::from(b[0] as i8),
            DType::U16 => f64::from(u16::from_le_bytes([b[0], b[1]])),
            DType::I16 => f64::from(i16::from_le_bytes([b[0], b[1]])),
            DType::U32 => f64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            DType::I32 => f64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            DType::F32 => f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            DType::F64 => f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]),
            DType::Object => return None,
        })
    }
}

/// The body of an array value.
#[derive(Debug, Clone, PartialEq)]
pub enum ArrayData {
    /// Little-endian element bytes; `len = bytes.len() / dtype.size()`.
    Binary(Bytes),
    /// A JSON list body (dtype `object`, or an ndarray sent inline as a list).
    List(Vec<Value>),
}

/// A `typed_array` or `ndarray` value.
#[derive(Debug, Clone, PartialEq)]
pub struct ArrayValue {
    /// Which tag it came with.
    pub form: ArrayForm,
    /// Element type.
    pub dtype: DType,
    /// Row-major shape; `[len]` for a typed array.
    pub shape: Vec<usize>,
    /// The elements.
    pub data: ArrayData,
}

impl ArrayValue {
    /// Number of elements in the body.
    pub fn len(&self) -> usize {
        match &self.data {
            ArrayData::Binary(b) => match self.dtype.size() {
                0 => 0,
                s => b.len() / s,
            },
            ArrayData::List(v) => v.len(),
        }
    }

    /// True when the body holds no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

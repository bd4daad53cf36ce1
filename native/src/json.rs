//! JSON as the Python path sees it.
//!
//! Parsing is serde_json's; [`Value`] is a tree in an arena ([`bumpalo::Bump`], reset per
//! frame) whose strings without escapes point into the frame, and whose objects keep the
//! source's key order and, on a repeated key, the first position with the last value: what
//! `orjson.loads` gives as a Python dict. Writing is `orjson.dumps`'s compact format, byte for
//! byte (see [`write`]).
//!
//! What serde_json refuses is refused here (the caller then leaves the frame to the Python
//! path, which produces the same outcome as before): invalid UTF-8, lone surrogate escapes,
//! nesting deeper than 128 levels, numbers that overflow a double; and a negative zero (serde_json
//! reads the integer `-0` as the double -0.0, orjson as the integer 0). Everything it accepts,
//! orjson accepts with the same values: integers in `[-2^63, 2^64)` stay integers, larger ones
//! and every literal with a fraction or exponent become the nearest double (`float_roundtrip`).

use std::collections::HashSet;
use std::fmt;

use bumpalo::collections::Vec as BumpVec;
use bumpalo::Bump;
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// Randomly seeded per process: keys are untrusted input (no engineered collisions).
pub type Hasher = foldhash::fast::RandomState;

#[derive(Clone, Copy)]
pub enum Value<'a> {
    Null,
    Bool(bool),
    Int(i64),
    /// An integer above `i64::MAX` (and below 2^64): still a Python `int`.
    UInt(u64),
    Float(f64),
    Str(&'a str),
    Array(&'a [Value<'a>]),
    Object(Object<'a>),
}

/// An object's members in source order, each key once.
#[derive(Clone, Copy)]
pub struct Object<'a> {
    members: &'a [(&'a str, Value<'a>)],
}

impl<'a> Object<'a> {
    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The value of `key` (linear: envelopes and bodies are looked into for a few keys only).
    pub fn get(&self, key: &str) -> Option<&'a Value<'a>> {
        self.members.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&'a str, &'a Value<'a>)> {
        self.members.iter().map(|(k, v)| (*k, v))
    }

    pub fn keys(&self) -> impl Iterator<Item = &'a str> {
        self.members.iter().map(|(k, _)| *k)
    }

    pub fn values(&self) -> impl Iterator<Item = &'a Value<'a>> {
        self.members.iter().map(|(_, v)| v)
    }
}

impl<'a> Value<'a> {
    pub fn as_object(&self) -> Option<&Object<'a>> {
        match self {
            Value::Object(o) => Some(o),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&'a str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// The JSON value of `data` in `arena`, or `None` where serde_json refuses it.
pub fn parse<'a>(data: &'a [u8], arena: &'a Bump) -> Option<Value<'a>> {
    let mut deserializer = serde_json::Deserializer::from_slice(data);
    let value = ValueSeed(arena).deserialize(&mut deserializer).ok()?;
    deserializer.end().ok()?;
    Some(value)
}

#[derive(Clone, Copy)]
struct ValueSeed<'a>(&'a Bump);

impl<'de: 'a, 'a> DeserializeSeed<'de> for ValueSeed<'a> {
    type Value = Value<'a>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de: 'a, 'a> Visitor<'de> for ValueSeed<'a> {
    type Value = Value<'a>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Value::Int(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(if v <= i64::MAX as u64 { Value::Int(v as i64) } else { Value::UInt(v) })
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
        if v == 0.0 && v.is_sign_negative() {
            // serde_json reads the integer `-0` as -0.0 too, where orjson gives the integer 0:
            // the two cannot be told apart here, so the frame is left to Python.
            return Err(E::custom("negative zero"));
        }
        Ok(Value::Float(v))
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Value::Str(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Value::Str(self.0.alloc_str(v)))
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = BumpVec::new_in(self.0);
        while let Some(item) = seq.next_element_seed(self)? {
            items.push(item);
        }
        Ok(Value::Array(items.into_bump_slice()))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut members = Members::new(self.0);
        while let Some(key) = map.next_key_seed(KeySeed(self.0))? {
            let value = map.next_value_seed(self)?;
            members.insert(key, value);
        }
        Ok(Value::Object(Object { members: members.members.into_bump_slice() }))
    }
}

#[derive(Clone, Copy)]
struct KeySeed<'a>(&'a Bump);

impl<'de: 'a, 'a> DeserializeSeed<'de> for KeySeed<'a> {
    type Value = &'a str;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de: 'a, 'a> Visitor<'de> for KeySeed<'a> {
    type Value = &'a str;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(v)
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(self.0.alloc_str(v))
    }
}

/// Up to this many members, a repeated key is found by a scan behind a 64-bit filter; beyond,
/// by a hash set (so a hostile object of 100,000 keys costs linear time, not quadratic).
const SCAN_MAX: usize = 32;

fn filter_bit(key: &str) -> u64 {
    let b = key.as_bytes();
    let first = *b.first().unwrap_or(&0) as u64;
    let last = *b.last().unwrap_or(&0) as u64;
    let mix = b.len() as u64 ^ (first << 8) ^ (last << 16);
    1 << (mix.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58)
}

/// Builds an object's members with a Python dict's semantics for a repeated key: the first
/// position is kept, with the last value.
struct Members<'a> {
    members: BumpVec<'a, (&'a str, Value<'a>)>,
    filter: u64,
    seen: Option<HashSet<&'a str, Hasher>>,
}

impl<'a> Members<'a> {
    fn new(arena: &'a Bump) -> Self {
        Members { members: BumpVec::new_in(arena), filter: 0, seen: None }
    }

    fn insert(&mut self, key: &'a str, value: Value<'a>) {
        let repeated = match &mut self.seen {
            Some(seen) => !seen.insert(key),
            None => {
                let bit = filter_bit(key);
                let repeated = self.filter & bit != 0 && self.members.iter().any(|(k, _)| *k == key);
                self.filter |= bit;
                if !repeated && self.members.len() == SCAN_MAX {
                    let mut seen = HashSet::with_capacity_and_hasher(SCAN_MAX * 4, Hasher::default());
                    seen.extend(self.members.iter().map(|(k, _)| *k));
                    seen.insert(key);
                    self.seen = Some(seen);
                }
                repeated
            }
        };
        if repeated {
            if let Some(slot) = self.members.iter_mut().find(|(k, _)| *k == key) {
                slot.1 = value;
            }
        } else {
            self.members.push((key, value));
        }
    }
}

// -- writing, as orjson.dumps ------------------------------------------------------------------

/// Appends the JSON text of `value` exactly as `orjson.dumps` writes it: no whitespace,
/// non-ASCII kept as UTF-8, `"` `\` and control characters escaped (`\b \t \n \f \r`, others as
/// lower-case `\u00XX`), floats as in [`write_float`].
pub fn write(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Int(n) => out.extend_from_slice(itoa::Buffer::new().format(*n).as_bytes()),
        Value::UInt(n) => out.extend_from_slice(itoa::Buffer::new().format(*n).as_bytes()),
        Value::Float(f) => write_float(out, *f),
        Value::Str(s) => write_str(out, s),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write(out, item);
            }
            out.push(b']');
        }
        Value::Object(object) => write_object(out, object.iter()),
    }
}

/// `{"k":v,...}` of key/value pairs in the given order.
pub fn write_object<'v, 'a: 'v>(
    out: &mut Vec<u8>,
    pairs: impl Iterator<Item = (&'v str, &'v Value<'a>)>,
) {
    out.push(b'{');
    for (i, (key, value)) in pairs.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(out, key);
        out.push(b':');
        write(out, value);
    }
    out.push(b'}');
}

/// A finite double as orjson writes it: the shortest digits that read back to the same double
/// (ryu), in decimal notation from 1e-5 up to below 1e16 (with `.0` when integral), otherwise as
/// `de±x` with an explicit `+` on positive exponents (`1e+16`, `1e-7`).
pub fn write_float(out: &mut Vec<u8>, f: f64) {
    let mut buffer = ryu::Buffer::new();
    let text = buffer.format_finite(f).as_bytes();
    match text.iter().position(|&b| b == b'e') {
        Some(at) if text.get(at + 1) != Some(&b'-') => {
            out.extend_from_slice(&text[..=at]);
            out.push(b'+');
            out.extend_from_slice(&text[at + 1..]);
        }
        _ => out.extend_from_slice(text),
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Whether a byte must be escaped inside a JSON string.
#[inline]
fn escaped(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

pub fn write_str(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if !escaped(b) {
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x09 => out.extend_from_slice(b"\\t"),
            0x0a => out.extend_from_slice(b"\\n"),
            0x0c => out.extend_from_slice(b"\\f"),
            0x0d => out.extend_from_slice(b"\\r"),
            _ => {
                out.extend_from_slice(b"\\u00");
                out.push(HEX[(b >> 4) as usize]);
                out.push(HEX[(b & 0xf) as usize]);
            }
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

//! The Genesys fit and the Avro binary encoding, in one pass.
//!
//! A [`Schema`] is the program that `connector/plugins/genesys/native.py` derives from a parsed
//! `.avsc` (records in a table, references resolved to indexes). Writing a JSON object as a
//! record does what the Python path does in two steps (`schemas.py`'s fit, then the compiled
//! writer of `serde/avro.py`), with the same bytes:
//!
//! - every key of the object either fits its field (then that field carries it) or goes, with
//!   its original value, into the record's `unknown_fields` JSON object (source key order); a
//!   key the schema does not know goes there too, JSON null included; a known key whose value
//!   is null leaves its field null;
//! - a value fits: strings and booleans exactly; `long` an integer of 64 bits, `int` one of 32;
//!   `double` any number (integers converted to the nearest double); a record any object (its
//!   own misfits go to its own `unknown_fields`); an array or map when every item fits;
//!   `genesys.json` fields take any value as its JSON text;
//! - fields are written in schema order, each a `[null, T]` union: the branch index, then the
//!   value (zigzag varints, little-endian doubles, length-prefixed UTF-8, arrays and maps as one
//!   block followed by the zero block).

use serde::Deserialize;
use std::collections::HashMap;

use crate::json::{self, Hasher, Object, Value};

/// A field's type as the fit sees it (every record field is a `[null, T]` union of these).
#[derive(Deserialize, Clone, Debug)]
#[serde(rename_all = "lowercase")]
pub enum Ty {
    String,
    Boolean,
    Long,
    Int,
    Double,
    /// A `genesys.json` field: any JSON value, written as its (orjson) JSON text.
    Json,
    Record(usize),
    Array(Box<Ty>),
    Map(Box<Ty>),
}

#[derive(Deserialize)]
pub struct FieldSpec {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: Ty,
    /// The position of `"null"` in the field's union (0 or 1).
    pub null: u8,
}

#[derive(Deserialize)]
pub struct RecordSpec {
    pub fields: Vec<FieldSpec>,
}

#[derive(Deserialize)]
pub struct SchemaSpec {
    /// Every named record; the first is the top-level one.
    pub records: Vec<RecordSpec>,
}

pub const UNKNOWN_FIELDS: &str = "unknown_fields";

struct Field {
    ty: Ty,
    /// The branch index of null, and of the value, as Avro writes them (zigzag of 0 or 1).
    null_byte: u8,
    value_byte: u8,
}

struct Record {
    fields: Vec<Field>,
    /// Field name -> index, without `unknown_fields` (a source key of that name is unknown).
    lookup: HashMap<String, usize, Hasher>,
    unknown: usize,
}

pub struct Schema {
    records: Vec<Record>,
}

impl Schema {
    pub fn new(spec: SchemaSpec) -> Result<Schema, String> {
        let count = spec.records.len();
        if count == 0 {
            return Err("a schema needs at least one record".into());
        }
        let mut records = Vec::with_capacity(count);
        for (index, record) in spec.records.into_iter().enumerate() {
            let mut lookup = HashMap::with_hasher(Hasher::default());
            let mut fields = Vec::with_capacity(record.fields.len());
            let mut unknown = None;
            for (i, field) in record.fields.into_iter().enumerate() {
                if field.null > 1 {
                    return Err(format!("record {index}: field {}: bad null index", field.name));
                }
                check_refs(&field.ty, count)?;
                if field.name == UNKNOWN_FIELDS {
                    if !matches!(field.ty, Ty::String) {
                        return Err(format!("record {index}: {UNKNOWN_FIELDS} is not a string"));
                    }
                    unknown = Some(i);
                } else {
                    lookup.insert(field.name, i);
                }
                fields.push(Field {
                    ty: field.ty,
                    null_byte: field.null << 1,
                    value_byte: (1 - field.null) << 1,
                });
            }
            let unknown = unknown.ok_or_else(|| format!("record {index} has no {UNKNOWN_FIELDS}"))?;
            records.push(Record { fields, lookup, unknown });
        }
        Ok(Schema { records })
    }

    /// The index of a top-level field, if the schema has it.
    pub fn top_field(&self, name: &str) -> Option<usize> {
        self.records[0].lookup.get(name).copied()
    }

    /// Appends the top-level record of `body`; `forced` sets one of its string fields whatever
    /// the body holds (`detail_event_type`, as the Python path does after the fit).
    pub fn write(&self, body: &Object, forced: Option<(usize, &str)>, out: &mut Vec<u8>) {
        self.write_record(0, body, forced, out);
    }

    fn write_record(
        &self,
        index: usize,
        object: &Object,
        forced: Option<(usize, &str)>,
        out: &mut Vec<u8>,
    ) {
        let record = &self.records[index];
        let mut slots: Vec<Option<&Value>> = vec![None; record.fields.len()];
        let mut unknown: Vec<(&str, &Value)> = Vec::new();
        for (key, value) in object.iter() {
            match record.lookup.get(key) {
                None => unknown.push((key, value)),
                Some(&i) => {
                    if matches!(value, Value::Null) {
                        continue;
                    }
                    if fits(&record.fields[i].ty, value) {
                        slots[i] = Some(value);
                    } else {
                        unknown.push((key, value));
                    }
                }
            }
        }
        for (i, field) in record.fields.iter().enumerate() {
            if i == record.unknown {
                if unknown.is_empty() {
                    out.push(field.null_byte);
                } else {
                    out.push(field.value_byte);
                    let mut text = Vec::with_capacity(64);
                    json::write_object(&mut text, unknown.iter().copied());
                    write_bytes(out, &text);
                }
                continue;
            }
            if let Some((at, text)) = forced {
                if at == i {
                    out.push(field.value_byte);
                    write_bytes(out, text.as_bytes());
                    continue;
                }
            }
            match slots[i] {
                None => out.push(field.null_byte),
                Some(value) => {
                    out.push(field.value_byte);
                    self.write_value(&field.ty, value, out);
                }
            }
        }
    }

    /// Appends `value` (which [`fits`] `ty`).
    fn write_value(&self, ty: &Ty, value: &Value, out: &mut Vec<u8>) {
        match (ty, value) {
            (Ty::String, Value::Str(s)) => write_bytes(out, s.as_bytes()),
            (Ty::Boolean, Value::Bool(b)) => out.push(*b as u8),
            (Ty::Long | Ty::Int, Value::Int(n)) => write_long(out, *n),
            (Ty::Double, Value::Float(f)) => out.extend_from_slice(&f.to_le_bytes()),
            (Ty::Double, Value::Int(n)) => out.extend_from_slice(&(*n as f64).to_le_bytes()),
            (Ty::Double, Value::UInt(n)) => out.extend_from_slice(&(*n as f64).to_le_bytes()),
            (Ty::Json, _) => {
                let mut text = Vec::with_capacity(64);
                json::write(&mut text, value);
                write_bytes(out, &text);
            }
            (Ty::Record(index), Value::Object(object)) => {
                self.write_record(*index, object, None, out)
            }
            (Ty::Array(item), Value::Array(items)) => {
                if !items.is_empty() {
                    write_long(out, items.len() as i64);
                    for element in items.iter() {
                        self.write_value(item, element, out);
                    }
                }
                out.push(0);
            }
            (Ty::Map(item), Value::Object(object)) => {
                if !object.is_empty() {
                    write_long(out, object.len() as i64);
                    for (key, element) in object.iter() {
                        write_bytes(out, key.as_bytes());
                        self.write_value(item, element, out);
                    }
                }
                out.push(0);
            }
            _ => unreachable!("write_value on a value that does not fit"),
        }
    }
}

/// Whether `value` fits `ty` (see the module docs); `null` never fits (a null field is
/// skipped before this is asked).
pub fn fits(ty: &Ty, value: &Value) -> bool {
    match (ty, value) {
        (Ty::String, Value::Str(_)) => true,
        (Ty::Boolean, Value::Bool(_)) => true,
        (Ty::Long, Value::Int(_)) => true,
        (Ty::Int, Value::Int(n)) => i32::try_from(*n).is_ok(),
        (Ty::Double, Value::Float(_) | Value::Int(_) | Value::UInt(_)) => true,
        (Ty::Json, _) => true,
        (Ty::Record(_), Value::Object(_)) => true,
        (Ty::Array(item), Value::Array(items)) => items.iter().all(|v| fits(item, v)),
        (Ty::Map(item), Value::Object(object)) => object.values().all(|v| fits(item, v)),
        _ => false,
    }
}

fn check_refs(ty: &Ty, count: usize) -> Result<(), String> {
    match ty {
        Ty::Record(index) if *index >= count => Err(format!("no record {index}")),
        Ty::Array(item) | Ty::Map(item) => {
            if matches!(**item, Ty::Json) {
                return Err("genesys.json inside an array or map".into());
            }
            check_refs(item, count)
        }
        _ => Ok(()),
    }
}

/// Zigzag varint (Avro `int` and `long`).
#[inline]
pub fn write_long(out: &mut Vec<u8>, n: i64) {
    let mut z = ((n << 1) ^ (n >> 63)) as u64;
    while z > 0x7f {
        out.push((z as u8 & 0x7f) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

/// Avro `bytes`/`string`: the length, then the bytes.
#[inline]
pub fn write_bytes(out: &mut Vec<u8>, data: &[u8]) {
    write_long(out, data.len() as i64);
    out.extend_from_slice(data);
}

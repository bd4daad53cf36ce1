//! `connector._native`: the per-event work of the Genesys record path in Rust.
//!
//! Python compiles a plan once per task (routes and schema programs, see
//! `connector/plugins/genesys/native.py`); [`GenesysPlan::build`] then takes a batch of raw
//! frames and returns, per frame, what its record needs, or `None` for a frame the Python path
//! must handle. The parse, fit and encode run with the interpreter lock released.

mod avro;
mod genesys;
mod isotime;
mod json;

use std::collections::HashMap;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};
use serde::Deserialize;

const HEADER_TOPIC: &str = "genesys.topic";
const HEADER_VERSION: &str = "genesys.version";
const HEADER_CORRELATION_ID: &str = "genesys.correlation.id";
const HEADER_METADATA: &str = "genesys.metadata";
const HEADER_ENVELOPE_UNKNOWN: &str = "genesys.envelope.unknown";
const DETAIL_EVENT_FIELD: &str = "detail_event_type";

#[derive(Deserialize)]
struct PlanSpec {
    schemas: Vec<avro::SchemaSpec>,
    routes: Vec<genesys::RouteSpec>,
}

/// What every record of one route shares, as Python objects.
struct RouteObjects {
    /// The ``("genesys.topic", topic)`` header, the same tuple for every record.
    topic_header: Py<PyTuple>,
    kafka_topic: Py<PyAny>,
    key: Py<PyAny>,
    partition: Py<PyAny>,
    schema: Py<PyAny>,
}

/// A field of the record type, and where its value comes from.
enum Field {
    Topic,
    Value,
    Key,
    Partition,
    Offset,
    Timestamp,
    Headers,
    ValueSchema,
    Constant(Py<PyAny>),
}

/// How records and values are made: ``object.__new__`` then each slot set directly (what a
/// frozen dataclass's ``__init__`` does, without running Python code per record).
struct Factory {
    object_new: Py<PyAny>,
    record_type: Py<PyAny>,
    record_fields: Vec<(Py<PyString>, Field)>,
    value_type: Py<PyAny>,
    value_fields: [Py<PyString>; 5],
    decode: Py<PyAny>,
    offset_keys: [Py<PyString>; 3],
}

/// A compiled Genesys plan; see ``connector/plugins/genesys/native.py``.
#[pyclass(frozen, module = "connector._native")]
struct GenesysPlan {
    plan: genesys::Plan,
    routes: Vec<RouteObjects>,
    factory: Factory,
    headers: [Py<PyString>; 5],
    /// ``("genesys.version", v)`` headers already made (Genesys sends one or two versions).
    version_headers: std::sync::Mutex<Vec<(String, Py<PyTuple>)>>,
}

/// At most this many distinct version headers are kept for reuse.
const VERSION_HEADERS_KEPT: usize = 8;

fn set_slot(target: &Bound<'_, PyAny>, name: &Py<PyString>, value: &Bound<'_, PyAny>) -> PyResult<()> {
    // SAFETY: three live objects; the generic setter stores into the type's slot descriptor
    // (object.__setattr__), as a frozen dataclass's own __init__ does.
    let rc = unsafe {
        pyo3::ffi::PyObject_GenericSetAttr(target.as_ptr(), name.as_ptr(), value.as_ptr())
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(PyErr::fetch(target.py()))
    }
}

#[pymethods]
impl GenesysPlan {
    /// ``GenesysPlan(spec, routes, record_type, record_fields, value_type, decode)``:
    /// ``spec`` the JSON plan; ``routes`` per route ``(kafka_topic, key, partition, schema)``;
    /// ``record_fields`` the record type's fields in order as ``(name, constant)`` (the
    /// constant is used for a field this plan does not fill); ``value_type`` the
    /// ``EncodedAvro`` class; ``decode(payload)`` its materialiser.
    #[new]
    fn new(
        py: Python<'_>,
        spec: &str,
        routes: Vec<(Py<PyAny>, Py<PyAny>, Py<PyAny>, Py<PyAny>)>,
        record_type: Py<PyAny>,
        record_fields: Vec<(String, Py<PyAny>)>,
        value_type: Py<PyAny>,
        decode: Py<PyAny>,
    ) -> PyResult<Self> {
        let spec: PlanSpec = serde_json::from_str(spec)
            .map_err(|e| PyValueError::new_err(format!("bad plan spec: {e}")))?;
        let mut schemas = Vec::with_capacity(spec.schemas.len());
        for schema in spec.schemas {
            schemas.push(avro::Schema::new(schema).map_err(PyValueError::new_err)?);
        }
        if routes.len() != spec.routes.len() {
            return Err(PyValueError::new_err("one route object per route of the spec"));
        }
        let mut route_objects = Vec::with_capacity(routes.len());
        let mut plan_routes = Vec::with_capacity(spec.routes.len());
        let mut by_topic = HashMap::with_hasher(json::Hasher::default());
        for ((index, route), objects) in spec.routes.into_iter().enumerate().zip(routes) {
            let schema = schemas
                .get(route.schema)
                .ok_or_else(|| PyValueError::new_err(format!("route {index}: no schema")))?;
            let forced = match route.detail_event {
                Some(text) => schema.top_field(DETAIL_EVENT_FIELD).map(|at| (at, text)),
                None => None,
            };
            if by_topic.insert(route.topic.clone(), index).is_some() {
                return Err(PyValueError::new_err(format!("topic {} twice", route.topic)));
            }
            let (kafka_topic, key, partition, schema) = objects;
            let topic_header =
                (PyString::intern(py, HEADER_TOPIC), PyString::new(py, &route.topic));
            route_objects.push(RouteObjects {
                topic_header: topic_header.into_pyobject(py)?.unbind(),
                kafka_topic,
                key,
                partition,
                schema,
            });
            plan_routes.push(genesys::Route {
                schema: route.schema,
                key: route.key,
                timestamps: route.timestamps,
                forced,
            });
        }
        let name = |name: &str| PyString::intern(py, name).unbind();
        let header = name;
        let mut fields = Vec::with_capacity(record_fields.len());
        for (field, constant) in record_fields {
            let source = match field.as_str() {
                "topic" => Field::Topic,
                "value" => Field::Value,
                "key" => Field::Key,
                "source_partition" => Field::Partition,
                "source_offset" => Field::Offset,
                "timestamp_ms" => Field::Timestamp,
                "headers" => Field::Headers,
                "value_schema" => Field::ValueSchema,
                _ => Field::Constant(constant),
            };
            fields.push((name(&field), source));
        }
        let object_new = py.import("builtins")?.getattr("object")?.getattr("__new__")?.unbind();
        let factory = Factory {
            object_new,
            record_type,
            record_fields: fields,
            value_type,
            value_fields: [
                name("body"),
                name("schema"),
                name("_source"),
                name("_decode"),
                name("_value"),
            ],
            decode,
            offset_keys: [name("event_time_ms"), name("correlation_id"), name("seen_ms")],
        };
        Ok(GenesysPlan {
            plan: genesys::Plan { schemas, routes: plan_routes, by_topic },
            routes: route_objects,
            factory,
            version_headers: std::sync::Mutex::new(Vec::new()),
            headers: [
                header(HEADER_TOPIC),
                header(HEADER_VERSION),
                header(HEADER_CORRELATION_ID),
                header(HEADER_METADATA),
                header(HEADER_ENVELOPE_UNKNOWN),
            ],
        })
    }

    /// Per frame (``Frame``: payload, received_ns, source), its ``SourceRecord`` (value an
    /// ``EncodedAvro``), or ``None``: the Python path decides (``str`` payloads included).
    /// Parsing, fitting and encoding run with the interpreter lock released.
    fn records<'py>(&self, py: Python<'py>, frames: &Bound<'py, PyList>) -> PyResult<Bound<'py, PyList>> {
        let mut held: Vec<Bound<'py, PyAny>> = Vec::with_capacity(frames.len());
        let mut received: Vec<i64> = Vec::with_capacity(frames.len());
        for frame in frames.iter() {
            let frame = frame.cast_into::<PyTuple>()?;
            held.push(frame.get_item(0)?);
            received.push(frame.get_item(1)?.extract::<i64>()?.div_euclid(1_000_000));
        }
        let payloads: Vec<Option<&[u8]>> = held
            .iter()
            .map(|p| p.cast::<PyBytes>().ok().map(|b| b.as_bytes()))
            .collect();
        let plan = &self.plan;
        let built: Vec<Option<genesys::Built>> = py.detach(|| {
            let mut arena = bumpalo::Bump::with_capacity(64 * 1024);
            let mut built = Vec::with_capacity(payloads.len());
            for payload in &payloads {
                built.push(payload.and_then(|data| plan.build(data, &arena)));
                arena.reset();
            }
            built
        });
        let out = PyList::empty(py);
        for ((item, payload), received_ms) in built.into_iter().zip(&held).zip(received) {
            match item {
                None => out.append(py.None())?,
                Some(b) => out.append(self.record(py, b, payload, received_ms)?)?,
            }
        }
        Ok(out)
    }

    /// Seconds the native work alone (parse, fit, encode; no Python objects) takes for
    /// ``rounds`` passes over ``payloads``, lock released (for the benchmark's ceilings).
    fn time_build(&self, py: Python<'_>, payloads: Vec<Vec<u8>>, rounds: usize) -> (f64, usize) {
        let plan = &self.plan;
        py.detach(|| {
            let started = std::time::Instant::now();
            let mut built = 0;
            let mut arena = bumpalo::Bump::with_capacity(64 * 1024);
            for _ in 0..rounds {
                for payload in &payloads {
                    built += plan.build(payload, &arena).is_some() as usize;
                    arena.reset();
                }
            }
            (started.elapsed().as_secs_f64(), built)
        })
    }
}

impl GenesysPlan {
    /// The version header tuple, shared between records with the same version.
    fn version_header<'py>(
        &self,
        py: Python<'py>,
        name: &Py<PyString>,
        text: &str,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let mut kept = self.version_headers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, header)) = kept.iter().find(|(v, _)| v == text) {
            return Ok(header.bind(py).clone());
        }
        let header = (name.bind(py), text).into_pyobject(py)?;
        if kept.len() < VERSION_HEADERS_KEPT {
            kept.push((text.to_string(), header.clone().unbind()));
        }
        Ok(header)
    }

    fn record<'py>(
        &self,
        py: Python<'py>,
        b: genesys::Built,
        payload: &Bound<'py, PyAny>,
        received_ms: i64,
    ) -> PyResult<Bound<'py, PyAny>> {
        let route = &self.routes[b.route];
        let f = &self.factory;
        let new = f.object_new.bind(py);

        let [_, h_version, h_correlation, h_metadata, h_unknown] = &self.headers;
        let mut items: Vec<Bound<'py, PyTuple>> = Vec::with_capacity(5);
        items.push(route.topic_header.bind(py).clone());
        if let Some(text) = &b.version {
            items.push(self.version_header(py, h_version, text)?);
        }
        let correlation = b.correlation.map(|c| PyString::new(py, &c).into_any());
        if let Some(c) = &correlation {
            items.push(PyTuple::new(py, [h_correlation.bind(py).as_any(), c])?);
        }
        if let Some(text) = &b.metadata {
            items.push((h_metadata.bind(py), text).into_pyobject(py)?);
        }
        if let Some(text) = &b.envelope_unknown {
            items.push((h_unknown.bind(py), text).into_pyobject(py)?);
        }
        let headers = PyList::new(py, items)?;

        let value = new.call1((f.value_type.bind(py),))?;
        let [v_body, v_schema, v_source, v_decode, v_value] = &f.value_fields;
        set_slot(&value, v_body, PyBytes::new(py, &b.value).as_any())?;
        set_slot(&value, v_schema, route.schema.bind(py))?;
        set_slot(&value, v_source, payload)?;
        set_slot(&value, v_decode, f.decode.bind(py))?;
        set_slot(&value, v_value, &py.None().into_bound(py))?;

        let offset = PyDict::new(py);
        let [o_event, o_correlation, o_seen] = &f.offset_keys;
        offset.set_item(o_event.bind(py), b.event_ms)?;
        offset.set_item(o_correlation.bind(py), &correlation)?;
        offset.set_item(o_seen.bind(py), received_ms)?;

        let key = match b.key {
            genesys::Key::Body(text) => PyString::new(py, &text).into_any(),
            genesys::Key::Route => route.key.bind(py).clone(),
        };
        let timestamp = b.event_ms.unwrap_or(received_ms).into_pyobject(py)?.into_any();

        let record = new.call1((f.record_type.bind(py),))?;
        for (name, source) in &f.record_fields {
            let item: &Bound<'py, PyAny> = match source {
                Field::Topic => route.kafka_topic.bind(py),
                Field::Value => &value,
                Field::Key => &key,
                Field::Partition => route.partition.bind(py),
                Field::Offset => offset.as_any(),
                Field::Timestamp => &timestamp,
                Field::Headers => headers.as_any(),
                Field::ValueSchema => route.schema.bind(py),
                Field::Constant(constant) => constant.bind(py),
            };
            set_slot(&record, name, item)?;
        }
        Ok(record)
    }
}

/// The JSON text ``orjson.dumps(orjson.loads(data))`` gives, or ``None`` where this parser
/// leaves the frame to Python (for the identity tests of the JSON layer).
#[pyfunction]
fn json_roundtrip<'py>(py: Python<'py>, data: &[u8]) -> Option<Bound<'py, PyBytes>> {
    let arena = bumpalo::Bump::new();
    let value = json::parse(data, &arena)?;
    let mut out = Vec::with_capacity(data.len());
    json::write(&mut out, &value);
    Some(PyBytes::new(py, &out))
}

/// ``orjson.dumps(value)`` of a finite float (for the float-format identity tests).
#[pyfunction]
fn format_float(value: f64) -> PyResult<String> {
    if !value.is_finite() {
        return Err(PyValueError::new_err("not finite"));
    }
    let mut out = Vec::new();
    json::write_float(&mut out, value);
    Ok(String::from_utf8(out).expect("ASCII"))
}

/// ``events.parse_time_ms`` of an ISO-8601 text, or ``None`` where only Python can say.
#[pyfunction]
fn iso_epoch_ms(text: &str) -> Option<i64> {
    isotime::epoch_ms(text).ok()
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<GenesysPlan>()?;
    m.add_function(wrap_pyfunction!(json_roundtrip, m)?)?;
    m.add_function(wrap_pyfunction!(format_float, m)?)?;
    m.add_function(wrap_pyfunction!(iso_epoch_ms, m)?)?;
    Ok(())
}

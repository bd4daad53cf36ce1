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
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};
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

/// A compiled Genesys plan: ``GenesysPlan(spec_json)``; see ``native.py`` for the spec.
#[pyclass(frozen, module = "connector._native")]
struct GenesysPlan {
    plan: genesys::Plan,
    topics: Vec<Py<PyString>>,
    headers: [Py<PyString>; 5],
}

#[pymethods]
impl GenesysPlan {
    #[new]
    fn new(py: Python<'_>, spec: &str) -> PyResult<Self> {
        let spec: PlanSpec = serde_json::from_str(spec)
            .map_err(|e| PyValueError::new_err(format!("bad plan spec: {e}")))?;
        let mut schemas = Vec::with_capacity(spec.schemas.len());
        for schema in spec.schemas {
            schemas.push(avro::Schema::new(schema).map_err(PyValueError::new_err)?);
        }
        let mut routes = Vec::with_capacity(spec.routes.len());
        let mut topics = Vec::with_capacity(spec.routes.len());
        let mut by_topic = HashMap::with_hasher(json::Hasher::default());
        for (index, route) in spec.routes.into_iter().enumerate() {
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
            topics.push(PyString::new(py, &route.topic).unbind());
            routes.push(genesys::Route {
                schema: route.schema,
                key: route.key,
                timestamps: route.timestamps,
                forced,
            });
        }
        let header = |name: &str| PyString::intern(py, name).unbind();
        Ok(GenesysPlan {
            plan: genesys::Plan { schemas, routes, by_topic },
            topics,
            headers: [
                header(HEADER_TOPIC),
                header(HEADER_VERSION),
                header(HEADER_CORRELATION_ID),
                header(HEADER_METADATA),
                header(HEADER_ENVELOPE_UNKNOWN),
            ],
        })
    }

    /// Per payload, ``None`` (the Python path decides) or
    /// ``(route, key | None, value, headers, event_ms | None, correlation_id | None)``:
    /// ``key`` ``None`` means the route's own key (entity id, else the topic); ``value`` is the
    /// Avro body without framing. ``str`` payloads are left to Python.
    fn build<'py>(
        &self,
        py: Python<'py>,
        payloads: &Bound<'py, PyList>,
    ) -> PyResult<Bound<'py, PyList>> {
        let held: Vec<Bound<'py, PyAny>> = payloads.iter().collect();
        let frames: Vec<Option<&[u8]>> = held
            .iter()
            .map(|p| p.cast::<PyBytes>().ok().map(|b| b.as_bytes()))
            .collect();
        let plan = &self.plan;
        let built: Vec<Option<genesys::Built>> =
            py.detach(|| frames.iter().map(|f| f.and_then(|data| plan.build(data))).collect());
        let out = PyList::empty(py);
        for item in built {
            match item {
                None => out.append(py.None())?,
                Some(b) => out.append(self.to_python(py, b)?)?,
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
            for _ in 0..rounds {
                for payload in &payloads {
                    built += plan.build(payload).is_some() as usize;
                }
            }
            (started.elapsed().as_secs_f64(), built)
        })
    }
}

impl GenesysPlan {
    fn to_python<'py>(&self, py: Python<'py>, b: genesys::Built) -> PyResult<Bound<'py, PyTuple>> {
        let [h_topic, h_version, h_correlation, h_metadata, h_unknown] = &self.headers;
        let headers = PyList::empty(py);
        headers.append((h_topic.bind(py), self.topics[b.route].bind(py)))?;
        if let Some(text) = &b.version {
            headers.append((h_version.bind(py), text))?;
        }
        let correlation = b.correlation.map(|c| PyString::new(py, &c));
        if let Some(c) = &correlation {
            headers.append((h_correlation.bind(py), c))?;
        }
        if let Some(text) = &b.metadata {
            headers.append((h_metadata.bind(py), text))?;
        }
        if let Some(text) = &b.envelope_unknown {
            headers.append((h_unknown.bind(py), text))?;
        }
        let key = match b.key {
            genesys::Key::Body(text) => Some(PyString::new(py, &text)),
            genesys::Key::Route => None,
        };
        (b.route, key, PyBytes::new(py, &b.value), headers, b.event_ms, correlation)
            .into_pyobject(py)
    }
}

/// The JSON text ``orjson.dumps(orjson.loads(data))`` gives, or ``None`` where this parser
/// leaves the frame to Python (for the identity tests of the JSON layer).
#[pyfunction]
fn json_roundtrip<'py>(py: Python<'py>, data: &[u8]) -> Option<Bound<'py, PyBytes>> {
    let value = json::parse(data)?;
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

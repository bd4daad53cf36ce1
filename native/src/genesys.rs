//! One Genesys frame to what its record needs, as `events.classify` + `RecordBuilder.build` do.
//!
//! [`build`] handles the frames that are plainly events of a subscribed topic and returns
//! `None` for every other frame (undecodable, not an object, a heartbeat or system message, a
//! topic not subscribed, a timestamp text in an unusual shape, a CorrelationId too long...):
//! the task then runs the Python path on that frame, so every frame that is not an ordinary
//! event keeps exactly its old outcome (and malformed input its old reason).

use serde::Deserialize;

use crate::avro::Schema;
use crate::isotime;
use crate::json::{self, Object, Value};

/// `events.MAX_CORRELATION_ID`.
const MAX_CORRELATION_ID: usize = 256;
/// `events.MAX_TIME_MS`: 9999-12-31T23:59:59.999Z.
const MAX_TIME_MS: i64 = 253_402_300_799_999;
const ENVELOPE_KEYS: [&str; 4] = ["topicName", "version", "eventBody", "metadata"];

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
pub enum KeySource {
    TopicId,
    BodyId,
    BodyUserId,
}

/// One subscribed Genesys topic, resolved in Python (`RecordBuilder.route`, `match_topic`).
#[derive(Deserialize)]
pub struct RouteSpec {
    pub topic: String,
    pub schema: usize,
    pub key: KeySource,
    pub timestamps: Vec<Vec<String>>,
    pub detail_event: Option<String>,
}

pub struct Route {
    pub schema: usize,
    pub key: KeySource,
    pub timestamps: Vec<Vec<String>>,
    /// `detail_event_type`'s field index and value, for detail events.
    pub forced: Option<(usize, String)>,
}

/// Where the record key comes from; the text is the body's (the entity id and the topic are
/// kept as Python strings per route).
pub enum Key {
    Body(String),
    Route,
}

/// What the record needs, for one frame (the rest is per route).
pub struct Built {
    pub route: usize,
    pub key: Key,
    pub value: Vec<u8>,
    pub event_ms: Option<i64>,
    pub correlation: Option<String>,
    pub version: Option<String>,
    pub metadata: Option<String>,
    pub envelope_unknown: Option<String>,
}

pub struct Plan {
    pub schemas: Vec<Schema>,
    pub routes: Vec<Route>,
    pub by_topic: std::collections::HashMap<String, usize, json::Hasher>,
}

fn dig<'a>(body: &Object<'a>, path: &[String]) -> Option<&'a Value<'a>> {
    let mut current: Option<&'a Value<'a>> = None;
    let mut object = *body;
    for (i, part) in path.iter().enumerate() {
        if i > 0 {
            object = *current?.as_object()?;
        }
        current = Some(object.get(part)?);
    }
    current
}

/// `events.parse_time_ms`; `Err` when only Python can say.
fn time_ms(value: Option<&Value>) -> Result<Option<i64>, isotime::Unsure> {
    let found = match value {
        Some(Value::Int(n)) => *n,
        Some(Value::Str(text)) if !text.is_empty() => isotime::epoch_ms(text)?,
        _ => return Ok(None), // null, missing, float, bool, u64 beyond MAX_TIME_MS, containers
    };
    Ok((0..=MAX_TIME_MS).contains(&found).then_some(found))
}

fn json_text(value: &Value) -> String {
    let mut out = Vec::with_capacity(64);
    json::write(&mut out, value);
    // json::write emits valid UTF-8: it copies the parsed (valid) strings.
    String::from_utf8(out).expect("JSON text is UTF-8")
}

impl Plan {
    /// The record parts of one frame, or `None`: leave it to the Python path.
    /// `arena` holds the parsed frame (the caller resets it between frames).
    pub fn build(&self, frame: &[u8], arena: &bumpalo::Bump) -> Option<Built> {
        let parsed = json::parse(frame, arena)?;
        let envelope = parsed.as_object()?;
        let topic = envelope.get("topicName")?.as_str()?;
        let route_index = *self.by_topic.get(topic)?;
        let route = &self.routes[route_index];
        let body = envelope.get("eventBody")?.as_object()?;

        let metadata = envelope.get("metadata");
        let correlation = match metadata {
            Some(Value::Object(m)) => m.get("CorrelationId").and_then(Value::as_str),
            _ => None,
        };
        if correlation.is_some_and(|c| c.chars().count() > MAX_CORRELATION_ID) {
            return None; // a ValueError in Python: malformed input, with its reason
        }

        let mut event_ms: Option<i64> = None;
        for path in &route.timestamps {
            if let Some(found) = time_ms(dig(body, path)).ok()? {
                if event_ms.is_none_or(|t| found > t) {
                    event_ms = Some(found);
                }
            }
        }

        let key = match route.key {
            KeySource::TopicId => None,
            KeySource::BodyId => body.get("id").and_then(Value::as_str),
            KeySource::BodyUserId => {
                let user_id = match body.get("user") {
                    Some(Value::Object(user)) => user.get("id").and_then(Value::as_str),
                    _ => None,
                };
                user_id.or_else(|| body.get("id").and_then(Value::as_str))
            }
        };

        let mut value = Vec::with_capacity(frame.len());
        let forced = route.forced.as_ref().map(|(at, text)| (*at, text.as_str()));
        self.schemas[route.schema].write(body, forced, &mut value);

        let version = match envelope.get("version") {
            None | Some(Value::Null) => None,
            Some(Value::Str(text)) => Some(text.to_string()),
            Some(other) => Some(json_text(other)),
        };
        let plain = matches!(metadata, Some(Value::Object(m)) if m.len() == 1)
            && correlation.is_some();
        let metadata = match metadata {
            None | Some(Value::Null) => None,
            Some(_) if plain => None,
            Some(other) => Some(json_text(other)),
        };
        let envelope_unknown = if envelope.keys().any(|k| !ENVELOPE_KEYS.contains(&k)) {
            let mut out = Vec::with_capacity(64);
            json::write_object(&mut out, envelope.iter().filter(|(k, _)| !ENVELOPE_KEYS.contains(k)));
            Some(String::from_utf8(out).expect("JSON text is UTF-8"))
        } else {
            None
        };

        Some(Built {
            route: route_index,
            key: match key {
                Some(text) => Key::Body(text.to_string()),
                None => Key::Route,
            },
            value,
            event_ms,
            correlation: correlation.map(str::to_string),
            version,
            metadata,
            envelope_unknown,
        })
    }
}

//! Event messages as Mastermind publishes them (reference §3.6): one JSON object per STOMP
//! MESSAGE, its shape given by the queue's object type.
//!
//! Parsing is strict about what a handler needs (a missing or malformed id refuses the
//! message with one line) and lenient about the rest: a field this agent does not know is
//! reported, never fatal, so a newer Mastermind does not stop event processing.

use std::collections::BTreeSet;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{Map, Value};

/// The queue suffixes of the reference (`_determine_observable_object_types`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectType {
    Order,
    UserRole,
    Resource,
    OfferingUser,
    OfferingResourcesSync,
    ServiceAccount,
    CourseAccount,
    ImportableResources,
    ResourcePeriodicLimits,
    ResourceApiKeyRotation,
}

impl ObjectType {
    pub const ALL: [ObjectType; 10] = [
        ObjectType::Order,
        ObjectType::UserRole,
        ObjectType::Resource,
        ObjectType::OfferingUser,
        ObjectType::OfferingResourcesSync,
        ObjectType::ServiceAccount,
        ObjectType::CourseAccount,
        ObjectType::ImportableResources,
        ObjectType::ResourcePeriodicLimits,
        ObjectType::ResourceApiKeyRotation,
    ];

    /// The name in queue names and A6/A7 bodies.
    pub fn name(self) -> &'static str {
        match self {
            ObjectType::Order => "order",
            ObjectType::UserRole => "user_role",
            ObjectType::Resource => "resource",
            ObjectType::OfferingUser => "offering_user",
            ObjectType::OfferingResourcesSync => "offering_resources_sync",
            ObjectType::ServiceAccount => "service_account",
            ObjectType::CourseAccount => "course_account",
            ObjectType::ImportableResources => "importable_resources",
            ObjectType::ResourcePeriodicLimits => "resource_periodic_limits",
            ObjectType::ResourceApiKeyRotation => "resource_api_key_rotation",
        }
    }

    pub fn from_name(name: &str) -> Option<ObjectType> {
        ObjectType::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The object type a queue or destination belongs to: its name ends with
    /// `_<object type>` (`subscription_<es>_offering_<o>_order`, `/amq/queue/..._course_account`).
    /// The longest match wins, so `..._service_account` is never read as `..._account`.
    pub fn of_destination(destination: &str) -> Option<ObjectType> {
        ObjectType::ALL
            .into_iter()
            .filter(|t| {
                destination
                    .strip_suffix(t.name())
                    .is_some_and(|rest| rest.is_empty() || rest.ends_with(['_', '/']))
            })
            .max_by_key(|t| t.name().len())
    }
}

/// Order states whose events need no work (the reference drops them).
const FINISHED_ORDER_STATES: &[&str] = &[
    "done",
    "erred",
    "pending-consumer",
    "canceled",
    "rejected",
    "pending-project",
    "pending-start-date",
];

/// One event, parsed.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Order {
        order_uuid: String,
        order_state: String,
    },
    UserRole(UserRole),
    Resource {
        resource_uuid: String,
    },
    OfferingUser(OfferingUserEvent),
    OfferingResourcesSync {
        offering_uuid: String,
    },
    Account {
        course: bool,
        account: AccountEvent,
    },
    ImportableResources {
        backend_resource_request_uuid: String,
    },
    PeriodicLimits(PeriodicLimits),
    ApiKeyRotation(ApiKeyRotation),
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct UserRole {
    #[serde(default)]
    pub user_uuid: Option<String>,
    #[serde(default)]
    pub user_username: Option<String>,
    pub project_uuid: String,
    #[serde(default)]
    pub project_name: String,
    #[serde(default)]
    pub role_name: String,
    #[serde(default)]
    pub granted: Option<bool>,
    #[serde(default)]
    pub resource_uuid: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct OfferingUserEvent {
    #[serde(default)]
    pub offering_user_uuid: String,
    pub user_uuid: String,
    #[serde(default)]
    pub username: String,
    pub action: String,
    #[serde(default)]
    pub offering_uuid: String,
    #[serde(default)]
    pub attributes: Map<String, Value>,
    #[serde(default)]
    pub changed_attributes: Vec<String>,
    #[serde(default)]
    pub resource_backend_ids: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct AccountEvent {
    #[serde(default)]
    pub account_uuid: String,
    pub account_username: String,
    #[serde(default)]
    pub scope_type: String,
    pub project_uuid: String,
    #[serde(default)]
    pub project_name: String,
    pub action: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct PeriodicLimits {
    pub resource_uuid: String,
    #[serde(default)]
    pub backend_id: String,
    #[serde(default)]
    pub offering_uuid: String,
    #[serde(default)]
    pub policy_uuid: Option<String>,
    #[serde(default)]
    pub action: String,
    #[serde(default)]
    pub settings: Map<String, Value>,
    #[serde(default)]
    pub timestamp: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ApiKeyRotation {
    #[serde(default)]
    pub action: String,
    pub resource_uuid: String,
    #[serde(default)]
    pub resource_backend_id: String,
    #[serde(default)]
    pub api_key_uuid: String,
    #[serde(default)]
    pub client_id: String,
}

/// A message that cannot be handled: one line, without the body (it may carry user data).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Malformed(String);

/// What parsing found.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    /// `None` for events that need no work (an order event of a finished order).
    pub event: Option<Event>,
    /// Top-level fields this agent does not know (reported once per message).
    pub unknown_fields: Vec<String>,
}

/// The fields each type's message may carry (reference `event_processing/structures.py`).
fn known_fields(object_type: ObjectType) -> &'static [&'static str] {
    match object_type {
        ObjectType::Order => &["order_uuid", "order_state"],
        ObjectType::UserRole => &[
            "user_uuid",
            "user_username",
            "project_uuid",
            "project_name",
            "role_name",
            "granted",
            "resource_uuid",
        ],
        ObjectType::Resource => &["resource_uuid"],
        ObjectType::OfferingUser => &[
            "offering_user_uuid",
            "user_uuid",
            "username",
            "action",
            "offering_uuid",
            "attributes",
            "changed_attributes",
            "resource_backend_ids",
        ],
        ObjectType::OfferingResourcesSync => &["offering_uuid", "requested_by_user_uuid"],
        ObjectType::ServiceAccount | ObjectType::CourseAccount => &[
            "account_uuid",
            "account_username",
            "scope_type",
            "project_uuid",
            "project_name",
            "action",
        ],
        ObjectType::ImportableResources => &["backend_resource_request_uuid"],
        ObjectType::ResourcePeriodicLimits => &[
            "resource_uuid",
            "backend_id",
            "offering_uuid",
            "policy_uuid",
            "action",
            "settings",
            "timestamp",
        ],
        ObjectType::ResourceApiKeyRotation => &[
            "action",
            "resource_uuid",
            "resource_backend_id",
            "api_key_uuid",
            "client_id",
        ],
    }
}

/// The field naming a message's object type on a single queue (`consumer_<id>`, Mastermind's
/// `register_queue`), where the queue name cannot say it.
pub const OBJECT_TYPE_FIELD: &str = "object_type";

/// Parses the body of a message from a single queue: its `object_type` field says the type.
pub fn parse_tagged(body: &[u8]) -> Result<(ObjectType, Parsed), Malformed> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| Malformed(format!("the body is not JSON ({e})")))?;
    let Value::Object(mut fields) = value else {
        return Err(Malformed("the body is not a JSON object".into()));
    };
    let object_type = match fields.remove(OBJECT_TYPE_FIELD) {
        Some(Value::String(name)) => ObjectType::from_name(&name).ok_or_else(|| {
            Malformed(format!(
                "'{OBJECT_TYPE_FIELD}' is {:?}, not an object type this agent handles",
                name.chars().take(64).collect::<String>()
            ))
        })?,
        Some(_) => return Err(Malformed(format!("'{OBJECT_TYPE_FIELD}' is not a string"))),
        None => {
            return Err(Malformed(format!(
                "no '{OBJECT_TYPE_FIELD}' field, which a message on a single queue needs"
            )))
        }
    };
    Ok((object_type, parse(object_type, body)?))
}

/// Parses the body of a message from a queue of `object_type`.
pub fn parse(object_type: ObjectType, body: &[u8]) -> Result<Parsed, Malformed> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| Malformed(format!("the body is not JSON ({e})")))?;
    let Value::Object(fields) = value else {
        return Err(Malformed("the body is not a JSON object".into()));
    };
    let mut known: BTreeSet<&str> = known_fields(object_type).iter().copied().collect();
    // A single queue's messages name their type (see `parse_tagged`).
    known.insert(OBJECT_TYPE_FIELD);
    let unknown_fields = fields
        .keys()
        .filter(|k| !known.contains(k.as_str()))
        .cloned()
        .collect();
    let event = match object_type {
        ObjectType::Order => {
            let order_uuid = uuid_field(&fields, "order_uuid")?;
            let order_state = text_field(&fields, "order_state")?;
            (!FINISHED_ORDER_STATES.contains(&order_state.as_str())).then_some(Event::Order {
                order_uuid,
                order_state,
            })
        }
        ObjectType::UserRole => {
            let mut role: UserRole = typed(&fields)?;
            role.project_uuid = checked_uuid("project_uuid", &role.project_uuid)?;
            if let Some(user) = role.user_uuid.as_mut() {
                *user = checked_uuid("user_uuid", user)?;
                if role.granted.is_none() {
                    return Err(Malformed(
                        "a role change of a user without 'granted'".into(),
                    ));
                }
            }
            if let Some(resource) = role.resource_uuid.as_mut() {
                *resource = checked_uuid("resource_uuid", resource)?;
            }
            Some(Event::UserRole(role))
        }
        ObjectType::Resource => Some(Event::Resource {
            resource_uuid: uuid_field(&fields, "resource_uuid")?,
        }),
        ObjectType::OfferingUser => {
            let mut event: OfferingUserEvent = typed(&fields)?;
            event.user_uuid = checked_uuid("user_uuid", &event.user_uuid)?;
            Some(Event::OfferingUser(event))
        }
        ObjectType::OfferingResourcesSync => Some(Event::OfferingResourcesSync {
            offering_uuid: uuid_field(&fields, "offering_uuid")?,
        }),
        ObjectType::ServiceAccount | ObjectType::CourseAccount => {
            let mut account: AccountEvent = typed(&fields)?;
            account.project_uuid = checked_uuid("project_uuid", &account.project_uuid)?;
            Some(Event::Account {
                course: object_type == ObjectType::CourseAccount,
                account,
            })
        }
        ObjectType::ImportableResources => Some(Event::ImportableResources {
            backend_resource_request_uuid: uuid_field(&fields, "backend_resource_request_uuid")?,
        }),
        ObjectType::ResourcePeriodicLimits => {
            let mut limits: PeriodicLimits = typed(&fields)?;
            limits.resource_uuid = checked_uuid("resource_uuid", &limits.resource_uuid)?;
            Some(Event::PeriodicLimits(limits))
        }
        ObjectType::ResourceApiKeyRotation => {
            let mut rotation: ApiKeyRotation = typed(&fields)?;
            rotation.resource_uuid = checked_uuid("resource_uuid", &rotation.resource_uuid)?;
            Some(Event::ApiKeyRotation(rotation))
        }
    };
    Ok(Parsed {
        event,
        unknown_fields,
    })
}

impl Event {
    /// Events with the same key are handled in arrival order; others run concurrently. The
    /// key is the object the event changes: a resource, a project, a user, the offering.
    /// An order event names only its order; its resource is serialized after the order is
    /// read (see the handler).
    pub fn ordering_key(&self) -> String {
        match self {
            Event::Order { order_uuid, .. } => format!("order/{order_uuid}"),
            Event::UserRole(role) => match &role.resource_uuid {
                Some(resource) => format!("resource/{resource}"),
                None => format!("project/{}", role.project_uuid),
            },
            Event::Resource { resource_uuid }
            | Event::PeriodicLimits(PeriodicLimits { resource_uuid, .. })
            | Event::ApiKeyRotation(ApiKeyRotation { resource_uuid, .. }) => {
                format!("resource/{resource_uuid}")
            }
            Event::OfferingUser(user) => format!("user/{}", user.user_uuid),
            Event::Account { account, .. } => format!("project/{}", account.project_uuid),
            Event::OfferingResourcesSync { offering_uuid } => format!("offering/{offering_uuid}"),
            Event::ImportableResources {
                backend_resource_request_uuid,
            } => format!("import/{backend_resource_request_uuid}"),
        }
    }
}

fn typed<T: DeserializeOwned>(fields: &Map<String, Value>) -> Result<T, Malformed> {
    serde_json::from_value(Value::Object(fields.clone())).map_err(|e| Malformed(e.to_string()))
}

fn text_field(fields: &Map<String, Value>, name: &str) -> Result<String, Malformed> {
    match fields.get(name) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(_) => Err(Malformed(format!("'{name}' is not a non-empty string"))),
        None => Err(Malformed(format!("'{name}' is missing"))),
    }
}

fn uuid_field(fields: &Map<String, Value>, name: &str) -> Result<String, Malformed> {
    checked_uuid(name, &text_field(fields, name)?)
}

/// A UUID in any of Waldur's spellings, as 32 lower-case hex digits.
fn checked_uuid(name: &str, value: &str) -> Result<String, Malformed> {
    let hex: String = value.chars().filter(|c| *c != '-').collect();
    if hex.len() == 32 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(hex.to_ascii_lowercase())
    } else {
        Err(Malformed(format!(
            "'{name}' is not a UUID: {:?}",
            value.chars().take(40).collect::<String>()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const U: &str = "0f0f0f0f-0f0f-0f0f-0f0f-0f0f0f0f0f01";
    const HEX: &str = "0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f01";

    fn parse_str(t: ObjectType, body: &str) -> Result<Parsed, Malformed> {
        parse(t, body.as_bytes())
    }

    #[test]
    fn destinations_name_their_object_type() {
        let q = |s| ObjectType::of_destination(s);
        assert_eq!(
            q("subscription_ab_offering_cd_order"),
            Some(ObjectType::Order)
        );
        assert_eq!(
            q("/amq/queue/subscription_ab_offering_cd_course_account"),
            Some(ObjectType::CourseAccount)
        );
        assert_eq!(
            q("subscription_ab_offering_cd_service_account"),
            Some(ObjectType::ServiceAccount)
        );
        assert_eq!(
            q("subscription_ab_offering_cd_offering_user"),
            Some(ObjectType::OfferingUser)
        );
        assert_eq!(q("subscription_ab_offering_cd_border"), None);
        assert_eq!(q("nothing"), None);
        for t in ObjectType::ALL {
            assert_eq!(ObjectType::from_name(t.name()), Some(t));
        }
    }

    #[test]
    fn orders_of_finished_states_need_no_work() {
        let done = parse_str(
            ObjectType::Order,
            &format!(r#"{{"order_uuid": "{U}", "order_state": "done"}}"#),
        )
        .unwrap();
        assert_eq!(done.event, None);
        let pending = parse_str(
            ObjectType::Order,
            &format!(r#"{{"order_uuid": "{U}", "order_state": "executing", "new": 1}}"#),
        )
        .unwrap();
        assert_eq!(
            pending.event,
            Some(Event::Order {
                order_uuid: HEX.into(),
                order_state: "executing".into()
            })
        );
        assert_eq!(pending.unknown_fields, ["new"]);
    }

    #[test]
    fn malformed_messages_say_what_is_wrong_in_one_line() {
        let cases = [
            (ObjectType::Order, "not json", "not JSON"),
            (ObjectType::Order, "[1]", "not a JSON object"),
            (
                ObjectType::Order,
                r#"{"order_state": "executing"}"#,
                "'order_uuid' is missing",
            ),
            (
                ObjectType::Order,
                r#"{"order_uuid": "x../..", "order_state": "executing"}"#,
                "'order_uuid' is not a UUID",
            ),
            (
                ObjectType::Resource,
                r#"{"resource_uuid": 5}"#,
                "not a non-empty string",
            ),
            (
                ObjectType::UserRole,
                &format!(r#"{{"user_uuid": "{U}", "project_uuid": "{U}"}}"#),
                "without 'granted'",
            ),
            (
                ObjectType::UserRole,
                r#"{"role_name": "x"}"#,
                "project_uuid",
            ),
        ];
        for (t, body, expected) in cases {
            let e = parse_str(t, body).unwrap_err().to_string();
            assert!(e.contains(expected), "{body}: {e}");
            assert!(!e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn events_of_one_object_share_an_ordering_key() {
        let role = |resource: Option<&str>| {
            parse_str(
                ObjectType::UserRole,
                &match resource {
                    Some(r) => format!(r#"{{"project_uuid": "{U}", "resource_uuid": "{r}"}}"#),
                    None => {
                        format!(r#"{{"project_uuid": "{U}", "user_uuid": "{U}", "granted": true}}"#)
                    }
                },
            )
            .unwrap()
            .event
            .unwrap()
        };
        let resource = parse_str(
            ObjectType::Resource,
            &format!(r#"{{"resource_uuid": "{U}"}}"#),
        )
        .unwrap()
        .event
        .unwrap();
        assert_eq!(role(Some(U)).ordering_key(), resource.ordering_key());
        assert_eq!(role(None).ordering_key(), format!("project/{HEX}"));
    }

    #[test]
    fn a_single_queue_message_names_its_type() {
        let body = format!(r#"{{"object_type": "resource", "resource_uuid": "{U}"}}"#);
        let (object_type, parsed) = parse_tagged(body.as_bytes()).unwrap();
        assert_eq!(object_type, ObjectType::Resource);
        assert!(
            parsed.unknown_fields.is_empty(),
            "{:?}",
            parsed.unknown_fields
        );
        for (body, expected) in [
            (format!(r#"{{"resource_uuid": "{U}"}}"#), "no 'object_type'"),
            (r#"{"object_type": 7}"#.to_string(), "not a string"),
            (
                r#"{"object_type": "floor\nwax"}"#.to_string(),
                "not an object type",
            ),
            ("[1]".to_string(), "not a JSON object"),
        ] {
            let e = parse_tagged(body.as_bytes()).unwrap_err().to_string();
            assert!(e.contains(expected) && !e.contains('\n'), "{body}: {e}");
        }
    }
}

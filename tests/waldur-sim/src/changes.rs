//! What Waldur's users change on Mastermind's side, each with the message Mastermind then
//! publishes to the agents of the offerings concerned (reference §3.6 bodies): an order
//! approved by its consumer, a role granted
//! or revoked, a resource changed, an offering user's username or attributes set, a service
//! or course account created or deleted, an offering resync asked for.
//!
//! Tests apply them through [`crate::Simulator::apply_change`] and other languages through
//! `POST /__sim/changes`, so a change and its message can never disagree.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{json, Value};

use crate::app::App;
use crate::lifecycle::OrderEvent;
use crate::store::{now, Order, RoleGrant, Store, TeamMember};

/// One change, as `POST /__sim/changes` takes it (`{"kind": "role_granted", ...}`).
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Change {
    /// A user ordered (a scenario order spec; a `Create` without a resource gets one in
    /// `Creating`). Announced when it is `pending-provider` or `executing` (the state an
    /// order reaches without the provider's approval, which would publish a second event).
    OrderCreated {
        order: crate::scenario::OrderSpec,
    },
    /// The consumer approved an order waiting for them: it waits for the provider now.
    ConsumerApproved {
        order_uuid: String,
    },
    /// The user gets `role` in the project (added to the team).
    RoleGranted {
        project_uuid: String,
        user_uuid: String,
        role: String,
    },
    /// The user loses `role` in the project (taken off the team).
    RoleRevoked {
        project_uuid: String,
        user_uuid: String,
        role: String,
    },
    /// The resource was edited (`restrict_member_access` when given).
    ResourceChanged {
        resource_uuid: String,
        restrict_member_access: Option<bool>,
    },
    /// The offering user got its username (state OK).
    UsernameSet {
        offering_user_uuid: String,
        username: String,
    },
    /// The offering user's profile attributes changed.
    UserAttributesChanged {
        offering_user_uuid: String,
        attributes: serde_json::Map<String, Value>,
    },
    /// A service (`course: false`) or course account of the project, state OK.
    AccountCreated {
        course: bool,
        project_uuid: String,
        uuid: String,
        username: String,
    },
    AccountDeleted {
        course: bool,
        uuid: String,
    },
    /// A user asks Waldur to resync every resource of the offering.
    OfferingSyncRequested {
        offering_uuid: String,
        requested_by_user_uuid: String,
    },
}

/// A message for one offering's agents.
struct Message {
    offering_uuid: String,
    object_type: &'static str,
    body: Value,
}

/// The order's state change, as every order transition announces it.
fn order_message(order: &Order) -> Message {
    let event = OrderEvent::of(order);
    Message {
        offering_uuid: event.offering_uuid,
        object_type: "order",
        body: event.body,
    }
}

fn id(reference: &str, what: &str) -> Result<String, String> {
    crate::ids::normalize(reference).ok_or_else(|| format!("{what}: '{reference}' is not a UUID"))
}

/// The object `reference` (any UUID form) names in `map`, with its id.
fn object<'a, T>(
    map: &'a mut BTreeMap<String, T>,
    reference: &str,
    what: &str,
) -> Result<(String, &'a mut T), String> {
    let uuid = id(reference, what)?;
    match map.get_mut(&uuid) {
        Some(object) => Ok((uuid, object)),
        None => Err(format!("no {what} {uuid}")),
    }
}

/// Offerings with a resource in the project: the ones whose agents hear of its team.
fn offerings_of_project(st: &Store, project_uuid: &str) -> Vec<String> {
    let mut offerings: Vec<String> = st
        .resources
        .values()
        .filter(|r| r.project_uuid == project_uuid && r.state != "Terminated")
        .map(|r| r.offering_uuid.clone())
        .collect();
    offerings.sort();
    offerings.dedup();
    offerings
}

fn role_messages(
    st: &Store,
    project_uuid: &str,
    user_uuid: &str,
    role: &str,
    granted: bool,
) -> Result<Vec<Message>, String> {
    let project = st
        .projects
        .get(project_uuid)
        .ok_or_else(|| format!("no project {project_uuid}"))?;
    let user = st
        .users
        .get(user_uuid)
        .ok_or_else(|| format!("no user {user_uuid}"))?;
    let body = json!({
        "user_uuid": user.uuid, "user_username": user.username, "project_uuid": project.uuid,
        "project_name": project.name, "role_name": role, "granted": granted,
    });
    Ok(offerings_of_project(st, project_uuid)
        .into_iter()
        .map(|offering_uuid| Message {
            offering_uuid,
            object_type: "user_role",
            body: body.clone(),
        })
        .collect())
}

fn offering_user_message(
    st: &Store,
    offering_user_uuid: &str,
    action: &str,
    attributes: &serde_json::Map<String, Value>,
) -> Result<Message, String> {
    let user = st
        .offering_users
        .get(offering_user_uuid)
        .ok_or_else(|| format!("no offering user {offering_user_uuid}"))?;
    // The backend ids of the offering's resources in the user's projects.
    let projects: Vec<&str> = st
        .team
        .iter()
        .filter(|m| m.user_uuid == user.user_uuid)
        .map(|m| m.project_uuid.as_str())
        .collect();
    let backend_ids: Vec<&str> = st
        .resources
        .values()
        .filter(|r| {
            r.offering_uuid == user.offering_uuid
                && !r.backend_id.is_empty()
                && projects.contains(&r.project_uuid.as_str())
        })
        .map(|r| r.backend_id.as_str())
        .collect();
    let changed: Vec<&String> = attributes.keys().collect();
    Ok(Message {
        offering_uuid: user.offering_uuid.clone(),
        object_type: "offering_user",
        body: json!({
            "offering_user_uuid": user.uuid, "user_uuid": user.user_uuid,
            "username": user.username.clone().unwrap_or_default(), "action": action,
            "offering_uuid": user.offering_uuid, "attributes": attributes,
            "changed_attributes": changed, "resource_backend_ids": backend_ids,
        }),
    })
}

fn account_message(course: bool, account: &Value, action: &str, st: &Store) -> Vec<Message> {
    let project_uuid = account["project_uuid"].as_str().unwrap_or_default();
    let project_name = st
        .projects
        .get(project_uuid)
        .map(|p| p.name.clone())
        .unwrap_or_default();
    let body = json!({
        "account_uuid": account["uuid"], "account_username": account["username"],
        "scope_type": "project", "project_uuid": project_uuid, "project_name": project_name,
        "action": action,
    });
    offerings_of_project(st, project_uuid)
        .into_iter()
        .map(|offering_uuid| Message {
            offering_uuid,
            object_type: if course {
                "course_account"
            } else {
                "service_account"
            },
            body: body.clone(),
        })
        .collect()
}

fn accounts(st: &mut Store, course: bool) -> &mut Vec<Value> {
    if course {
        &mut st.course_accounts
    } else {
        &mut st.service_accounts
    }
}

/// Puts the user on the project's team with `role` or takes them off it.
fn change_role(
    st: &mut Store,
    project: &str,
    user: &str,
    role: String,
    granted: bool,
) -> Result<Vec<Message>, String> {
    let member = TeamMember {
        project_uuid: id(project, "project")?,
        user_uuid: id(user, "user")?,
        role,
    };
    let messages = role_messages(
        st,
        &member.project_uuid,
        &member.user_uuid,
        &member.role,
        granted,
    )?;
    let same = |m: &TeamMember| {
        m.project_uuid == member.project_uuid
            && m.user_uuid == member.user_uuid
            && m.role == member.role
    };
    if !granted {
        st.team.retain(|m| !same(m));
        st.role_grants.remove(&RoleGrant::key(&member));
    } else if !st.team.iter().any(same) {
        st.team.push(member);
    }
    Ok(messages)
}

/// Applies the change to the store and answers the messages it causes.
fn apply_to_store(st: &mut Store, change: Change) -> Result<Vec<Message>, String> {
    match change {
        Change::OrderCreated { order } => {
            let uuid = st.load_order(&order, &now()).map_err(|e| e.to_string())?;
            let order = &st.orders[&uuid];
            if !matches!(order.state.as_str(), "pending-provider" | "executing") {
                return Ok(Vec::new());
            }
            Ok(vec![order_message(order)])
        }
        Change::ConsumerApproved { order_uuid } => {
            let (uuid, order) = object(&mut st.orders, &order_uuid, "order")?;
            if order.state != "pending-consumer" {
                return Err(format!(
                    "order {uuid} is {}, not pending-consumer",
                    order.state
                ));
            }
            order.state = "pending-provider".into();
            order.modified = now();
            Ok(vec![order_message(order)])
        }
        Change::RoleGranted {
            project_uuid,
            user_uuid,
            role,
        } => change_role(st, &project_uuid, &user_uuid, role, true),
        Change::RoleRevoked {
            project_uuid,
            user_uuid,
            role,
        } => change_role(st, &project_uuid, &user_uuid, role, false),
        Change::ResourceChanged {
            resource_uuid,
            restrict_member_access,
        } => {
            let (uuid, resource) = object(&mut st.resources, &resource_uuid, "resource")?;
            if let Some(restrict) = restrict_member_access {
                resource.restrict_member_access = restrict;
            }
            resource.modified = now();
            Ok(vec![Message {
                offering_uuid: resource.offering_uuid.clone(),
                object_type: "resource",
                body: json!({"resource_uuid": uuid}),
            }])
        }
        Change::UsernameSet {
            offering_user_uuid,
            username,
        } => {
            let (uuid, user) =
                object(&mut st.offering_users, &offering_user_uuid, "offering user")?;
            user.username = Some(username);
            user.state = "OK".into();
            user.modified = now();
            Ok(vec![offering_user_message(
                st,
                &uuid,
                "username_set",
                &serde_json::Map::new(),
            )?])
        }
        Change::UserAttributesChanged {
            offering_user_uuid,
            attributes,
        } => {
            let uuid = id(&offering_user_uuid, "offering user")?;
            Ok(vec![offering_user_message(
                st,
                &uuid,
                "attribute_update",
                &attributes,
            )?])
        }
        Change::AccountCreated {
            course,
            project_uuid,
            uuid,
            username,
        } => {
            let account = json!({"uuid": id(&uuid, "account")?, "username": username,
                                 "project_uuid": id(&project_uuid, "project")?, "state": "OK"});
            let messages = account_message(course, &account, "create", st);
            accounts(st, course).push(account);
            Ok(messages)
        }
        Change::AccountDeleted { course, uuid } => {
            let uuid = id(&uuid, "account")?;
            let list = accounts(st, course);
            let at = list
                .iter()
                .position(|a| a["uuid"] == uuid.as_str())
                .ok_or_else(|| format!("no account {uuid}"))?;
            let account = list.remove(at);
            Ok(account_message(course, &account, "delete", st))
        }
        Change::OfferingSyncRequested {
            offering_uuid,
            requested_by_user_uuid,
        } => {
            let offering_uuid = id(&offering_uuid, "offering")?;
            if !st.offerings.contains_key(&offering_uuid) {
                return Err(format!("no offering {offering_uuid}"));
            }
            Ok(vec![Message {
                body: json!({"offering_uuid": offering_uuid,
                             "requested_by_user_uuid": requested_by_user_uuid}),
                offering_uuid,
                object_type: "offering_resources_sync",
            }])
        }
    }
}

/// Applies the change and publishes its messages; answers how many queues they went to.
pub fn apply(app: &App, change: Change) -> Result<usize, String> {
    let messages = apply_to_store(&mut app.store(), change)?;
    Ok(messages
        .into_iter()
        .map(|m| app.publish_event(&m.offering_uuid, m.object_type, m.body))
        .sum())
}

//! What the embedded simulator is seeded with for one order: the configured offering with its
//! components, the service provider, the order's customer and project, a team member with an
//! offering user, the resource and the order.

use serde_json::Map;
use waldur_sim::scenario::{
    ComponentSpec, CustomerSpec, OfferingSpec, OfferingUserSpec, OrderSpec, ProjectSpec,
    ResourceSpec, TeamMemberSpec,
};
use waldur_sim::{ids, Scenario};

use super::order::{OrderKind, TestOrder};
use crate::config::Offering;

/// The token the agent uses on the embedded simulator.
pub const TOKEN: &str = "test-order-token";
/// The project member whose offering user the processor adds to a created resource.
pub const MEMBER: &str = "test-user@example.org";
pub const MEMBER_USERNAME: &str = "test-user";

/// The scenario for `order` on `offering`, and the uuid of the Create order that must run
/// first, if any. The resource is `Creating` with the order's limits when the order creates
/// it; when the order needs it to exist, it is `Creating` without limits and the scenario holds
/// the Create order that makes it instead of `order` (see [`order_spec`]).
pub fn scenario(offering: &Offering, order: &TestOrder) -> (Scenario, Option<String>) {
    let mut s = Scenario {
        tokens: vec![TOKEN.into()],
        ..Default::default()
    };
    let provider = ids::generate();
    s.customers.push(CustomerSpec {
        uuid: Some(provider.clone()),
        name: "Service provider".into(),
        slug: Some("service-provider".into()),
        service_provider_uuid: None,
    });
    s.customers.push(CustomerSpec {
        uuid: Some(order.customer_uuid.clone()),
        name: order.customer_slug.clone(),
        slug: Some(order.customer_slug.clone()),
        service_provider_uuid: None,
    });
    s.projects.push(ProjectSpec {
        uuid: Some(order.project_uuid.clone()),
        name: order.project_slug.clone(),
        slug: Some(order.project_slug.clone()),
        customer: order.customer_uuid.clone(),
        ..Default::default()
    });
    s.offerings.push(OfferingSpec {
        uuid: Some(offering.waldur_offering_uuid.clone()),
        name: offering.name.clone(),
        customer: provider,
        components: components(offering),
        ..Default::default()
    });
    let member = s.add_user(MEMBER);
    s.team.push(TeamMemberSpec {
        project: order.project_uuid.clone(),
        user: member.clone(),
        role: Some("PROJECT.ADMIN".into()),
    });
    s.offering_users.push(OfferingUserSpec {
        offering: offering.waldur_offering_uuid.clone(),
        user: member,
        username: Some(MEMBER_USERNAME.into()),
        state: Some("OK".into()),
        ..Default::default()
    });
    let created_here = !order.kind.needs_existing_resource();
    s.resources.push(ResourceSpec {
        uuid: Some(order.resource_uuid.clone()),
        name: order.resource_name.clone(),
        offering: offering.waldur_offering_uuid.clone(),
        project: order.project_uuid.clone(),
        state: Some("Creating".into()),
        limits: if created_here {
            order.limits.clone()
        } else {
            Map::new()
        },
        attributes: order.attributes.clone(),
        ..Default::default()
    });
    if created_here {
        s.orders.push(order_spec(order));
        return (s, None);
    }
    let create = creation_order(order);
    let create_uuid = create.uuid.clone();
    s.orders.push(create);
    (s, create_uuid)
}

/// The order itself, as the simulator takes it.
pub fn order_spec(order: &TestOrder) -> OrderSpec {
    OrderSpec {
        uuid: Some(order.uuid.clone()),
        type_: Some(order.kind.name().into()),
        state: Some(order.state.clone()),
        resource: Some(order.resource_uuid.clone()),
        limits: order.limits.clone(),
        attributes: order.attributes.clone(),
        ..Default::default()
    }
}

/// The Create order that makes the resource an Update or Terminate order works on.
fn creation_order(order: &TestOrder) -> OrderSpec {
    OrderSpec {
        uuid: Some(ids::generate()),
        type_: Some(OrderKind::Create.name().into()),
        state: Some("executing".into()),
        resource: Some(order.resource_uuid.clone()),
        attributes: order.attributes.clone(),
        ..Default::default()
    }
}

/// The offering's Waldur components, as `load-components` would have made them.
fn components(offering: &Offering) -> Vec<ComponentSpec> {
    offering
        .backend_components
        .iter()
        .map(|(kind, c)| ComponentSpec {
            type_: kind.clone(),
            name: Some(if c.label.is_empty() {
                kind.clone()
            } else {
                c.label.clone()
            }),
            measured_unit: c.measured_unit.clone(),
            billing_type: serde_json::to_value(c.accounting_type)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_else(|| "usage".into()),
            limit_amount: c.limit,
            unit_factor: c.unit_factor().round() as i64,
            ..Default::default()
        })
        .collect()
}

//! The account tree `root -> customer -> project -> allocation`, as the SLURM plugin builds it:
//! the pre-create hook makes sure the customer and project accounts exist; the agent then
//! creates the allocation under the project through `client_create_resource`.

use waldur_plugin_abi::wire::WaldurResource;
use waldur_plugin_abi::{Error, Result};

use crate::settings::DemoSettings;
use crate::state::State;

/// An account the hook needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tier {
    pub name: String,
    pub description: String,
}

/// The two upper tiers of one resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    pub customer: Tier,
    pub project: Tier,
}

/// Names the tiers: `customer_prefix + customer_slug`, `project_prefix + project_slug`.
/// Unlike allocation ids they are not lower-cased (the reference does not either).
pub fn plan(resource: &WaldurResource, settings: &DemoSettings) -> Result<Hierarchy> {
    let tier = |prefix: &str, slug: &str, name: &str, what: &str| {
        if slug.trim().is_empty() {
            return Err(Error::backend(format!(
                "demo: resource {} has no {what}_slug, so its {what} account cannot be named",
                resource.uuid
            )));
        }
        Ok(Tier {
            name: format!("{prefix}{slug}"),
            description: if name.is_empty() { slug } else { name }.to_string(),
        })
    };
    Ok(Hierarchy {
        customer: tier(
            &settings.customer_prefix,
            &resource.customer_slug,
            &resource.customer_name,
            "customer",
        )?,
        project: tier(
            &settings.project_prefix,
            &resource.project_slug,
            &resource.project_name,
            "project",
        )?,
    })
}

/// Creates the missing tiers; answers the names it created. Customer and project accounts are
/// their own organization; an existing account is left as it is.
pub fn ensure(state: &mut State, hierarchy: &Hierarchy, root: &str) -> Result<Vec<String>> {
    let mut created = Vec::new();
    let tiers = [
        (&hierarchy.customer, root),
        (&hierarchy.project, hierarchy.customer.name.as_str()),
    ];
    for (tier, parent) in tiers {
        match state.accounts.get(&tier.name) {
            Some(existing) => {
                if existing.parent.as_deref() != Some(parent) {
                    // Moving accounts is `sync_resource_project`'s job, not creation's.
                    log::warn!(
                        "demo: account {} exists under {:?}, expected under {parent}",
                        tier.name,
                        existing.parent
                    );
                }
            }
            None => {
                state.create_account(
                    &tier.name,
                    &tier.description,
                    &tier.name,
                    Some(parent),
                    root,
                )?;
                created.push(tier.name.clone());
            }
        }
    }
    Ok(created)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn settings() -> DemoSettings {
        DemoSettings::parse(
            json!({"state_dir": "/x", "customer_prefix": "c_", "project_prefix": "p_"})
                .as_object()
                .unwrap(),
        )
        .unwrap()
    }

    fn resource() -> WaldurResource {
        WaldurResource {
            uuid: "r1".into(),
            slug: "alloc-1".into(),
            customer_slug: "Cust-1".into(),
            customer_name: "Customer One".into(),
            project_slug: "proj-1".into(),
            project_name: "".into(),
            ..Default::default()
        }
    }

    #[test]
    fn plans_prefixed_names_without_lowercasing() {
        let h = plan(&resource(), &settings()).unwrap();
        assert_eq!(h.customer.name, "c_Cust-1");
        assert_eq!(h.customer.description, "Customer One");
        assert_eq!(h.project.name, "p_proj-1");
        // No project name: the slug describes it.
        assert_eq!(h.project.description, "proj-1");
    }

    #[test]
    fn creates_missing_tiers_once() {
        let h = plan(&resource(), &settings()).unwrap();
        let mut state = State::default();
        assert_eq!(
            ensure(&mut state, &h, "root").unwrap(),
            vec!["c_Cust-1".to_string(), "p_proj-1".to_string()]
        );
        let customer = state.account("c_Cust-1").unwrap();
        assert_eq!(customer.parent.as_deref(), Some("root"));
        assert_eq!(customer.organization, "c_Cust-1");
        let project = state.account("p_proj-1").unwrap();
        assert_eq!(project.parent.as_deref(), Some("c_Cust-1"));
        assert_eq!(project.organization, "p_proj-1");
        assert!(ensure(&mut state, &h, "root").unwrap().is_empty());

        // A second project of the same customer adds only the project.
        let mut other = resource();
        other.project_slug = "proj-2".into();
        let h2 = plan(&other, &settings()).unwrap();
        assert_eq!(ensure(&mut state, &h2, "root").unwrap(), vec!["p_proj-2"]);
    }

    #[test]
    fn missing_slugs_are_errors() {
        let mut r = resource();
        r.customer_slug.clear();
        let err = plan(&r, &settings()).unwrap_err();
        assert!(err.message.contains("no customer_slug"), "{}", err.message);
    }
}

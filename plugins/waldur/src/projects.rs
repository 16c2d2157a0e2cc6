//! The target project of a source project: one per source (customer, project), found by its
//! `backend_id` `"<customer uuid>_<project uuid>"` (dashed uuids, as the reference writes it,
//! so projects a reference agent created are found and reused), created on first use under
//! the configured target customer, and kept in step with the source project's metadata.

use serde_json::{json, Value};
use waldur_plugin_abi::wire::WaldurResource;
use waldur_plugin_abi::{Error, Result};

use crate::federation::Federation;
use crate::settings::EndDateSync;
use crate::target::{field, normalize_uuid, uuid_field};

/// `0f0f...` -> `0f0f0f0f-0f0f-...`: Python's `str(UUID)`.
pub fn dashed(uuid: &str) -> String {
    match normalize_uuid(uuid) {
        Some(hex) => format!(
            "{}-{}-{}-{}-{}",
            &hex[..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..]
        ),
        None => uuid.to_string(),
    }
}

/// The target project's `backend_id` for a source resource's project.
pub fn project_backend_id(resource: &WaldurResource) -> Result<String> {
    if normalize_uuid(&resource.project_uuid).is_none()
        || normalize_uuid(&resource.customer_uuid).is_none()
    {
        return Err(Error::invalid_input(format!(
            "resource {} has no project or customer uuid",
            resource.uuid
        )));
    }
    Ok(format!(
        "{}_{}",
        dashed(&resource.customer_uuid),
        dashed(&resource.project_uuid)
    ))
}

impl Federation {
    /// The target project with this `backend_id`, if there is one.
    pub(crate) fn find_project(&self, backend_id: &str) -> Result<Option<Value>> {
        let projects = self.target.get(
            "projects/",
            &[
                ("backend_id", backend_id.to_string()),
                ("customer_uuid", self.settings.customer_uuid.clone()),
            ],
        )?;
        Ok(projects.as_array().and_then(|p| p.first()).cloned())
    }

    /// The target project of `resource`'s project, created when missing.
    pub(crate) fn find_or_create_project(&self, resource: &WaldurResource) -> Result<Value> {
        let backend_id = project_backend_id(resource)?;
        if let Some(project) = self.find_project(&backend_id)? {
            return Ok(project);
        }
        let name = if resource.project_name.is_empty() {
            format!("Project {}", dashed(&resource.project_uuid))
        } else {
            resource.project_name.clone()
        };
        let mut body = json!({
            "customer": self.target.url(&format!("customers/{}/", self.settings.customer_uuid)),
            "name": name,
            "backend_id": backend_id,
            "description": resource.project_description,
        });
        if self.settings.end_date_sync != EndDateSync::Disabled {
            if let Some(end_date) = &resource.project_end_date {
                body["end_date"] = json!(end_date);
            }
        }
        let project = self.target.post("projects/", &body)?;
        if uuid_field(&project, "uuid").is_empty() {
            return Err(Error::backend(format!(
                "the target Waldur created project {backend_id} but answered no uuid"
            )));
        }
        log::info!(
            "target project {} created for source project {}",
            field(&project, "uuid"),
            resource.project_uuid
        );
        Ok(project)
    }

    /// Reference `sync_resource_project`: description, OECD code, industry flag and science
    /// sub-domain of the source project copied onto its target project when they differ.
    pub(crate) fn sync_project_metadata(
        &self,
        resource: &WaldurResource,
        source_project: Option<&Value>,
    ) -> Result<()> {
        let Ok(backend_id) = project_backend_id(resource) else {
            return Ok(());
        };
        let Some(existing) = self.find_project(&backend_id)? else {
            return Ok(());
        };
        let mut changes = serde_json::Map::new();
        if !resource.project_description.is_empty()
            && field(&existing, "description") != resource.project_description
        {
            changes.insert("description".into(), json!(resource.project_description));
        }
        if let Some(source) = source_project {
            let oecd = source
                .get("oecd_fos_2007_code")
                .cloned()
                .unwrap_or(Value::Null);
            if none_if_empty(&oecd)
                != none_if_empty(existing.get("oecd_fos_2007_code").unwrap_or(&Value::Null))
            {
                changes.insert("oecd_fos_2007_code".into(), none_if_empty(&oecd));
            }
            if let Some(industry) = source.get("is_industry").and_then(Value::as_bool) {
                if existing.get("is_industry").and_then(Value::as_bool) != Some(industry) {
                    changes.insert("is_industry".into(), json!(industry));
                }
            }
            let wanted = none_if_empty(
                source
                    .get("science_sub_domain_code")
                    .unwrap_or(&Value::Null),
            );
            let current = none_if_empty(
                existing
                    .get("science_sub_domain_code")
                    .unwrap_or(&Value::Null),
            );
            if wanted != current {
                match wanted.as_str() {
                    None => {
                        changes.insert("science_sub_domain".into(), Value::Null);
                    }
                    Some(code) => match self.science_sub_domain(code)? {
                        Some(uuid) => {
                            changes.insert("science_sub_domain".into(), json!(uuid));
                        }
                        None => log::warn!(
                            "science sub-domain {code} of project {} is not on the target Waldur; \
                             not synced",
                            resource.project_uuid
                        ),
                    },
                }
            }
        }
        if changes.is_empty() {
            return Ok(());
        }
        let fields: Vec<&str> = changes.keys().map(String::as_str).collect();
        log::info!("target project {backend_id}: syncing {}", fields.join(", "));
        let project_uuid = uuid_field(&existing, "uuid");
        self.target.patch(
            &format!("projects/{project_uuid}/"),
            &Value::Object(changes),
        )?;
        Ok(())
    }

    /// The uuid (dashed, as a project takes it) of the target's science sub-domain with this
    /// code: they differ per Waldur, the codes are shared.
    fn science_sub_domain(&self, code: &str) -> Result<Option<String>> {
        let domains = match self.target.list("science-sub-domains/", &[]) {
            Ok(domains) => domains,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        Ok(domains
            .iter()
            .find(|d| field(d, "code") == code)
            .map(|d| uuid_field(d, "uuid"))
            .filter(|u| !u.is_empty())
            .map(|u| dashed(&u)))
    }
}

/// `""` and null are the same "not set".
fn none_if_empty(value: &Value) -> Value {
    match value {
        Value::String(s) if s.is_empty() => Value::Null,
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_backend_ids_are_the_references() {
        let resource = WaldurResource {
            uuid: "r".into(),
            customer_uuid: "11111111111111111111111111111111".into(),
            project_uuid: "22222222-2222-2222-2222-222222222222".into(),
            ..Default::default()
        };
        assert_eq!(
            project_backend_id(&resource).unwrap(),
            "11111111-1111-1111-1111-111111111111_22222222-2222-2222-2222-222222222222"
        );
        let hostile = WaldurResource {
            project_uuid: "../x".into(),
            ..resource
        };
        assert!(project_backend_id(&hostile).is_err());
    }
}

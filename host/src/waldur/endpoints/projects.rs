//! Projects (reference §2.2, B12 and B14).

use serde_json::Value;

use crate::waldur::call::{Call, Query};
use crate::waldur::models::Project;
use crate::waldur::{normalize_uuid, WaldurClient, WaldurError};

/// The project fields B12 asks for: what plugins that mirror a project's metadata read
/// (`sync_resource_project`, `sync_project_end_date`).
const SOURCE_PROJECT_FIELDS: &[&str] = &[
    "oecd_fos_2007_code",
    "is_industry",
    "science_sub_domain_code",
    "end_date_updated_at",
];

impl WaldurClient {
    /// B14 `GET /api/projects/?slug=<slug>&field=uuid` -> 200 `[Project]`: the projects
    /// (normally one) with that slug, as resource import looks them up.
    pub async fn projects_with_slug(&self, slug: &str) -> Result<Vec<Project>, WaldurError> {
        let url = self.http.url(
            &["projects"],
            Query::new().add("slug", slug).fields(&["uuid"]),
        );
        let call = Call::get("B14 projects_list", url);
        self.http.json_pages(call, &["uuid"]).await
    }

    /// B12 `GET /api/marketplace-service-providers/{uuid}/projects/?query=<project>&field=...`
    /// -> 200 `[Project]` with [`SOURCE_PROJECT_FIELDS`]: the service provider's view of one
    /// project, searched by its uuid (normally exactly one match). The objects are kept as
    /// Waldur sent them: plugins get them as they are.
    pub async fn service_provider_projects(
        &self,
        service_provider_uuid: &str,
        project_uuid: &str,
    ) -> Result<Vec<Value>, WaldurError> {
        let url = self.http.url(
            &[
                "marketplace-service-providers",
                &normalize_uuid(service_provider_uuid),
                "projects",
            ],
            Query::new()
                .uuid("query", project_uuid)
                .fields(SOURCE_PROJECT_FIELDS),
        );
        let call = Call::get("B12 marketplace_service_providers_projects_list", url);
        self.http.json_pages(call, &[]).await
    }
}

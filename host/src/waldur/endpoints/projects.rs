//! Projects (reference §2.2, B14).

use crate::waldur::call::{Call, Query};
use crate::waldur::models::Project;
use crate::waldur::{WaldurClient, WaldurError};

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
}

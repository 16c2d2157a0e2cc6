//! Resource import (reference `OfferingImportableResourcesProcessor.process_request`, I1-I6):
//! a Waldur user asks which accounts the backend has that Waldur does not know (a backend
//! resource request), and the agent offers each one as a backend resource of the project it
//! belongs to, with its limits.
//!
//! Exactly once: a request that is already Done or Erred is left alone (a redelivered event
//! does nothing); one that is Processing was begun by an earlier attempt and is finished
//! without starting it again; and every offer (I6) is preceded by a look for the same offer
//! (I5), so a retry after a crash or a lost answer never offers an account twice.
//!
//! Deliberate differences from the reference:
//! - An account that is its own organization (a customer or project account of the hierarchy,
//!   not an allocation) is not offered: importing it as a resource would hand a project's
//!   parent account to the resource life cycle.
//! - A backend id or project slug that could not be a Waldur name (control characters, white
//!   space, over-long) is refused with a one-line reason instead of being sent on.
//! - An account whose offer failed (after one retry of a transient failure) errs the request
//!   with a one-line summary; the reference logs it and marks the request done. The accounts
//!   offered stay offered, and a new request offers only the rest.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{json, Map};
use waldur_plugin_abi::wire::BackendResourceInfo;

use super::error::ModeError;
use super::runtime::{blocking, Session};
use crate::waldur::{normalize_uuid, NewBackendResource, ResourceFilter};

/// Resources in these states hold their backend ids (reference `_get_waldur_resources`).
const KNOWN_RESOURCE_STATES: &[&str] = &["OK", "Erred", "Creating"];

/// Waldur's `backend_id` is at most 255 characters.
const MAX_BACKEND_ID: usize = 255;

/// How long to wait before the one retry of an account's transient failure.
const RETRY_PAUSE: Duration = Duration::from_millis(500);

/// What became of one backend resource request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportOutcome {
    /// Done or Erred before this attempt: nothing was done.
    AlreadyFinished { state: String },
    /// Every importable account is offered; the request is Done.
    Done(ImportSummary),
    /// The request is Erred with `message`.
    Erred {
        message: String,
        summary: ImportSummary,
    },
}

/// What happened to the backend's accounts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportSummary {
    /// Offered now.
    pub imported: usize,
    /// Offered by an earlier request (or attempt) already.
    pub already_offered: usize,
    /// Not importable (foreign prefix, no such project, hierarchy account, refused name).
    pub skipped: usize,
    /// The offer failed.
    pub failed: usize,
}

/// What became of one account.
#[derive(Debug)]
enum AccountOutcome {
    Imported,
    AlreadyOffered,
    Skipped(String),
}

impl Session<'_> {
    /// Handles one backend resource request (`importable_resources` event). Errors are
    /// reported to the request (I4) unless the request itself cannot be read, or the offering
    /// does not import resources at all (`resource_import_enabled: false`).
    pub async fn process_backend_resource_request(
        &self,
        request_uuid: &str,
    ) -> Result<ImportOutcome, ModeError> {
        if !self.offering.resource_import_enabled {
            return Err(ModeError::NotConfigured(format!(
                "offering '{}' has resource_import_enabled: false; backend resource request {} \
                 left alone",
                self.offering.name,
                normalize_uuid(request_uuid)
            )));
        }
        // One attempt of a request at a time in this process (a redelivery may overtake it).
        let _turn = self
            .agent
            .resource_turns
            .claim(format!("import-request\n{}", normalize_uuid(request_uuid)))
            .await;
        let request = self.client.backend_resource_request(request_uuid).await?;
        match request.state.as_str() {
            "Done" | "Erred" => {
                return Ok(ImportOutcome::AlreadyFinished {
                    state: request.state,
                })
            }
            "Sent" => self.record_request_processing(request_uuid).await?,
            // An earlier attempt began it and did not finish: carry on.
            "Processing" => {}
            other => {
                return Err(ModeError::Offering(format!(
                    "backend resource request {} is in state {other:?}, which this agent \
                     does not know",
                    request.uuid
                )))
            }
        }
        let (summary, failure) = match self.offer_importable_accounts().await {
            Ok((summary, None)) => {
                self.record_request_done(request_uuid).await?;
                return Ok(ImportOutcome::Done(summary));
            }
            Ok((summary, Some(failure))) => (summary, failure),
            Err(e) => (ImportSummary::default(), e),
        };
        let (message, traceback) =
            failure.details_for_waldur(self.agent.config.expose_backend_error_details);
        tracing::error!(
            offering = %self.offering.name,
            request = %request.uuid,
            "importing backend resources failed: {failure}"
        );
        self.client
            .set_backend_resource_request_erred(request_uuid, &message, &traceback)
            .await?;
        Ok(ImportOutcome::Erred { message, summary })
    }

    /// Offers every account the backend has and Waldur does not. Answers the summary and, when
    /// some account could not be offered, why (in one line).
    async fn offer_importable_accounts(
        &self,
    ) -> Result<(ImportSummary, Option<ModeError>), ModeError> {
        let filter = ResourceFilter {
            states: KNOWN_RESOURCE_STATES
                .iter()
                .map(|s| s.to_string())
                .collect(),
            ..ResourceFilter::offering(&self.offering.waldur_offering_uuid)
        }
        .with_fields(&["uuid", "backend_id"]);
        let known: BTreeSet<String> = self
            .client
            .list_provider_resources(&filter)
            .await?
            .into_iter()
            .map(|r| r.backend_id)
            .filter(|id| !id.is_empty())
            .collect();
        let accounts = blocking(&self.backend, |b| b.list_resources()).await?;
        let candidates = importable(accounts, &known);
        tracing::info!(
            offering = %self.offering.name,
            "{} backend account(s) unknown to Waldur",
            candidates.len()
        );
        let outcomes = crate::waldur::map_concurrent(
            crate::waldur::DEFAULT_CONCURRENCY,
            candidates,
            |account| async move {
                let outcome = self.offer_with_retry(&account).await;
                (account.backend_id, outcome)
            },
        )
        .await;
        let mut summary = ImportSummary::default();
        let mut failures = Vec::new();
        for (id, outcome) in outcomes {
            match outcome {
                Ok(AccountOutcome::Imported) => summary.imported += 1,
                Ok(AccountOutcome::AlreadyOffered) => summary.already_offered += 1,
                Ok(AccountOutcome::Skipped(reason)) => {
                    tracing::info!(offering = %self.offering.name, "account {id:?} not imported: {reason}");
                    summary.skipped += 1;
                }
                Err(e) => {
                    tracing::error!(offering = %self.offering.name, "account {id:?}: {e}");
                    summary.failed += 1;
                    failures.push((id, e));
                }
            }
        }
        let failure = failures.into_iter().next().map(|(id, first)| {
            let line = format!(
                "{} of the backend's account(s) could not be offered for import; {id:?}: {}",
                summary.failed,
                first.details_for_waldur(true).0
            );
            match first {
                ModeError::Plugin(_) | ModeError::Backend(_) => ModeError::Backend(line),
                _ => ModeError::Offering(line),
            }
        });
        Ok((summary, failure))
    }

    /// [`Self::offer_account`], once more after a transient failure: the look before the offer
    /// makes the second attempt safe even when the first one's offer reached Waldur.
    async fn offer_with_retry(
        &self,
        account: &BackendResourceInfo,
    ) -> Result<AccountOutcome, ModeError> {
        match self.offer_account(account).await {
            Err(e) if e.is_transient() => {
                tracing::warn!(
                    offering = %self.offering.name,
                    "offering account {:?} failed, trying once more: {e}",
                    account.backend_id
                );
                tokio::time::sleep(RETRY_PAUSE).await;
                match self.offer_account(account).await {
                    // Only this agent offers the offering's accounts: what the retry finds is
                    // what the first attempt did.
                    Ok(AccountOutcome::AlreadyOffered) => Ok(AccountOutcome::Imported),
                    other => other,
                }
            }
            other => other,
        }
    }

    /// One account: its project, the look for an earlier offer (I5), its limits, the offer
    /// (I6).
    async fn offer_account(
        &self,
        account: &BackendResourceInfo,
    ) -> Result<AccountOutcome, ModeError> {
        let prefix = self
            .offering
            .backend_settings
            .get("project_prefix")
            .and_then(|v| v.as_str())
            .unwrap_or("");
        let slug = match project_slug(account, prefix) {
            Ok(slug) => slug,
            Err(reason) => return Ok(AccountOutcome::Skipped(reason)),
        };
        let Some(project) = self
            .client
            .projects_with_slug(&slug)
            .await?
            .into_iter()
            .next()
        else {
            return Ok(AccountOutcome::Skipped(format!(
                "no Waldur project has the slug {slug:?}"
            )));
        };
        let offering = &self.offering.waldur_offering_uuid;
        let id = account.backend_id.clone();
        let _claim = self
            .agent
            .resource_turns
            .claim(format!("import\n{}\n{id}", normalize_uuid(offering)))
            .await;
        let offered = self
            .client
            .list_backend_resources(&id, &project.uuid, offering)
            .await?;
        if !offered.is_empty() {
            return Ok(AccountOutcome::AlreadyOffered);
        }
        let for_plugin = id.clone();
        let limits = blocking(&self.backend, move |b| b.get_resource_limits(&for_plugin)).await?;
        let mut metadata = Map::new();
        metadata.insert("limits".into(), json!(limits));
        self.client
            .create_backend_resource(&NewBackendResource {
                name: id.clone(),
                project: project.uuid,
                offering: offering.clone(),
                backend_id: id,
                backend_metadata: metadata,
            })
            .await?;
        Ok(AccountOutcome::Imported)
    }
}

/// The backend's accounts that Waldur does not know, hierarchy accounts left out, sorted by
/// backend id.
fn importable(
    accounts: Vec<BackendResourceInfo>,
    known: &BTreeSet<String>,
) -> Vec<BackendResourceInfo> {
    let mut candidates: Vec<BackendResourceInfo> = accounts
        .into_iter()
        .filter(|a| !a.backend_id.is_empty() && !known.contains(&a.backend_id))
        .filter(|a| a.parent_id != a.backend_id)
        .collect();
    candidates.sort_by(|a, b| a.backend_id.cmp(&b.backend_id));
    candidates.dedup_by(|a, b| a.backend_id == b.backend_id);
    candidates
}

/// The Waldur project slug an account belongs to: its parent without `project_prefix`. An
/// account whose parent lacks the prefix belongs to no Waldur project of this offering; a
/// backend id or slug that could not be a Waldur name is refused. Answers why otherwise.
fn project_slug(account: &BackendResourceInfo, prefix: &str) -> Result<String, String> {
    check_backend_id(&account.backend_id)?;
    let Some(slug) = account.parent_id.strip_prefix(prefix) else {
        return Err(format!(
            "its parent {:?} does not start with project_prefix {prefix:?}",
            shown(&account.parent_id)
        ));
    };
    let slug_like = !slug.is_empty()
        && slug.len() <= MAX_BACKEND_ID
        && slug
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !slug_like {
        return Err(format!(
            "its parent {:?} gives {:?}, which is not a Waldur project slug",
            shown(&account.parent_id),
            shown(slug)
        ));
    }
    Ok(slug.to_string())
}

/// A backend id Waldur can hold and a log can show: 1 to 255 characters, no white space or
/// control characters.
fn check_backend_id(id: &str) -> Result<(), String> {
    if id.chars().count() > MAX_BACKEND_ID {
        return Err(format!(
            "its backend id is longer than {MAX_BACKEND_ID} characters"
        ));
    }
    if id.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "its backend id {:?} has white space or control characters",
            shown(id)
        ));
    }
    Ok(())
}

/// At most 64 characters of an untrusted name, for a one-line message.
fn shown(text: &str) -> String {
    text.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(id: &str, parent: &str) -> BackendResourceInfo {
        BackendResourceInfo {
            backend_id: id.into(),
            parent_id: parent.into(),
            ..BackendResourceInfo::default()
        }
    }

    #[test]
    fn only_allocations_unknown_to_waldur_are_importable() {
        let known = BTreeSet::from(["a_known".to_string()]);
        let found = importable(
            vec![
                account("a_new2", "hpc_proj"),
                account("a_known", "hpc_proj"),
                account("hpc_proj", "hpc_proj"),
                account("a_new1", "hpc_proj"),
                account("", "hpc_proj"),
                account("a_new1", "hpc_proj"),
            ],
            &known,
        );
        let ids: Vec<&str> = found.iter().map(|a| a.backend_id.as_str()).collect();
        assert_eq!(ids, ["a_new1", "a_new2"]);
    }

    #[test]
    fn the_slug_is_the_parent_without_the_prefix() {
        assert_eq!(
            project_slug(&account("a_x", "hpc_proj-1"), "hpc_").unwrap(),
            "proj-1"
        );
        assert_eq!(project_slug(&account("a_x", "proj"), "").unwrap(), "proj");
        let foreign = project_slug(&account("a_x", "other_proj"), "hpc_").unwrap_err();
        assert!(
            foreign.contains("does not start with project_prefix"),
            "{foreign}"
        );
        assert!(project_slug(&account("a_x", "hpc_"), "hpc_").is_err());
    }

    #[test]
    fn hostile_names_are_refused_in_one_line() {
        for (id, parent) in [
            ("evil\n\u{1b}[31m", "proj"),
            ("a b", "proj"),
            ("a_x", "proj;rm -rf /"),
            ("a_x", "pro\u{0}j"),
            ("a_x", "proj/../x"),
        ] {
            let reason = project_slug(&account(id, parent), "").unwrap_err();
            assert!(!reason.contains('\n'), "{reason:?}");
        }
        let long = "x".repeat(300);
        assert!(project_slug(&account(&long, "proj"), "")
            .unwrap_err()
            .contains("longer than 255"));
        assert!(project_slug(&account("a_x", &long), "").is_err());
    }
}

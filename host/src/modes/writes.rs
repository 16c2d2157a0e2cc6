//! Writes to Waldur that must not be declared failed while they may have been applied.
//!
//! A write whose answer was lost (timeout, reset), garbled (an undecodable 200) or a 5xx that
//! may have come after the commit is re-checked by reading the state back: applied means
//! done. So is any other failure: the client retries a write, and an earlier attempt may have
//! applied it before a later one failed (a retried `set_state_done` meets a done order).
//! Otherwise the original error stands, and the order-level retry (or the next cycle) repeats
//! the write, which is idempotent.

use std::future::Future;

use waldur_plugin_abi::wire::Limits;

use super::error::ModeError;
use super::runtime::Session;
use crate::waldur::WaldurError;

impl Session<'_> {
    /// R4 `set_backend_id`, confirmed by reading the resource back.
    pub(crate) async fn record_backend_id(
        &self,
        resource_uuid: &str,
        backend_id: &str,
    ) -> Result<(), ModeError> {
        let written = self
            .client
            .set_resource_backend_id(resource_uuid, backend_id)
            .await
            .map(drop);
        confirm(written, "set_backend_id", || async {
            let resource = self
                .client
                .provider_resource(resource_uuid, &["uuid", "backend_id"])
                .await?;
            Ok(resource.backend_id == backend_id)
        })
        .await
    }

    /// R5 `set_limits`, confirmed by reading the resource's limits back.
    pub(crate) async fn record_limits(
        &self,
        resource_uuid: &str,
        limits: &Limits,
    ) -> Result<(), ModeError> {
        let written = self
            .client
            .set_resource_limits(resource_uuid, limits)
            .await
            .map(drop);
        confirm(written, "set_limits", || async {
            let resource = self
                .client
                .provider_resource(resource_uuid, &["uuid", "limits"])
                .await?;
            Ok(limits_applied(limits, &resource.limits))
        })
        .await
    }

    /// O4 `set_state_done`, confirmed by reading the order's state back.
    pub(crate) async fn record_order_done(&self, order_uuid: &str) -> Result<(), ModeError> {
        let written = self.client.set_order_done(order_uuid).await;
        confirm(written, "set_state_done", || async {
            Ok(self.client.order_state(order_uuid).await?.state == "done")
        })
        .await
    }

    /// I2 `start_processing` (Sent -> Processing), confirmed by reading the request back.
    pub(crate) async fn record_request_processing(
        &self,
        request_uuid: &str,
    ) -> Result<(), ModeError> {
        let written = self
            .client
            .start_backend_resource_request(request_uuid)
            .await;
        self.confirm_request_state(written, request_uuid, "start_processing", "Processing")
            .await
    }

    /// I3 `set_done` (Processing -> Done), confirmed by reading the request back.
    pub(crate) async fn record_request_done(&self, request_uuid: &str) -> Result<(), ModeError> {
        let written = self
            .client
            .set_backend_resource_request_done(request_uuid)
            .await;
        self.confirm_request_state(written, request_uuid, "set_done", "Done")
            .await
    }

    async fn confirm_request_state(
        &self,
        written: Result<(), WaldurError>,
        request_uuid: &str,
        what: &str,
        state: &str,
    ) -> Result<(), ModeError> {
        confirm(written, what, || async {
            Ok(self
                .client
                .backend_resource_request(request_uuid)
                .await?
                .state
                == state)
        })
        .await
    }
}

/// Every limit we sent is what Waldur holds now.
fn limits_applied(sent: &Limits, held: &Limits) -> bool {
    sent.iter().all(|(component, value)| {
        held.get(component)
            .is_some_and(|held| (held - value).abs() <= 1e-9 * value.abs().max(1.0))
    })
}

/// `written`, or, when its outcome is unknown, whether `applied` reads the change back.
async fn confirm<F, Fut>(
    written: Result<(), WaldurError>,
    what: &str,
    applied: F,
) -> Result<(), ModeError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<bool, WaldurError>>,
{
    let error = match written {
        Ok(()) => return Ok(()),
        Err(error) => error,
    };
    match applied().await {
        Ok(true) => {
            tracing::info!("{what} failed ({error}), but reading back shows it applied");
            Ok(())
        }
        Ok(false) => Err(error.into()),
        Err(read_back) => {
            tracing::warn!(
                "{what}: the answer was lost ({error}) and reading back failed too: {read_back}"
            );
            Err(error.into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_applied_compares_what_was_sent() {
        let sent = Limits::from([("cpu".into(), 10.0)]);
        let same = Limits::from([("cpu".into(), 10.0), ("mem".into(), 1.0)]);
        let other = Limits::from([("cpu".into(), 9.0)]);
        assert!(limits_applied(&sent, &same));
        assert!(!limits_applied(&sent, &other));
        assert!(!limits_applied(&sent, &Limits::new()));
        assert!(limits_applied(&Limits::new(), &other));
    }
}

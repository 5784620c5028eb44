//! What a user agreed to on our pages: the scopes granted to a client (remembered, so that
//! the next sign-in does not ask again), and a device's request (RFC 8628 §3.3), allowed or
//! denied.

use cells_store::{DeviceCode, DeviceStatus, UserId};

use super::Oidc;
use super::grant::normalize_user_code;
use crate::error::Result;

impl Oidc {
    /// Whether `user` consented to `client` with these scopes: as a set, or as the string
    /// itself (consents remembered before they were kept as sets).
    pub async fn has_consent(&self, user: UserId, client: &str, scope: &str) -> Result<bool> {
        if self.store.has_consent(user, client, &scope_set(scope)).await? {
            return Ok(true);
        }
        Ok(self.store.has_consent(user, client, scope).await?)
    }

    /// Remember that `user` granted `client` these scopes.
    pub async fn remember_consent(&self, user: UserId, client: &str, scope: &str) -> Result<()> {
        Ok(self.store.add_consent(user, client, &scope_set(scope)).await?)
    }

    /// The device request a user typed the code of, while it waits for an answer.
    pub async fn pending_device(&self, user_code: &str) -> Result<Option<DeviceCode>> {
        let code = normalize_user_code(user_code);
        Ok(self
            .store
            .find_device_by_user_code(&code)
            .await?
            .filter(|device| {
                device.status == DeviceStatus::Pending && device.expires_at >= crate::records::now()
            }))
    }

    /// `user`'s answer to a pending device request; `false` when it was answered already or
    /// has expired.
    pub async fn decide_device(&self, user_code: &str, user: UserId, allow: bool) -> Result<bool> {
        Ok(self
            .store
            .decide_device(user_code, user, allow, crate::records::now())
            .await?)
    }
}

/// Scopes as a set: sorted, each once.
fn scope_set(scope: &str) -> String {
    let mut scopes: Vec<&str> = scope.split_whitespace().collect();
    scopes.sort_unstable();
    scopes.dedup();
    scopes.join(" ")
}

//! The auth token: when to fetch one and which calls wait for it.
//!
//! With credentials configured ([`Config::authenticate`]), no call goes out
//! before the first token, streams included: the core asks for one with
//! [`Action::Authenticate`] and parks calls until
//! [`Core::handle_auth_result`]. Every new token bumps a generation; each
//! attempt remembers the generation it went out with, so a late rejection of
//! a token already replaced is retried with the new one and starts no new
//! refresh. The adapter keeps the old token in use until the new one is in
//! place.
//!
//! [`Config::authenticate`]: super::Config::authenticate

use std::time::Instant;

use etcdv3_proto::method::{Method, AUTH_AUTHENTICATE};

use super::calls::CallState;
use super::{Action, CallError, CallId, Cause, Core};
use crate::wire::error::EtcdErrorKind;
use crate::wire::status::Status;

/// Token state.
#[derive(Debug, Default)]
pub(super) struct AuthState {
    /// An `Authenticate` action is out and not answered yet.
    pub(super) authenticating: bool,
    /// Bumped on every new token (0: none yet).
    pub(super) token_gen: u64,
}

impl Core {
    /// The current auth token generation: bumped by every successful
    /// [`Core::handle_auth_result`]; 0 before the first token.
    pub fn token_generation(&self) -> u64 {
        self.auth.token_gen
    }

    /// The adapter's `Authenticate` finished: `Ok` with the new token in
    /// place, or `Err` with why. Calls waiting for the token go out, or
    /// fail with [`CallError::Auth`].
    pub fn handle_auth_result(&mut self, now: Instant, result: Result<(), String>) {
        self.auth_finished(now, result.map_err(|cause| (cause, None)));
    }

    /// The server refused the adapter's `Authenticate` with `status` (a
    /// wrong password, an unknown user; `cause` says it in the adapter's
    /// words): calls waiting for the token fail with [`CallError::Auth`]
    /// carrying the status and its etcd kind.
    pub fn handle_auth_refused(&mut self, now: Instant, cause: String, status: Status) {
        let kind = crate::wire::error::classify(&status);
        self.auth_finished(now, Err((cause, Some((status, kind)))));
    }

    #[allow(clippy::type_complexity)]
    fn auth_finished(
        &mut self,
        now: Instant,
        result: Result<(), (String, Option<(Status, EtcdErrorKind)>)>,
    ) {
        self.observe(now);
        self.auth.authenticating = false;
        if result.is_ok() {
            self.auth.token_gen += 1;
        }
        let waiting = self.calls_where(|s| s == CallState::AwaitingAuth);
        for id in waiting {
            match &result {
                Ok(()) => self.queue_now(now, id),
                Err(e) => {
                    let call = &self.calls[&id];
                    let method = call.method.path;
                    // The token request failed because every endpoint
                    // rejected the client: that is the call's failure too.
                    let err = match self.rejection_of(now, call.bound) {
                        Some((endpoint, cause)) => CallError::Rejected {
                            method,
                            endpoint,
                            cause,
                        },
                        None => CallError::Auth {
                            method,
                            cause: e.0.clone(),
                            refusal: e.1.clone(),
                            source: e.1.as_ref().map(|(status, _)| Cause::new(status.clone())),
                        },
                    };
                    self.complete(id, Err(err));
                }
            }
        }
    }

    /// The adapter put a token for new credentials in place by itself (the
    /// user changed them at runtime): from now on every call waits for a
    /// token, as with credentials configured from the start, and the calls
    /// waiting for one go out.
    pub fn handle_credentials_changed(&mut self, now: Instant) {
        self.config.authenticate = true;
        self.handle_auth_result(now, Ok(()));
    }

    /// A request on `call` (typically a stream: a watch create refused
    /// with "permission denied", a keepalive stream ended with an invalid
    /// token) was refused for want of a valid token. Returns `false` when
    /// no credentials are configured: the refusal is final. Otherwise
    /// starts a token refresh, unless one runs or the token was already
    /// replaced since the call's attempt went out, and returns `true`: the
    /// owner ends the stream and reopens it, and the new stream call waits
    /// for the token. The owner bounds how often it retries.
    pub fn handle_auth_rejected(&mut self, now: Instant, call: CallId) -> bool {
        self.observe(now);
        if !self.config.authenticate {
            return false;
        }
        let sent_gen = self.calls.get(&call).map_or(0, |c| c.token_gen);
        if sent_gen >= self.auth.token_gen {
            self.request_token();
        }
        true
    }

    /// Whether a call of `method` must wait for a token first: with
    /// credentials configured, before the first token and while a refresh
    /// runs (the token being replaced is likely the one being refused).
    pub(super) fn needs_token(&self, method: Method) -> bool {
        self.config.authenticate
            && method.path != AUTH_AUTHENTICATE.path
            && (self.auth.token_gen == 0 || self.auth.authenticating)
    }

    /// Park the call until the next auth result.
    pub(super) fn await_token(&mut self, id: CallId) {
        if let Some(c) = self.calls.get_mut(&id) {
            c.state = CallState::AwaitingAuth;
        }
        self.request_token();
    }

    /// Ask the adapter for a token, unless a request is out already.
    fn request_token(&mut self) {
        if !self.auth.authenticating {
            self.auth.authenticating = true;
            self.actions.push_back(Action::Authenticate);
        }
    }

    /// A call was refused for its token: `true` when it was handled here
    /// (retried with a newer token, or parked until a refresh), `false`
    /// when the refusal is final for the call (it was already retried once
    /// with a fresh token).
    pub(super) fn on_token_refused(&mut self, now: Instant, id: CallId, status: &Status) -> bool {
        let gen = self.auth.token_gen;
        let Some(c) = self.calls.get_mut(&id) else {
            return true;
        };
        c.last_error = Some(status.to_string());
        if c.token_gen < gen {
            // A late rejection of a token replaced since: retry with the
            // new one, no new refresh.
            self.queue_now(now, id);
            return true;
        }
        if c.auth_retried {
            return false;
        }
        c.auth_retried = true;
        self.await_token(id);
        true
    }
}

/// Whether the error means the auth token must be refreshed (a unary
/// call's "permission denied" is the user's, final).
pub(super) fn is_auth_refresh(status: &Status) -> bool {
    crate::wire::error::auth_refusal(status) == Some(crate::wire::error::AuthRefusal::Token)
}

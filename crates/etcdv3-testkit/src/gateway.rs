//! What the members say over plain HTTP: `/health`, `/metrics` and etcd's JSON gateway
//! (member status, leader, member removal).

use std::thread;
use std::time::{Duration, Instant};

use crate::proxy::lock;
use crate::{http, Cluster, TestkitError};

/// Timeout of one HTTP call to a member (`/health`, JSON gateway).
const HTTP_TIMEOUT: Duration = Duration::from_secs(2);

/// A member's view of the cluster, from `POST /v3/maintenance/status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberStatus {
    /// The answering member's id (`header.member_id`).
    pub member_id: u64,
    /// The leader's id as this member believes it; 0 when it knows no leader.
    pub leader: u64,
    /// The member's raft term.
    pub raft_term: u64,
    /// The member's raft index.
    pub raft_index: u64,
    /// The server version string.
    pub version: String,
}

impl Cluster {
    /// Member `i`'s `GET /health` answer, as `STATUS BODY` (quoted in errors); judge it with
    /// [`body_healthy`].
    pub(crate) fn health_body(&self, i: usize) -> std::io::Result<String> {
        let r = http::request(self.control_addr(i), "GET", "/health", None, HTTP_TIMEOUT)?;
        Ok(format!("{} {}", r.status, r.body.trim()))
    }

    /// Asks member `i` directly (bypassing its client proxy) for `GET /health`: `Ok(true)`
    /// for `"health":"true"`, `Ok(false)` for any other answer, an error if it does not
    /// answer within 2 s (e.g. killed or paused).
    pub fn health(&self, i: usize) -> Result<bool, TestkitError> {
        self.check(i)?;
        self.health_body(i)
            .map(|b| body_healthy(&b))
            .map_err(|e| TestkitError::Http {
                member: i,
                path: "/health".into(),
                detail: e.to_string(),
            })
    }

    /// Member `i`'s Prometheus metrics (`GET /metrics`, asked directly, not through its
    /// client proxy), as text. [`metric_sum`] adds up one counter from it.
    pub fn metrics(&self, i: usize) -> Result<String, TestkitError> {
        self.running_pid(i)?;
        let err = |detail: String| TestkitError::Http {
            member: i,
            path: "/metrics".into(),
            detail,
        };
        let r = http::request(self.control_addr(i), "GET", "/metrics", None, HTTP_TIMEOUT)
            .map_err(|e| err(e.to_string()))?;
        if r.status != 200 {
            return Err(err(format!("status {}", r.status)));
        }
        Ok(r.body)
    }

    pub(crate) fn gateway(&self, i: usize, path: &str, body: &str) -> Result<String, TestkitError> {
        let err = |detail: String| TestkitError::Http {
            member: i,
            path: path.into(),
            detail,
        };
        let r = http::request(self.control_addr(i), "POST", path, Some(body), HTTP_TIMEOUT)
            .map_err(|e| err(e.to_string()))?;
        if r.status != 200 {
            return Err(err(format!("status {}: {}", r.status, r.body.trim())));
        }
        Ok(r.body)
    }

    /// Member `i`'s status via the JSON gateway (`POST /v3/maintenance/status`), asked
    /// directly (not through its client proxy).
    pub fn member_status(&self, i: usize) -> Result<MemberStatus, TestkitError> {
        self.running_pid(i)?;
        let path = "/v3/maintenance/status";
        let body = self.gateway(i, path, "{}")?;
        parse_status(&body).ok_or_else(|| TestkitError::Http {
            member: i,
            path: path.into(),
            detail: format!("no header.member_id in {body}"),
        })
    }

    /// Indices of members whose process runs unpaused.
    pub(crate) fn live_members(&self) -> Vec<usize> {
        let procs = lock(&self.procs);
        (0..self.size())
            .filter(|&i| procs[i].child.is_some() && !procs[i].paused && !procs[i].removed)
            .collect()
    }

    /// The current leader's index: asks every running, unpaused member for its status; the
    /// leader is a member that reports itself as leader, the one with the highest raft term
    /// if several do (an isolated ex-leader may still claim it with a stale term). `None`
    /// if no live member is leader (e.g. during an election, or when followers still
    /// believe in a leader that was just killed).
    pub fn leader(&self) -> Option<usize> {
        let mut best: Option<(u64, usize)> = None;
        for i in self.live_members() {
            if let Ok(st) = self.member_status(i) {
                let claims = st.leader != 0 && st.leader == st.member_id;
                if claims && best.is_none_or(|(term, _)| st.raft_term > term) {
                    best = Some((st.raft_term, i));
                }
            }
        }
        best.map(|(_, i)| i)
    }

    /// Polls [`Cluster::leader`] until there is one, for up to `timeout`.
    pub fn wait_for_leader(&self, timeout: Duration) -> Result<usize, TestkitError> {
        let start = Instant::now();
        loop {
            if let Some(l) = self.leader() {
                return Ok(l);
            }
            if start.elapsed() >= timeout {
                return Err(TestkitError::Timeout {
                    what: "a leader".into(),
                    waited: start.elapsed(),
                });
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// Removes member `i` from the cluster (`POST /v3/cluster/member/remove` sent to another
    /// running member), then kills its process. etcd refuses removals until the members
    /// have been connected for about 5 s; this retries (up to the health timeout) meanwhile. The index stays valid for the accessors;
    /// process operations on it fail with [`TestkitError::Removed`].
    pub fn remove_member(&self, i: usize) -> Result<(), TestkitError> {
        self.check(i)?;
        if lock(&self.procs)[i].removed {
            return Err(TestkitError::Removed(i));
        }
        let body = serde_json::json!({ "ID": self.ids[i].to_string() }).to_string();
        let start = Instant::now();
        'retry: loop {
            let mut last_err = None;
            for j in self.live_members().into_iter().filter(|&j| j != i) {
                match self.gateway(j, "/v3/cluster/member/remove", &body) {
                    Ok(_) => break 'retry,
                    Err(e) => last_err = Some(e),
                }
            }
            // etcd refuses ("unhealthy cluster") until the remaining members have been
            // connected to each other for 5 s, e.g. right after startup: retry.
            let retryable = match &last_err {
                Some(TestkitError::Http { detail, .. }) => detail.contains("unhealthy cluster"),
                _ => false,
            };
            if !retryable || start.elapsed() >= self.health_timeout {
                return Err(last_err.unwrap_or_else(|| TestkitError::Timeout {
                    what: format!("another running member to remove member {i} through"),
                    waited: start.elapsed(),
                }));
            }
            thread::sleep(Duration::from_millis(200));
        }
        self.stop_process(i);
        lock(&self.procs)[i].removed = true;
        Ok(())
    }
}

/// The sum of every sample of counter `name` in a Prometheus text exposition (from
/// [`Cluster::metrics`]) whose labels include all of `labels` (`("grpc_method", "Range")`).
///
/// ```
/// let text = "# TYPE c counter\nc{a=\"x\",b=\"y\"} 3\nc{a=\"x\",b=\"z\"} 4\nc{a=\"w\"} 9\nc_other 1\n";
/// assert_eq!(etcdv3_testkit::metric_sum(text, "c", &[("a", "x")]), 7.0);
/// assert_eq!(etcdv3_testkit::metric_sum(text, "c", &[]), 16.0);
/// ```
pub fn metric_sum(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let mut sum = 0.0;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let (label_text, value) = if let Some(inner) = rest.strip_prefix('{') {
            match inner.split_once('}') {
                Some((l, v)) => (l, v),
                None => continue,
            }
        } else if rest.starts_with(' ') {
            ("", rest)
        } else {
            // Another metric whose name starts with `name`.
            continue;
        };
        let wanted = labels
            .iter()
            .all(|(k, v)| label_text.split(',').any(|kv| kv == format!("{k}=\"{v}\"")));
        if !wanted {
            continue;
        }
        if let Some(v) = value
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok())
        {
            sum += v;
        }
    }
    sum
}

/// Whether a [`Cluster::health_body`] answer (`STATUS BODY`) says `"health": "true"`.
pub(crate) fn body_healthy(answer: &str) -> bool {
    let json = answer.split_once(' ').map_or(answer, |(_, body)| body);
    serde_json::from_str::<serde_json::Value>(json)
        .is_ok_and(|v| v.get("health").and_then(|h| h.as_str()) == Some("true"))
}

/// A `/v3/maintenance/status` gateway answer; `None` without `header.member_id`. Absent
/// fields (grpc-gateway leaves out zero values) read as zero.
fn parse_status(body: &str) -> Option<MemberStatus> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    let num = |field: &serde_json::Value| http::u64_of(field).unwrap_or(0);
    Some(MemberStatus {
        member_id: http::u64_of(&v["header"]["member_id"])?,
        leader: num(&v["leader"]),
        raft_term: num(&v["raftTerm"]),
        raft_index: num(&v["raftIndex"]),
        version: v["version"].as_str().unwrap_or_default().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_bodies() {
        assert!(body_healthy("200 {\"health\":\"true\"}"));
        assert!(body_healthy("200 {\"health\":\"true\",\"reason\":\"\"}"));
        assert!(!body_healthy(
            "503 {\"health\":\"false\",\"reason\":\"RAFT NO LEADER\"}"
        ));
        assert!(!body_healthy("200 {\"reason\":\"health:true\"}"));
        assert!(!body_healthy("200 not json"));
    }

    #[test]
    fn parses_gateway_status() {
        let s = r#"{"header":{"cluster_id":"151","member_id":"1366","revision":"1","raft_term":"2"},"version":"3.4.23","dbSize":"20480","leader":"1366","raftIndex":"5","raftTerm":"7"}"#;
        assert_eq!(
            parse_status(s),
            Some(MemberStatus {
                member_id: 1366,
                leader: 1366,
                raft_term: 7,
                raft_index: 5,
                version: "3.4.23".into(),
            })
        );
        // No leader known: the field is left out.
        let s = r#"{"header":{"member_id":"9"},"version":"3.5.1"}"#;
        assert_eq!(parse_status(s).map(|st| st.leader), Some(0));
        assert_eq!(parse_status(r#"{"leader":"1"}"#), None);
        assert_eq!(parse_status("nope"), None);
    }
}

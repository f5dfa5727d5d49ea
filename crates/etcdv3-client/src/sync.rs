//! Endpoint auto-sync: keep the endpoint set equal to the cluster's members.

use std::time::Duration;

use etcdv3_proto::etcdserverpb::{MemberListRequest, MemberListResponse};
use etcdv3_proto::method::CLUSTER_MEMBER_LIST;

use crate::client::{CallOptions, Client};

/// The client URLs of the voting members in a member list (learners cannot
/// serve most requests, so they are left out).
pub(crate) fn member_endpoints(resp: &MemberListResponse) -> Vec<String> {
    let mut urls: Vec<String> = resp
        .members
        .iter()
        .filter(|m| !m.is_learner)
        .flat_map(|m| m.client_ur_ls.iter().cloned())
        .collect();
    urls.sort();
    urls.dedup();
    urls
}

/// Every `interval`, fetch the member list and replace the endpoint set with
/// the members' client URLs. Members added are used, members removed are
/// dropped and their connections closed. Ends when the client closes.
pub(crate) async fn run(client: Client, interval: Duration) {
    loop {
        let at = client.now() + interval;
        client.runtime().sleep_until(at).await;
        if client.is_closed() {
            return;
        }
        let req = MemberListRequest {
            linearizable: false,
        };
        let resp: crate::Result<MemberListResponse> = client
            .unary(CLUSTER_MEMBER_LIST, &req, CallOptions::default())
            .await;
        match resp {
            Ok(resp) => {
                let urls = member_endpoints(&resp);
                if urls.is_empty() {
                    tracing::warn!("member list has no client URLs; endpoints unchanged");
                    continue;
                }
                match client.set_endpoints(&urls) {
                    Ok(()) => {
                        tracing::debug!(endpoints = ?urls, "endpoints synced from member list")
                    }
                    Err(e) => tracing::warn!(error = %e, "member list endpoints unusable"),
                }
            }
            Err(crate::Error::Closed) => return,
            Err(e) => tracing::debug!(error = %e, "member list sync failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etcdv3_proto::etcdserverpb::Member;

    #[test]
    fn learners_are_left_out_and_urls_deduplicated() {
        let m = |urls: &[&str], learner| Member {
            client_ur_ls: urls.iter().map(|s| s.to_string()).collect(),
            is_learner: learner,
            ..Default::default()
        };
        let resp = MemberListResponse {
            members: vec![
                m(&["http://b:2379", "http://a:2379"], false),
                m(&["http://c:2379"], true),
                m(&["http://a:2379"], false),
            ],
            ..Default::default()
        };
        assert_eq!(
            member_endpoints(&resp),
            vec!["http://a:2379", "http://b:2379"]
        );
    }
}

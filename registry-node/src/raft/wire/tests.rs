use super::*;

fn lid(term: u64, leader: u64, index: u64) -> LogId {
    LogId::new(
        LeaderId {
            term,
            node_id: leader,
        },
        index,
    )
}

fn members() -> Membership<NodeId, MemberNode> {
    let node = |n: &str| MemberNode {
        name: n.into(),
        peer_url: format!("http://{n}:2380"),
        client_url: format!("http://{n}:2379"),
    };
    let nodes: BTreeMap<_, _> = [(1, node("a")), (2, node("b")), (3, node("c"))].into();
    Membership::new(vec![[1, 2].into(), [1, 2, 3].into()], nodes).expect("valid")
}

#[test]
fn append_requests_and_responses_round_trip() {
    let req = AppendEntriesRequest::<TypeConfig> {
        vote: Vote::new_committed(4, 2),
        prev_log_id: Some(lid(3, 1, 9)),
        entries: vec![
            Entry {
                log_id: lid(4, 2, 10),
                payload: EntryPayload::Blank,
            },
            Entry {
                log_id: lid(4, 2, 11),
                payload: EntryPayload::Normal(Command(vec![1, 2, 3])),
            },
            Entry {
                log_id: lid(4, 2, 12),
                payload: EntryPayload::Membership(members()),
            },
        ],
        leader_commit: None,
    };
    let back = from_append_request(append_request(&req)).expect("decode");
    assert_eq!(format!("{back:?}"), format!("{req:?}"));
    for resp in [
        AppendEntriesResponse::Success,
        AppendEntriesResponse::PartialSuccess(None),
        AppendEntriesResponse::PartialSuccess(Some(lid(4, 2, 11))),
        AppendEntriesResponse::Conflict,
        AppendEntriesResponse::HigherVote(Vote::new(5, 3)),
    ] {
        assert_eq!(
            from_append_response(append_response(&resp)).expect("decode"),
            resp
        );
    }
}

#[test]
fn votes_and_transfers_round_trip() {
    let mut req = VoteRequest::<TypeConfig>::new(Vote::new(7, 3), Some(lid(6, 1, 40)));
    req.leadership_transfer = true;
    let (back, pre) = from_vote_request(vote_request(&req, true)).expect("decode");
    assert_eq!((back, pre), (req, true));
    let resp = VoteResponse::<TypeConfig>::new(Vote::new_committed(7, 3), None, true);
    assert_eq!(
        from_vote_response(vote_response(&resp)).expect("decode"),
        resp
    );
    let t =
        TransferLeaderRequest::<TypeConfig>::new(Vote::new_committed(7, 3), 2, Some(lid(7, 3, 50)));
    assert_eq!(
        from_transfer_request(transfer_request(&t)).expect("decode"),
        t
    );
    let r: TransferLeaderResponse = Err(TransferLeaderError::LogNotFlushed {
        expected: Some(lid(7, 3, 50)),
        actual: None,
    });
    assert_eq!(
        from_transfer_response(transfer_response(&r)).expect("decode"),
        r
    );
}

#[test]
fn what_protobuf_allows_but_raft_does_not_is_refused() {
    assert!(
        from_append_request(pb::AppendRequest::default()).is_err(),
        "no vote"
    );
    let no_payload = pb::AppendRequest {
        vote: Some(vote(&Vote::new(1, 1))),
        entries: vec![pb::Entry {
            log_id: Some(log_id(&lid(1, 1, 1))),
            payload: None,
        }],
        ..Default::default()
    };
    assert!(from_append_request(no_payload).is_err());
    let voter_without_node = pb::Membership {
        configs: vec![pb::NodeSet { ids: vec![9] }],
        nodes: Default::default(),
    };
    assert!(from_membership(Some(voter_without_node)).is_err());
    let empty_set = pb::Membership {
        configs: vec![pb::NodeSet { ids: vec![] }],
        nodes: Default::default(),
    };
    assert!(from_membership(Some(empty_set)).is_err());
    // No config at all is openraft's "no membership yet" (a snapshot of a fresh member).
    let none = from_membership(Some(pb::Membership::default())).expect("empty membership");
    assert_eq!(none, Membership::default());
    assert!(from_append_response(pb::AppendResponse::default()).is_err());
}

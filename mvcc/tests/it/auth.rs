//! etcd's auth requests applied through the log: root rules, tokens, permission checks, and
//! the auth state in snapshots (an old snapshot without it still loads).

use crate::common::*;
use mvcc::{AuthError, AuthResponse, Config, Error, Need, Response, Store};
use prost::Message;
use proto::authpb::permission::Type as PermType;
use proto::authpb::Permission;
use proto::etcdserverpb::*;
use proto::registrypb::internal_request::Request;
use proto::registrypb::InternalAuthenticateRequest;

fn ok(s: &mut Store, r: Request) -> AuthResponse {
    match apply(s, r).expect("auth request applies").response {
        Response::Auth(a) => a,
        other => panic!("not an auth response: {other:?}"),
    }
}

fn err(s: &mut Store, r: Request) -> Error {
    apply(s, r).expect_err("auth request fails")
}

fn user_add(name: &str) -> Request {
    Request::AuthUserAdd(AuthUserAddRequest {
        name: name.into(),
        hashed_password: format!("hash-of-{name}"),
        ..Default::default()
    })
}

fn grant_role(user: &str, role: &str) -> Request {
    Request::AuthUserGrantRole(AuthUserGrantRoleRequest {
        user: user.into(),
        role: role.into(),
    })
}

fn authenticate(s: &mut Store, name: &str, index: u64) -> Result<String, Error> {
    let req = InternalAuthenticateRequest {
        name: name.into(),
        simple_token: "abc".into(),
        checked_revision: s.auth().revision(),
    };
    match s
        .apply(
            index,
            &proto::registrypb::InternalRequest {
                request: Some(Request::Authenticate(req)),
            },
        )?
        .response
    {
        Response::Auth(AuthResponse::Authenticate(a)) => Ok(a.token),
        other => panic!("not an authenticate response: {other:?}"),
    }
}

/// root (with role root), and `svc` with readwrite on the prefix `/micro-registry/`.
fn secured() -> Store {
    let mut s = store();
    let e = |r| Error::Auth(r);
    assert_eq!(
        err(&mut s, Request::AuthEnable(Default::default())),
        e(AuthError::RootUserNotExist)
    );
    ok(&mut s, user_add("root"));
    assert_eq!(
        err(&mut s, user_add("root")),
        e(AuthError::UserAlreadyExist)
    );
    assert_eq!(err(&mut s, user_add("")), e(AuthError::UserEmpty));
    assert_eq!(
        err(&mut s, Request::AuthEnable(Default::default())),
        e(AuthError::RootRoleNotExist)
    );
    ok(&mut s, grant_role("root", "root"));
    ok(&mut s, user_add("svc"));
    assert_eq!(
        err(&mut s, grant_role("svc", "reg")),
        e(AuthError::RoleNotFound)
    );
    ok(
        &mut s,
        Request::AuthRoleAdd(AuthRoleAddRequest { name: "reg".into() }),
    );
    ok(
        &mut s,
        Request::AuthRoleGrantPermission(AuthRoleGrantPermissionRequest {
            name: "reg".into(),
            perm: Some(Permission {
                perm_type: PermType::Readwrite as i32,
                key: b"/micro-registry/".to_vec(),
                range_end: b"/micro-registry0".to_vec(),
            }),
        }),
    );
    ok(&mut s, grant_role("svc", "reg"));
    ok(&mut s, Request::AuthEnable(Default::default()));
    s
}

#[test]
fn root_rules_tokens_and_permissions() {
    let mut s = secured();
    let rev = s.revision();
    assert!(s.auth().enabled());
    assert_eq!(
        s.revision(),
        rev,
        "auth requests do not bump the store revision"
    );
    let a = s.auth();
    let svc = Some("svc");
    assert_eq!(a.check(svc, b"/micro-registry/x", b"", Need::Write), Ok(()));
    assert_eq!(
        a.check(svc, b"/other", b"", Need::Read),
        Err(AuthError::PermissionDenied)
    );
    assert_eq!(
        a.check(None, b"/x", b"", Need::Read),
        Err(AuthError::UserEmpty)
    );
    assert_eq!(a.check(Some("root"), b"/x", b"\0", Need::Write), Ok(()));
    assert_eq!(a.check_admin(svc), Err(AuthError::PermissionDenied));
    assert_eq!(a.check_admin(Some("root")), Ok(()));

    let token = authenticate(&mut s, "svc", 42).expect("svc authenticates");
    assert_eq!(token, "abc.42");
    assert_eq!(s.auth().user_of_token(&token), Some("svc"));
    assert_eq!(
        authenticate(&mut s, "nobody", 43),
        Err(Error::Auth(AuthError::AuthFailed))
    );

    // root cannot lose root while auth is on; a password change drops the user's tokens.
    let revoke = Request::AuthUserRevokeRole(AuthUserRevokeRoleRequest {
        name: "root".into(),
        role: "root".into(),
    });
    assert_eq!(err(&mut s, revoke), Error::Auth(AuthError::InvalidAuthMgmt));
    ok(
        &mut s,
        Request::AuthUserChangePassword(AuthUserChangePasswordRequest {
            name: "svc".into(),
            hashed_password: "new".into(),
            ..Default::default()
        }),
    );
    assert_eq!(s.auth().user_of_token(&token), None);

    // Deleting the role takes it from its users; disabling auth drops every token.
    let root_token = authenticate(&mut s, "root", 50).expect("root authenticates");
    ok(
        &mut s,
        Request::AuthRoleDelete(AuthRoleDeleteRequest { role: "reg".into() }),
    );
    assert!(!s.auth().has_role("svc", "reg"));
    ok(&mut s, Request::AuthDisable(Default::default()));
    assert_eq!(s.auth().user_of_token(&root_token), None);
    assert_eq!(
        authenticate(&mut s, "root", 51),
        Err(Error::Auth(AuthError::AuthNotEnabled))
    );
}

#[test]
fn auth_state_survives_snapshots_and_old_snapshots_load() {
    let mut s = secured();
    put(&mut s, "/micro-registry/a", "1");
    let token = authenticate(&mut s, "svc", 7).expect("svc authenticates");
    let bytes = s.encode_snapshot();
    assert_eq!(bytes, s.snapshot().encode_to_vec());
    let back = Store::decode_snapshot(Config::default(), &bytes).expect("decodes");
    assert_eq!(back.auth(), s.auth());
    assert_eq!(back.auth().user_of_token(&token), Some("svc"));

    // A snapshot of a version without auth: field 6 absent.
    let mut old = s.snapshot();
    old.auth = None;
    let back = Store::decode_snapshot(Config::default(), &old.encode_to_vec()).expect("decodes");
    assert!(!back.auth().enabled());
    assert!(back.auth().user_names().is_empty());
    assert_eq!(
        get(&back, "/micro-registry/a").map(|kv| value(&kv)),
        Some("1".into())
    );
}

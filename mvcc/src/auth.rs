//! etcd's auth store (`auth/store.go`, `auth/range_perm_cache.go`) as replicated state: users
//! (with bcrypt hashes made before proposing), roles with key-range permissions, the enable
//! flag, the auth revision, and the simple tokens handed out by `Authenticate`.
//!
//! Tokens live here, not in a per-member table as in etcd: an `Authenticate` entry carries the
//! token's random part and every member stores `random.index` when it applies the entry, so a
//! token issued through one member is honoured by every member (etcd 3.4 also assigns simple
//! tokens at apply on every member). They are dropped as etcd drops them: the user's on delete
//! and password change, all on auth disable; at most [`MAX_TOKENS`] are kept (oldest dropped),
//! since there is no deterministic clock to expire them by TTL.

use std::collections::BTreeMap;

use prost::Message;
use proto::authpb::permission::Type as PermType;
use proto::authpb::{Role, User};

/// The user and role etcd treats as administrator.
pub const ROOT: &str = "root";

/// Most simple tokens kept; beyond it the oldest is dropped (its holder authenticates again).
pub(crate) const MAX_TOKENS: usize = 16_384;

/// Why an auth request or check failed, with etcd's texts (`rpctypes/error.go`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum AuthError {
    #[error("etcdserver: root user does not exist")]
    RootUserNotExist,
    #[error("etcdserver: root user does not have root role")]
    RootRoleNotExist,
    #[error("etcdserver: user name already exists")]
    UserAlreadyExist,
    #[error("etcdserver: user name is empty")]
    UserEmpty,
    #[error("etcdserver: user name not found")]
    UserNotFound,
    #[error("etcdserver: role name already exists")]
    RoleAlreadyExist,
    #[error("etcdserver: role name not found")]
    RoleNotFound,
    #[error("etcdserver: role name is empty")]
    RoleEmpty,
    #[error("etcdserver: authentication failed, invalid user ID or password")]
    AuthFailed,
    #[error("etcdserver: permission denied")]
    PermissionDenied,
    #[error("etcdserver: role is not granted to the user")]
    RoleNotGranted,
    #[error("etcdserver: permission is not granted to the role")]
    PermissionNotGranted,
    #[error("etcdserver: authentication is not enabled")]
    AuthNotEnabled,
    #[error("etcdserver: invalid auth token")]
    InvalidAuthToken,
    #[error("etcdserver: invalid auth management")]
    InvalidAuthMgmt,
    #[error("etcdserver: revision of auth store is old")]
    AuthOldRevision,
}

/// Which permission an operation needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Read,
    Write,
}

/// The auth part of a [`crate::Snapshot`] (field 6; absent in snapshots of older versions,
/// which then load with auth disabled and no users).
#[derive(Clone, PartialEq, Message)]
pub struct AuthSnapshot {
    #[prost(bool, tag = "1")]
    pub enabled: bool,
    #[prost(uint64, tag = "2")]
    pub revision: u64,
    #[prost(message, repeated, tag = "3")]
    pub users: Vec<User>,
    #[prost(message, repeated, tag = "4")]
    pub roles: Vec<Role>,
    #[prost(message, repeated, tag = "5")]
    pub tokens: Vec<TokenRecord>,
}

/// One simple token: who it names and the log index that issued it.
#[derive(Clone, PartialEq, Message)]
pub struct TokenRecord {
    #[prost(string, tag = "1")]
    pub token: String,
    #[prost(string, tag = "2")]
    pub user: String,
    #[prost(uint64, tag = "3")]
    pub index: u64,
}

/// The auth state of one replica.
#[derive(Debug, Clone, PartialEq)]
pub struct Auth {
    pub(crate) enabled: bool,
    /// etcd's auth revision: bumped by every change of users, roles or permissions.
    pub(crate) revision: u64,
    pub(crate) users: BTreeMap<String, User>,
    pub(crate) roles: BTreeMap<String, Role>,
    /// token → (user, issuing index).
    pub(crate) tokens: BTreeMap<String, (String, u64)>,
    /// issuing index → token, to drop the oldest beyond [`MAX_TOKENS`].
    pub(crate) issued: BTreeMap<u64, String>,
}

impl Default for Auth {
    fn default() -> Self {
        // etcd's NewAuthStore commits revision 1 on a fresh store.
        Auth {
            enabled: false,
            revision: 1,
            users: BTreeMap::new(),
            roles: BTreeMap::new(),
            tokens: BTreeMap::new(),
            issued: BTreeMap::new(),
        }
    }
}

impl Auth {
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    pub fn revision(&self) -> u64 {
        self.revision
    }

    pub fn user(&self, name: &str) -> Option<&User> {
        self.users.get(name)
    }

    pub fn role(&self, name: &str) -> Option<&Role> {
        self.roles.get(name)
    }

    /// User names, sorted (etcd lists its bolt bucket in key order).
    pub fn user_names(&self) -> Vec<String> {
        self.users.keys().cloned().collect()
    }

    /// Role names, sorted.
    pub fn role_names(&self) -> Vec<String> {
        self.roles.keys().cloned().collect()
    }

    /// The user a simple token names, `None` if the token is unknown (or was dropped).
    pub fn user_of_token(&self, token: &str) -> Option<&str> {
        self.tokens.get(token).map(|(u, _)| u.as_str())
    }

    /// Whether `user` has been granted `role`.
    pub fn has_role(&self, user: &str, role: &str) -> bool {
        self.users
            .get(user)
            .is_some_and(|u| u.roles.iter().any(|r| r == role))
    }

    /// etcd's `isOpPermitted`: `user` is who the caller's token names (`None`: no token).
    /// `range_end` empty is the single key; `"\0"` means every key `>= key`.
    pub fn check(
        &self,
        user: Option<&str>,
        key: &[u8],
        range_end: &[u8],
        need: Need,
    ) -> Result<(), AuthError> {
        if !self.enabled {
            return Ok(());
        }
        let Some(name) = user else {
            return Err(AuthError::UserEmpty);
        };
        let Some(u) = self.users.get(name) else {
            return Err(AuthError::PermissionDenied);
        };
        if u.roles.iter().any(|r| r == ROOT) {
            return Ok(());
        }
        if self.covered(u, key, range_end, need) {
            Ok(())
        } else {
            Err(AuthError::PermissionDenied)
        }
    }

    /// etcd's `IsAdminPermitted`: the caller must hold the root role.
    pub fn check_admin(&self, user: Option<&str>) -> Result<(), AuthError> {
        if !self.enabled {
            return Ok(());
        }
        let Some(name) = user.filter(|n| !n.is_empty()) else {
            return Err(AuthError::UserEmpty);
        };
        let Some(u) = self.users.get(name) else {
            return Err(AuthError::UserNotFound);
        };
        if u.roles.iter().any(|r| r == ROOT) {
            Ok(())
        } else {
            Err(AuthError::PermissionDenied)
        }
    }

    /// Whether the union of the intervals `u`'s roles grant for `need` covers the request
    /// (etcd's interval tree `Contains` for a range, `Intersects` for a single key).
    fn covered(&self, u: &User, key: &[u8], range_end: &[u8], need: Need) -> bool {
        let mut granted: Vec<(Bound, Bound)> = Vec::new();
        for role in u.roles.iter().filter_map(|r| self.roles.get(r)) {
            for p in &role.key_permission {
                let fits = match PermType::try_from(p.perm_type) {
                    Ok(PermType::Readwrite) => true,
                    Ok(PermType::Read) => need == Need::Read,
                    Ok(PermType::Write) => need == Need::Write,
                    Err(_) => false,
                };
                if fits {
                    granted.push(interval(&p.key, &p.range_end));
                }
            }
        }
        if range_end.is_empty() {
            let point = Bound::Key(key.to_vec());
            return granted.iter().any(|(b, e)| *b <= point && point < *e);
        }
        // "\0" (every key >= key) reaches past every key, as an empty end does in etcd's tree.
        let range_end = if range_end == [0] { &[][..] } else { range_end };
        let (want_begin, want_end) = (Bound::Key(key.to_vec()), end_bound(range_end));
        granted.sort();
        // Walk the granted intervals in order, extending the covered prefix from `key`.
        let mut reach = want_begin;
        for (b, e) in granted {
            if b > reach {
                break;
            }
            if e > reach {
                reach = e;
            }
            if reach >= want_end {
                return true;
            }
        }
        reach >= want_end
    }
}

/// An interval end: a key, or past every key (etcd's "empty compares greater than all").
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Bound {
    Key(Vec<u8>),
    Infinity,
}

fn end_bound(range_end: &[u8]) -> Bound {
    if range_end.is_empty() {
        Bound::Infinity
    } else {
        Bound::Key(range_end.to_vec())
    }
}

/// A permission's interval as etcd's `getMergedPerms` builds it: a single key is
/// `[key, key\0)`, `range_end` `"\0"` reaches past every key.
fn interval(key: &[u8], range_end: &[u8]) -> (Bound, Bound) {
    let begin = Bound::Key(key.to_vec());
    if range_end.is_empty() {
        let mut next = key.to_vec();
        next.push(0);
        return (begin, Bound::Key(next));
    }
    if range_end == [0] {
        return (begin, Bound::Infinity);
    }
    (begin, Bound::Key(range_end.to_vec()))
}

impl Auth {
    pub fn to_snapshot(&self) -> AuthSnapshot {
        AuthSnapshot {
            enabled: self.enabled,
            revision: self.revision,
            users: self.users.values().cloned().collect(),
            roles: self.roles.values().cloned().collect(),
            tokens: self
                .tokens
                .iter()
                .map(|(token, (user, index))| TokenRecord {
                    token: token.clone(),
                    user: user.clone(),
                    index: *index,
                })
                .collect(),
        }
    }

    /// The state of a snapshot; names that are not UTF-8 are kept lossily (never produced).
    pub fn from_snapshot(s: AuthSnapshot) -> Self {
        let mut a = Auth {
            enabled: s.enabled,
            revision: s.revision.max(1),
            ..Auth::default()
        };
        for u in s.users {
            a.users
                .insert(String::from_utf8_lossy(&u.name).into_owned(), u);
        }
        for r in s.roles {
            a.roles
                .insert(String::from_utf8_lossy(&r.name).into_owned(), r);
        }
        for t in s.tokens {
            a.issued.insert(t.index, t.token.clone());
            a.tokens.insert(t.token, (t.user, t.index));
        }
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::authpb::Permission;

    fn state(perms: Vec<Permission>) -> Auth {
        let mut a = Auth {
            enabled: true,
            ..Auth::default()
        };
        a.roles.insert(
            "r".into(),
            Role {
                name: b"r".to_vec(),
                key_permission: perms,
            },
        );
        a.users.insert(
            "u".into(),
            User {
                name: b"u".to_vec(),
                roles: vec!["r".into()],
                ..Default::default()
            },
        );
        a
    }

    fn perm(t: PermType, key: &[u8], end: &[u8]) -> Permission {
        Permission {
            perm_type: t as i32,
            key: key.to_vec(),
            range_end: end.to_vec(),
        }
    }

    #[test]
    fn prefix_permission_covers_keys_and_subranges_only() {
        let a = state(vec![perm(PermType::Readwrite, b"/p/", b"/p0")]);
        let u = Some("u");
        assert_eq!(a.check(u, b"/p/x", b"", Need::Write), Ok(()));
        assert_eq!(a.check(u, b"/p/", b"/p0", Need::Read), Ok(()));
        assert_eq!(a.check(u, b"/p/a", b"/p/b", Need::Read), Ok(()));
        let denied = Err(AuthError::PermissionDenied);
        assert_eq!(a.check(u, b"/q", b"", Need::Write), denied);
        assert_eq!(a.check(u, b"/p/", b"/p1", Need::Read), denied);
        assert_eq!(a.check(u, b"/p/", b"\0", Need::Read), denied);
        assert_eq!(
            a.check(None, b"/p/x", b"", Need::Read),
            Err(AuthError::UserEmpty)
        );
        assert_eq!(a.check(Some("x"), b"/p/x", b"", Need::Read), denied);
    }

    #[test]
    fn adjacent_grants_join_and_types_are_separate() {
        let a = state(vec![
            perm(PermType::Read, b"a", b"c"),
            perm(PermType::Read, b"c", b"e"),
            perm(PermType::Write, b"k", b""),
            perm(PermType::Read, b"z", b"\0"),
        ]);
        let u = Some("u");
        assert_eq!(a.check(u, b"a", b"e", Need::Read), Ok(()));
        assert!(a.check(u, b"a", b"e", Need::Write).is_err());
        assert_eq!(a.check(u, b"k", b"", Need::Write), Ok(()));
        assert!(a.check(u, b"k", b"", Need::Read).is_err());
        assert!(a.check(u, b"k", b"k\0\0", Need::Write).is_err());
        assert_eq!(a.check(u, b"zz", b"\0", Need::Read), Ok(()));
    }

    #[test]
    fn snapshot_round_trip() {
        let mut a = state(vec![perm(PermType::Read, b"a", b"b")]);
        a.tokens.insert("t.5".into(), ("u".into(), 5));
        a.issued.insert(5, "t.5".into());
        let back = Auth::from_snapshot(
            AuthSnapshot::decode(a.to_snapshot().encode_to_vec().as_slice()).expect("decodes"),
        );
        assert_eq!(back, a);
    }
}
